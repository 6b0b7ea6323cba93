import logging

import pytest
from conftest import make_image
from PIL import Image

from tfiqa.data.readers import READERS, read_dataset
from tfiqa.errors import ConfigError, DataError, ImageError


def _write_image(path, seed=0, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_image(size, seed)).save(path)


def _check_record(record):
    assert set(record) == {
        "image_path",
        "mos",
        "mos_raw",
        "ref_id",
        "distortion",
        "level",
    }
    assert 0.0 <= record["mos"] <= 1.0
    assert record["image_path"].startswith("/")


# ---------------------------------------------------------------- csv


def _csv_dataset(tmp_path, rows, header="image,mos", file="mos.csv"):
    for name in rows:
        _write_image(tmp_path / name[0])
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    (tmp_path / file).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_csv_default_columns_and_odd_names(tmp_path):
    rows = [("images/ss01 (1).jpg", 0.25), ("images/b c(2).png", 0.75)]
    data = _csv_dataset(tmp_path, rows)
    records = read_dataset("csv", str(data))
    assert len(records) == 2
    for r in records:
        _check_record(r)
    assert records[0]["image_path"] == str(tmp_path / "images/ss01 (1).jpg")
    assert records[0]["ref_id"] == "images/ss01 (1).jpg"
    assert records[1]["mos"] == pytest.approx(0.75)
    assert records[1]["distortion"] == "" and records[1]["level"] == 0


def test_csv_score_range_direction_and_ref_column(tmp_path):
    rows = [("a.png", 1.0, "r1"), ("b.png", 5.0, "r1"), ("c.png", 2.0, "r2")]
    data = _csv_dataset(tmp_path, rows, header="file,dmos,src", file="s.csv")
    records = read_dataset(
        "csv",
        str(data),
        file="s.csv",
        image_column="file",
        score_column="dmos",
        ref_column="src",
        score_range=[1, 5],
        higher_is_better=False,
    )
    assert [r["mos"] for r in records] == pytest.approx([1.0, 0.0, 0.75])
    assert [r["mos_raw"] for r in records] == [1.0, 5.0, 2.0]
    assert [r["ref_id"] for r in records] == ["r1", "r1", "r2"]


def test_csv_image_dir(tmp_path):
    _write_image(tmp_path / "pics" / "a.png")
    (tmp_path / "mos.csv").write_text("image,mos\na.png,0.5\n")
    records = read_dataset("csv", str(tmp_path), image_dir="pics")
    assert records[0]["image_path"] == str(tmp_path / "pics" / "a.png")


def test_csv_out_of_range_asks_for_score_range(tmp_path):
    data = _csv_dataset(tmp_path, [("a.png", 3.5)])
    with pytest.raises(DataError, match="score_range") as info:
        read_dataset("csv", str(data))
    assert "3.5" in str(info.value)


def test_csv_without_score_column_lists_columns(tmp_path):
    data = _csv_dataset(tmp_path, [("a.png", 0.5)], header="image,quality")
    with pytest.raises(DataError, match="'mos'") as info:
        read_dataset("csv", str(data))
    assert "'image', 'quality'" in str(info.value)
    assert "mos.csv" in str(info.value)


def test_csv_missing_image_errors_or_skips(tmp_path, caplog):
    data = _csv_dataset(tmp_path, [("a.png", 0.5)])
    with open(data / "mos.csv", "a") as f:
        f.write("gone.png,0.25\n")
    with pytest.raises(ImageError, match="gone.png") as info:
        read_dataset("csv", str(data))
    assert "mos.csv" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="tfiqa.data"):
        records = read_dataset("csv", str(data), skip_bad=True)
    assert len(records) == 1
    assert "gone.png" in caplog.text and "Skipped 1 of 2" in caplog.text


def test_csv_blank_score_is_an_error(tmp_path):
    data = _csv_dataset(tmp_path, [("a.png", "")])
    with pytest.raises(DataError, match="row 2"):
        read_dataset("csv", str(data))


def test_read_dataset_errors(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'csv'"):
        read_dataset("csvv", str(tmp_path))
    with pytest.raises(DataError, match="not found"):
        read_dataset("csv", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="Score CSV not found"):
        read_dataset("csv", str(tmp_path))
    with pytest.raises(ConfigError, match="score_colum") as info:
        read_dataset("csv", str(tmp_path), score_colum="x")
    assert "score_column" in str(info.value)


def test_registry_lists_csv():
    assert "csv" in READERS.names()
