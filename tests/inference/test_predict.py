import csv
import io

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_image
from PIL import Image

from tfiqa.cli import cli
from tfiqa.errors import DataError
from tfiqa.inference import load
from tfiqa.inference.predict import expand_inputs


@pytest.fixture
def folder(tmp_path):
    """Images in a folder and a subfolder, one corrupt JPEG and a text file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(make_image((40, 48), seed=0)).save(root / "a.png")
    Image.fromarray(make_image((48, 40), seed=1)).save(root / "c.jpg")
    Image.fromarray(make_image((36, 36), seed=2)).save(root / "sub" / "d.PNG")
    (root / "b.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_expand_inputs_recurses_sorts_and_dedupes(folder):
    paths = expand_inputs([str(folder), str(folder / "a.png")])
    names = [p[len(str(folder)) + 1 :] for p in paths]
    assert names == ["a.png", "b.jpg", "c.jpg", "sub/d.PNG"]


def test_expand_inputs_without_images(tmp_path):
    with pytest.raises(DataError, match="No images"):
        expand_inputs([str(tmp_path)])


def test_predict_folder_to_csv_reports_the_corrupt_image(folder, model_path, tmp_path):
    output = tmp_path / "out" / "scores.csv"
    result = CliRunner().invoke(
        cli, ["predict", "--model", model_path, "--output", str(output), str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert "Scored 3 of 4 images" in result.stderr
    rows = read_csv(output.read_text())
    assert list(rows[0]) == ["image", "score", "error"]
    by_name = {row["image"].rsplit("/", 1)[-1]: row for row in rows}
    assert sorted(by_name) == ["a.png", "b.jpg", "c.jpg", "d.PNG"]
    assert by_name["b.jpg"]["score"] == ""
    assert "b.jpg" in by_name["b.jpg"]["error"]
    scorer = load(model_path)
    for name in ("a.png", "c.jpg", "d.PNG"):
        row = by_name[name]
        assert row["error"] == ""
        expected = scorer.score(row["image"])[0]
        assert float(row["score"]) == pytest.approx(expected, abs=1e-6)


def test_predict_full_to_stdout(folder, model_path):
    image = str(folder / "a.png")
    result = CliRunner().invoke(
        cli, ["predict", "--model", model_path, "--full", image]
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    assert [row["image"] for row in rows] == [image]
    expected = load(model_path).score(image, full=True)[0]
    assert float(rows[0]["score"]) == pytest.approx(expected, abs=1e-6)


def test_predict_crops_option_changes_the_mode(folder, model_path):
    image = str(folder / "c.jpg")
    result = CliRunner().invoke(
        cli, ["predict", "--model", model_path, "--crops", "1", image]
    )
    assert result.exit_code == 0, result.output
    expected = load(model_path).score(image, crops=1)[0]
    assert float(read_csv(result.stdout)[0]["score"]) == pytest.approx(
        expected, abs=1e-6
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--crops", "3", "--full"], "mutually exclusive"),
        (["--crops", "0"], "0 is not in the range 1<=x<=100"),
        (["--crops", "101"], "101 is not in the range 1<=x<=100"),
        (["--crops", "200000"], "200000 is not in the range 1<=x<=100"),
    ],
)
def test_predict_bad_options_exit_2(folder, model_path, args, message):
    result = CliRunner().invoke(
        cli, ["predict", "--model", model_path, *args, str(folder)]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_predict_missing_model_exits_2(folder, tmp_path):
    result = CliRunner().invoke(
        cli, ["predict", "--model", str(tmp_path / "none.keras"), str(folder)]
    )
    assert result.exit_code == 2
    assert "Model not found" in result.output


def test_predict_all_bad_writes_csv_and_exits_2(folder, model_path, tmp_path):
    output = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--model",
            model_path,
            "--output",
            str(output),
            str(folder / "b.jpg"),
            str(folder / "missing.png"),
        ],
    )
    assert result.exit_code == 2
    rows = read_csv(output.read_text())
    assert [row["score"] for row in rows] == ["", ""]
    assert all(row["error"] for row in rows)


@pytest.mark.slow
def test_predict_progress_is_on_stderr_only(tmp_path, model_path):
    for i in range(12):
        Image.fromarray(make_image((32, 32), seed=i)).save(tmp_path / f"{i:02d}.png")
    args = ["predict", "--model", model_path, str(tmp_path)]
    shown = CliRunner(env={"TFIQA_PROGRESS": "1"}).invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    assert "Scoring\n" in shown.stderr and "12/12" in shown.stderr
    scores = [float(row["score"]) for row in read_csv(shown.stdout)]
    assert len(scores) == 12 and np.all(np.isfinite(scores))
    # Off a terminal there is no bar, and the CSV on stdout is the same.
    hidden = CliRunner(env={"TFIQA_PROGRESS": None}).invoke(cli, args)
    assert hidden.exit_code == 0, hidden.output
    assert "Scoring" not in hidden.stderr and "12/12" not in hidden.stderr
    assert hidden.stdout == shown.stdout
