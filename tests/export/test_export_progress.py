"""int8 calibration reports its progress on stderr, and only there."""

import numpy as np
from conftest import make_image

from tfiqa.export.tflite import export_tflite_variants, representative_dataset

from .helpers import tiny_model


def _calibration(count):
    return np.stack([make_image((32, 32), seed=i) for i in range(count)])


def test_calibration_samples_are_the_same_with_the_bar(monkeypatch, capsys):
    monkeypatch.setenv("TFIQA_PROGRESS", "1")
    calibration = _calibration(3)
    shown = list(representative_dataset(calibration, "Calibrating")())
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("Calibrating\n") and "3/3" in err
    hidden = list(representative_dataset(calibration, verbose=0)())
    assert capsys.readouterr() == ("", "")
    assert len(shown) == len(hidden) == 3
    for a, b in zip(shown, hidden, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_int8_conversion_shows_calibration(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFIQA_PROGRESS", "1")
    paths = {
        "none": str(tmp_path / "none.tflite"),
        "int8": str(tmp_path / "int8.tflite"),
    }
    infos = export_tflite_variants(tiny_model(), paths, 32, _calibration(5))
    out, err = capsys.readouterr()
    assert out == ""
    # One bar per calibrated variant; the float variant needs none.
    assert err.count("Calibrating int8\n") == 1 and "Calibrating none" not in err
    assert "5/5" in err
    assert infos["int8"]["input"]["dtype"] == "float32"
    assert (tmp_path / "int8.tflite").stat().st_size > 0
