"""--verify-dir parity checks, the `tfiqa export` command and a real IQAModel."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tfiqa.cli import EXIT_USER_ERROR, cli
from tfiqa.errors import TfiqaError
from tfiqa.export import export_model
from tfiqa.export.verify import (
    MIN_IMAGES_FOR_SRCC,
    TOLERANCES,
    check_report,
    compare,
    format_report,
    verify_exports,
)
from tfiqa.inference import load
from tfiqa.inference.backends.saved_model import saved_model_bytes_fn
from tfiqa.scoring_policy import ScoringPolicy

from .helpers import SIZE, tiny_model, write_images


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("verify_images"), count=10)


def exports_of(manifest):
    exports = [
        {
            "name": "saved_model",
            "kind": "saved_model",
            "scorer": load(manifest["saved_model"]),
            "bytes_fn": saved_model_bytes_fn(manifest["saved_model"]),
        }
    ]
    for q, path in manifest["tflite"].items():
        exports.append({"name": q, "kind": q, "scorer": load(path)})
    return exports


def test_compare_verdicts():
    tol = TOLERANCES["int8"]
    reference = np.linspace(0.1, 0.9, MIN_IMAGES_FOR_SRCC)
    good = compare(reference, reference + 0.01, tol)
    assert good["ok"] and good["srcc_checked"] and good["srcc"] == pytest.approx(1)
    assert good["max_abs_diff"] == pytest.approx(0.01)
    assert not compare(reference, reference + 0.3, tol)["ok"]
    # Small differences that scramble the order fail once SRCC is meaningful.
    scrambled = compare(reference, reference[::-1], {**tol, "max_abs_diff": 1.0})
    assert not scrambled["ok"] and scrambled["srcc"] == pytest.approx(-1)
    # Non-finite scores always fail.
    assert not compare(reference, np.full_like(reference, np.nan), tol)["ok"]
    # With scores bunched together the order is noise: not enforced.
    flat = compare([0.5, 0.501, 0.502], [0.502, 0.501, 0.5], tol)
    assert flat["ok"] and not flat["srcc_checked"]


def test_verify_passes_on_good_export(tmp_path, images_dir):
    model = tiny_model()
    manifest = export_model(
        model,
        str(tmp_path),
        quantize=["none", "int8"],
        input_size=SIZE,
        calibration_dir=str(images_dir),
        verify_dir=str(images_dir),
    )
    report = json.loads((tmp_path / "verify.json").read_text())
    assert manifest["verify"] == str(tmp_path / "verify.json")
    assert report["images"] == 10
    names = [row["name"] for row in report["rows"]]
    assert names == [
        "saved_model (score_uint8)",
        "saved_model (score_uint8) (image_bytes)",
        "tflite float32",
        "tflite int8",
    ]
    assert all(row["ok"] for row in report["rows"])
    float_row = report["rows"][2]
    assert float_row["max_abs_diff"] < 1e-4
    assert float_row["srcc"] == pytest.approx(1.0, abs=1e-6)
    assert "tflite int8" in format_report(report)


def test_verify_fails_on_broken_export(tmp_path, images_dir):
    model = tiny_model()
    manifest = export_model(model, str(tmp_path), quantize=["none"], input_size=SIZE)
    exports = exports_of(manifest)
    policy = ScoringPolicy.from_dict(manifest["scoring"])
    good = verify_exports(model, exports, str(images_dir), policy=policy)
    check_report(good)  # does not raise
    # The exports no longer match the model that is being verified.
    changed = tiny_model(seed=0, bias=0.5)
    report = verify_exports(changed, exports, str(images_dir), policy=policy)
    assert not any(row["ok"] for row in report["rows"])
    with pytest.raises(TfiqaError, match="verification failed for 3 export"):
        check_report(report)


def test_export_raises_after_writing_when_verify_fails(
    tmp_path, images_dir, monkeypatch
):
    from tfiqa.export import verify

    # An impossible tolerance stands in for an export that disagrees.
    strict = {k: {"max_abs_diff": -1.0, "min_srcc": 1.0} for k in TOLERANCES}
    monkeypatch.setattr(verify, "TOLERANCES", strict)
    with pytest.raises(TfiqaError, match="Export verification failed"):
        export_model(
            tiny_model(),
            str(tmp_path),
            formats=["tflite"],
            input_size=SIZE,
            verify_dir=str(images_dir),
        )
    # The report is on disk for the user to inspect.
    assert (tmp_path / "verify.json").is_file()
    assert (tmp_path / "export.json").is_file()


@pytest.mark.slow
def test_cli_export(tmp_path, images_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model_path = run_dir / "model.keras"
    tiny_model().save(model_path)
    (run_dir / "metrics.json").write_text(json.dumps({"val": {"srcc": 0.8}}))
    (run_dir / "config.yaml").write_text(
        "data:\n  dataset: biq2021\n  crop_size: 32\ntrainer:\n  stages: [finetune]\n"
    )
    out = tmp_path / "out"
    args = [
        "export",
        "--model",
        str(model_path),
        "--output",
        str(out),
        "--quantize",
        "none,int8_io",
        "--calibration-dir",
        str(images_dir),
        "--verify-dir",
        str(images_dir),
        "--set",
        "export.input_size=32",
        "--set",
        "export.name=quality",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "tflite int8_io" in result.output and "FAIL" not in result.output
    assert (out / "quality" / "1" / "saved_model.pb").is_file()
    sidecar = json.loads((out / "tflite" / "quality_int8_io.json").read_text())
    assert sidecar["training"]["metrics"] == {"val": {"srcc": 0.8}}
    assert sidecar["training"]["data"]["dataset"] == "biq2021"
    assert sidecar["training"]["stages"] == ["finetune"]


def test_cli_user_errors(tmp_path, images_dir):
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["export", "--model", str(tmp_path / "none.keras"), "--output", "o"]
    )
    assert missing.exit_code == EXIT_USER_ERROR
    assert "Model file not found" in missing.output
    model_path = tmp_path / "m.keras"
    tiny_model().save(model_path)
    no_calibration = runner.invoke(
        cli,
        ["export", "--model", str(model_path), "--output", str(tmp_path / "o")]
        + ["--quantize", "int8"],
    )
    assert no_calibration.exit_code == EXIT_USER_ERROR
    assert "--calibration-dir" in no_calibration.output


@pytest.mark.slow
def test_iqa_model_exports_and_loads(tmp_path, images_dir):
    """A real IQAModel through SavedModel and int8 TFLite, read by `load`."""
    from tfiqa.inference import load
    from tfiqa.models import IQAModel

    model = IQAModel(
        backbone="mobilenet_v3_small",
        weights="none",
        levels=("P3", "P5"),
        head_units=(16,),
        scoring_policy=ScoringPolicy(crop_size=SIZE),
    )
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    manifest = export_model(
        model,
        str(tmp_path / "out"),
        quantize=["none", "int8_io"],
        calibration_dir=str(images_dir),
        verify_dir=str(images_dir),
        model_path=str(model_path),
    )
    assert manifest["input_size"] == SIZE  # the model's policy crop size
    sidecar_path = tmp_path / "out" / "tflite" / "tfiqa_int8_io.json"
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["model"]["backbone"] == "mobilenet_v3_small"
    assert sidecar["output"]["range"] == [0.0, 1.0]
    files = [str(p) for p in sorted(images_dir.iterdir())[:4]]
    reference = load(str(model_path)).score(files)
    for path in (manifest["saved_model"], manifest["tflite"]["none"]):
        scores = load(path).score(files)
        np.testing.assert_allclose(scores, reference, atol=1e-4)
