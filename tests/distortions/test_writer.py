import csv
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfiqa.cli import cli
from tfiqa.distortions.writer import CSV_NAME, distort_folder, parse_levels
from tfiqa.errors import ConfigError, DataError, ImageError


def _rows(folder):
    with open(os.path.join(folder, CSV_NAME)) as f:
        return list(csv.DictReader(f))


def test_parse_levels():
    assert parse_levels("1-5") == (1, 2, 3, 4, 5)
    assert parse_levels("5,1,3") == (1, 3, 5)
    assert parse_levels("2") == (2,)
    for bad in ("0-3", "a", "", "6"):
        with pytest.raises(ConfigError, match="Received"):
            parse_levels(bad)


def test_distort_folder_writes_dataset_and_preview(
    image_folder, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TFIQA_PROGRESS", "1")
    out = tmp_path / "out"
    result = distort_folder(
        str(image_folder),
        str(out),
        types=["jpeg", "white_noise"],
        levels=(1, 5),
        seed=3,
        pseudo_mos=True,
        preview=str(tmp_path / "sheet.png"),
    )
    rows = _rows(out)
    assert result["images"] == len(rows) == 6 * 2 * 2
    err = capsys.readouterr().err
    assert err.startswith("Distorting\n") and "24/24" in err
    assert list(rows[0]) == ["image", "ref", "distortion", "level", "pseudo_mos"]
    for row in rows:
        image = np.asarray(Image.open(out / row["image"]))
        ref = np.asarray(Image.open(out / row["ref"]))
        assert image.shape == ref.shape == (48, 40, 3)
        assert 0.0 <= float(row["pseudo_mos"]) < 1.0
    # Pseudo-MOS falls with the level for every (image, type).
    by_key = {
        (r["ref"], r["distortion"], r["level"]): float(r["pseudo_mos"]) for r in rows
    }
    for ref, name, level in by_key:
        if level == "1":
            assert by_key[(ref, name, "1")] > by_key[(ref, name, "5")]
    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.size[0] > 3 * 40 and sheet.size[1] > 2 * 40
    # A rerun gives identical pixels (deterministic seeds).
    first = np.asarray(Image.open(out / rows[3]["image"]))
    distort_folder(
        str(image_folder),
        str(out),
        types=["jpeg", "white_noise"],
        levels=(1, 5),
        seed=3,
        verbose=0,
    )
    assert capsys.readouterr().err == ""  # verbose=0 hides the bar
    np.testing.assert_array_equal(first, np.asarray(Image.open(out / rows[3]["image"])))
    assert list(_rows(out)[0]) == ["image", "ref", "distortion", "level"]


def test_bad_inputs(tmp_path, image_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        distort_folder(str(empty), str(tmp_path / "o1"), types=["jpeg"])
    with pytest.raises(ConfigError, match="inside --input"):
        distort_folder(str(image_folder), str(image_folder / "out"), types=["jpeg"])
    (image_folder / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="broken.png"):
        distort_folder(str(image_folder), str(tmp_path / "o2"), types=["jpeg"])
    # Nothing was written that looks complete.
    assert not (tmp_path / "o2" / CSV_NAME).exists()


def test_cli_distort(image_folder, tmp_path):
    out = tmp_path / "out"

    def distort(output, *options):
        return CliRunner().invoke(
            cli,
            ["distort", "--input", str(image_folder), "--output", str(output)]
            + list(options),
        )

    result = distort(
        out, "--distortion-set", "live", "--types", "live_jpeg", "--levels", "2,4"
    )
    assert result.exit_code == 0, result.output
    assert len(_rows(out)) == 12
    assert {r["distortion"] for r in _rows(out)} == {"live_jpeg"}
    bad = distort(out, "--types", "jpg")
    assert bad.exit_code == 2 and "Did you mean 'jpeg'" in bad.output
    inside = distort(image_folder / "x", "--types", "jpeg")
    assert inside.exit_code == 2 and "inside --input" in inside.output
