"""int8 calibration spans the model's score range: low scores are not clamped.

A sharpness meter calibrated on sharp photos only (as the shipped preset was
on Kodak24) must still score blurred photos like its float model.
"""

import json

import keras
import numpy as np
import pytest
from conftest import make_image
from PIL import Image, ImageFilter

from tfiqa.inference.backends.tflite import tflite_predict_fn

from .helpers import export_tflite

SIZE = 32
LOGIT_RANGE = (-2.4, 2.4)  # float scores 0.083 .. 0.917 over the test crops
BLUR_RADII = np.linspace(0.0, 3.0, 12)


def photo(seed, blur):
    image = Image.fromarray(make_image((SIZE, SIZE), seed=seed))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(float(blur))))


def sharpness_model(crops):
    """(B, 32, 32, 3) pixels -> sigmoid(w * mean |gradient| + b), with w and b
    set so that `crops` span exactly `LOGIT_RANGE`."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    gradients = keras.layers.Conv2D(4, 2, use_bias=False)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(gradients(x)))
    score = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, keras.layers.Reshape(())(score(x)))
    # +-d/dx and +-d/dy of the grey level: ReLU of both signs gives |gradient|.
    dx = np.array([[1, -1], [0, 0]], np.float32) / 3
    kernels = [dx, -dx, dx.T, -dx.T]  # each (2, 2)
    kernel = np.stack([np.stack([k] * 3, axis=-1) for k in kernels], axis=-1)
    gradients.kernel.assign(kernel)  # (2, 2, 3, 4)
    energy = keras.Model(inputs, x)(crops.astype(np.float32)).numpy().sum(1)
    low, high = LOGIT_RANGE
    weight = (high - low) / (energy.max() - energy.min())
    score.kernel.assign(np.full((4, 1), weight, np.float32))
    score.bias.assign([low - weight * energy.min()])
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    crops = np.stack([photo(seed=i, blur=r) for i, r in enumerate(BLUR_RADII)])
    model = sharpness_model(crops)
    calibration = tmp_path_factory.mktemp("sharp_only")
    for i in range(6):
        Image.fromarray(photo(seed=100 + i, blur=0.0)).save(calibration / f"{i}.png")
    out = tmp_path_factory.mktemp("export")
    manifest = export_tflite(model, out, ["int8", "int8_io"], calibration, SIZE)
    return model, crops, manifest


def test_sharp_calibration_scores_above_every_blurred_photo(exported):
    model, crops, _ = exported
    scores = model(crops.astype(np.float32)).numpy()
    assert scores.min() < 0.1 and scores.max() > 0.9
    sharp = np.stack([photo(seed=100 + i, blur=0.0) for i in range(6)])
    assert model(sharp.astype(np.float32)).numpy().min() > 0.5


@pytest.mark.parametrize("quantize", ["int8", "int8_io"])
def test_int8_follows_float_over_the_whole_score_range(exported, quantize):
    model, crops, manifest = exported
    expected = model(crops.astype(np.float32)).numpy()
    fn, _ = tflite_predict_fn(manifest["tflite"][quantize])
    scores = np.concatenate([fn(crop[np.newaxis]) for crop in crops])
    np.testing.assert_allclose(scores, expected, atol=0.05)
    # No two photos that the float model tells apart come out tied.
    apart = np.abs(expected[:, None] - expected[None, :]) > 0.05
    assert not np.any(apart & (scores[:, None] == scores[None, :]))


def test_sidecar_records_the_calibration_check(exported):
    _, _, manifest = exported
    path = manifest["tflite"]["int8"].replace(".tflite", ".json")
    with open(path) as f:
        sidecar = json.load(f)
    assert sidecar["calibration_images"] == 6
    assert sidecar["calibration_copies"] >= 1
    check = sidecar["int8_check"]
    assert check["images"] == 12 and check["max_abs_error"] < 0.05
    assert check["float_range"][0] < 0.5 < check["float_range"][1]


def colour_balance_model():
    """(B, 32, 32, 3) pixels -> the mean of red and green, unbounded (a linear
    score): 0.5 for any photo whose red and green add up to 255."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    score = keras.layers.Dense(1)
    model = keras.Model(inputs, keras.layers.Reshape(())(score(x)))
    score.kernel.assign(np.float32([[0.5], [0.5], [0.0]]))
    score.bias.assign([0.0])
    return model


def flat(red, green):
    return np.full((SIZE, SIZE, 3), (red, green, 128), np.uint8)


def test_an_unbounded_score_is_not_clamped_to_the_calibration_scores(tmp_path):
    # Every calibration photo scores 0.5 while each channel spans 0..255: the
    # features are calibrated, the score's own range is one point. Photos
    # scoring from 0.02 to 0.98 must come out of the int8 file as in float.
    model = colour_balance_model()
    calibration = tmp_path / "balanced"
    calibration.mkdir()
    for i, red in enumerate(np.linspace(0, 255, 8).astype(int)):
        Image.fromarray(flat(red, 255 - red)).save(calibration / f"{i}.png")
    manifest = export_tflite(
        model, tmp_path / "export", ["none", "int8_io"], calibration, SIZE
    )
    photos = np.stack([flat(v, v) for v in np.linspace(5, 250, 9).astype(int)])
    expected = model(photos.astype(np.float32)).numpy()
    assert expected.min() < 0.05 and expected.max() > 0.95
    for quantize, tolerance in (("none", 1e-6), ("int8_io", 0.01)):
        fn, _ = tflite_predict_fn(manifest["tflite"][quantize])
        scores = np.concatenate([fn(photo[np.newaxis]) for photo in photos])
        np.testing.assert_allclose(scores, expected, atol=tolerance)
