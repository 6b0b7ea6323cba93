"""TFLite export: every quantization round-trips through ai-edge-litert."""

import json
import os

import numpy as np
import pytest
from conftest import make_image

from tfiqa.errors import ConfigError, DataError
from tfiqa.export import export_model
from tfiqa.export.tflite import QUANTIZATIONS
from tfiqa.inference.backends.tflite import tflite_predict_fn

from .helpers import SIZE, export_tflite, keras_scores, tiny_model, write_images

# Largest |score - Keras score| accepted per variant on the tiny model.
ATOL = {"none": 1e-5, "fp16": 2e-3, "dynamic": 0.02, "int8": 0.05, "int8_io": 0.05}


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("calibration"), count=8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, calibration_dir):
    """Float32 and calibrated full-integer int8 with uint8 I/O."""
    model = tiny_model()
    out = tmp_path_factory.mktemp("tflite")
    manifest = export_tflite(
        model, out, ["none", "int8_io"], calibration_dir, name="iqa"
    )
    return model, out, manifest


def test_files_and_sidecars(exported):
    _, out, manifest = exported
    assert sorted(manifest["tflite"]) == ["int8_io", "none"]
    assert manifest["saved_model"] is None
    assert not (out / "models.config").exists()
    float_size = (out / "tflite" / "iqa_float32.tflite").stat().st_size
    int8_size = (out / "tflite" / "iqa_int8_io.tflite").stat().st_size
    assert int8_size < float_size
    sidecar = json.loads((out / "tflite" / "iqa_int8_io.json").read_text())
    assert sidecar["file"] == "iqa_int8_io.tflite"
    assert sidecar["signature"] == "score"
    assert sidecar["quantization"] == "int8_io"
    assert sidecar["calibration_images"] == 8
    assert sidecar["input"]["dtype"] == "uint8"
    assert sidecar["input"]["shape"] == [-1, SIZE, SIZE, 3]
    assert sidecar["input"]["pixel_range"] == [0, 255]
    # Raw pixels go in unchanged: the calibrated input range is [0, 255].
    assert sidecar["input"]["quantization"]["scale"] == pytest.approx(1.0)
    assert sidecar["input"]["quantization"]["zero_point"] == 0
    assert sidecar["output"]["dtype"] == "uint8"
    assert sidecar["output"]["quantization"]["scale"] > 0
    assert sidecar["output"]["direction"] == "higher is better"
    assert sidecar["tfiqa_version"]
    float_sidecar = json.loads((out / "tflite" / "iqa_float32.json").read_text())
    assert float_sidecar["input"]["dtype"] == "float32"
    assert float_sidecar["input"]["quantization"] is None


@pytest.mark.parametrize("quantize", ["none", "int8_io"])
def test_round_trip(exported, quantize):
    model, _, manifest = exported
    fn, input_size = tflite_predict_fn(manifest["tflite"][quantize])
    assert input_size == SIZE
    images = np.stack([make_image((SIZE, SIZE), seed=s) for s in range(5)])
    scores = fn(images)  # batch of 5 on a model converted with batch 1
    assert scores.shape == (5,) and scores.dtype == np.float32
    expected = keras_scores(model, images)
    np.testing.assert_allclose(scores, expected, atol=ATOL[quantize])
    # Other sizes are centre-cropped to the fixed input, never resized.
    big = make_image((SIZE + 4, SIZE + 8), seed=7)
    np.testing.assert_allclose(
        fn(big[None]),
        keras_scores(model, big[None, 2 : 2 + SIZE, 4 : 4 + SIZE]),
        atol=ATOL[quantize],
    )


def test_int8_really_is_integer(exported):
    from ai_edge_litert.interpreter import Interpreter

    _, _, manifest = exported
    interpreter = Interpreter(model_path=manifest["tflite"]["int8_io"])
    dtypes = {
        np.dtype(t["dtype"]).name
        for t in interpreter.get_tensor_details()
        if len(t["shape"]) == 4 and t["shape"][-1] in (8, 16)  # conv outputs
    }
    assert dtypes == {"int8"}


@pytest.mark.slow
@pytest.mark.parametrize("input_size", [SIZE, 0])
def test_every_variant_round_trips(tmp_path, calibration_dir, input_size):
    model = tiny_model(seed=1)
    manifest = export_tflite(
        model, tmp_path, QUANTIZATIONS, calibration_dir, input_size=input_size
    )
    image_size = (SIZE, SIZE) if input_size else (41, 35)
    images = np.stack([make_image(image_size, seed=s) for s in range(3)])
    expected = keras_scores(model, images)
    for quantize in QUANTIZATIONS:
        fn, got_size = tflite_predict_fn(manifest["tflite"][quantize], num_threads=1)
        assert got_size == (input_size or None)
        np.testing.assert_allclose(fn(images), expected, atol=ATOL[quantize])


def test_int8_needs_calibration(tmp_path):
    with pytest.raises(ConfigError, match="calibration"):
        export_model(tiny_model(), str(tmp_path), formats=["tflite"], quantize=["int8"])


def test_bad_options(tmp_path):
    model = tiny_model()
    with pytest.raises(ConfigError, match="Unknown quantization"):
        export_model(model, str(tmp_path), formats=["tflite"], quantize=["int4"])
    with pytest.raises(ConfigError, match="Unknown export format"):
        export_model(model, str(tmp_path), formats=["onnx"])
    with pytest.raises(ConfigError, match="TFLite only"):
        export_model(model, str(tmp_path), formats=["saved_model"], quantize=["fp16"])
    with pytest.raises(ConfigError, match="input_size"):
        export_model(model, str(tmp_path), input_size=-1)
    with pytest.raises(DataError, match="No images"):
        export_model(
            model,
            str(tmp_path),
            formats=["tflite"],
            quantize=["int8"],
            calibration_dir=str(tmp_path),
        )


def test_predict_fn_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        tflite_predict_fn(str(tmp_path / "missing.tflite"))
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(DataError, match="Cannot load"):
        tflite_predict_fn(str(broken))


def test_fixed_input_must_be_the_models_crop(tmp_path):
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    model = IQAModel(
        backbone="resnet18", weights="none", levels=("P5",), head_units=(4,),
        scoring_policy=ScoringPolicy(crop_size=SIZE),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="crop size 32"):
        export_model(model, str(tmp_path), formats=["tflite"], input_size=224)


def test_killed_export_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    from tfiqa.export import tflite

    out = tmp_path / "out"
    stale = out / "tflite" / f"{tflite.WORK_PREFIX}killed"
    stale.mkdir(parents=True)  # what a SIGKILLed export leaves
    (out / "export.json").write_text("{}")  # from an earlier, complete export
    before = set(os.listdir(tempfile.gettempdir()))

    def crash(*args, **kwargs):
        assert not (out / "export.json").exists()  # removed before any work
        assert not stale.exists()  # cleaned by the next export into the folder
        assert [p.name for p in (out / "tflite").iterdir()][0].startswith(
            tflite.WORK_PREFIX
        )
        raise KeyboardInterrupt

    monkeypatch.setattr(tflite, "export_tflite", crash)
    with pytest.raises(KeyboardInterrupt):
        export_model(tiny_model(), str(out), formats=["tflite"], input_size=SIZE)
    assert list((out / "tflite").iterdir()) == []
    assert not (out / "export.json").exists()  # a partial export has none
    new = set(os.listdir(tempfile.gettempdir())) - before
    assert not [n for n in new if "tflite" in n]
