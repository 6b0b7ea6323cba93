"""One test routine for any backbone or head, in the keras-hub manner.

`run_model_test(**model_kwargs)` builds an `IQAModel` and checks what every
model tfiqa ships must do: each backbone level at its stride, finite scores
that depend on the image, a batch scored as its images one by one, a `.keras`
round trip to equal scores, and (with `export=True`) a SavedModel and a
float TFLite file that score photos as the Keras model does.
"""

import numpy as np

from tfiqa.models import LEVEL_STRIDES, IQAModel
from tfiqa.scoring_policy import ScoringPolicy

CROP = 32
# Shallow levels, standardised: deep levels of a random-init network can be
# ~1e-10, which would make every check below pass on constant scores.
SMALL_HEAD = {
    "levels": ("P2", "P3"),
    "head_units": (4,),
    "head_input_norm": True,
    "output_activation": "linear",
    "scoring_policy": ScoringPolicy(crop_size=CROP),
}


def spread_scores(model, images):
    """Scales the head's output layer so scores of `images` spread over ~1,
    so that the tolerances below are small against real differences."""
    kernel = [w for w in model.head.weights if len(w.shape) == 2][-1]
    spread = float(np.ptp(np.asarray(model(images))))
    assert spread > 0, "the scores do not depend on the image"
    kernel.assign(kernel.numpy() / spread)


def check_levels(model, height=64, width=96):
    """Every level at its stride, finite, for a non-square batch."""
    images = np.random.default_rng(0).uniform(0, 255, (2, height, width, 3))
    features = model.backbone(images.astype("float32"))
    for level, value in features.items():
        stride = LEVEL_STRIDES[level]
        shape = tuple(value.shape)
        assert shape[:3] == (2, height // stride, width // stride), (level, shape)
        assert np.all(np.isfinite(np.asarray(value))), level
    return sorted(features)


def check_scores(model):
    """Scores are finite, differ between images, and do not depend on the
    batch an image is scored in (inference-mode BatchNorm, no batch state)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, CROP, CROP, 3), dtype=np.uint8)
    images[1] = 128  # a flat image next to noisy ones
    spread_scores(model, images)
    batch = np.asarray(model(images)).reshape(-1)
    assert batch.shape == (3,) and np.all(np.isfinite(batch))
    assert np.ptp(batch) > 0.5, "the scores do not depend on the image"
    alone = [float(np.asarray(model(images[i : i + 1])).reshape(-1)[0]) for i in (0, 1)]
    np.testing.assert_allclose(batch[:2], alone, rtol=1e-4, atol=1e-5)
    return images, batch


def check_round_trip(model, images, expected, folder):
    from tfiqa.inference.backends.keras import load_keras_model

    path = str(folder / "model.keras")
    model.save(path)
    loaded = load_keras_model(path)
    assert loaded.get_config() == model.get_config()
    got = np.asarray(loaded(images)).reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    return path


def check_export_parity(model, folder):
    """SavedModel and float TFLite score photos as Keras does (`tfiqa.load`
    of each: op allowlist, sidecar policy and crops included)."""
    import tfiqa
    from tfiqa.export import export_model
    from tfiqa.inference.backends.keras import model_scorer

    formats = ["saved_model", "tflite"]
    manifest = export_model(model, str(folder / "export"), formats, quantize=["none"])
    rng = np.random.default_rng(2)
    photos = [rng.integers(0, 256, (45, 60, 3), dtype=np.uint8) for _ in range(3)]
    expected = model_scorer(model).score(photos)
    for export, tolerance in (
        (manifest["saved_model"], 1e-5),
        (manifest["tflite"]["none"], 1e-4),
    ):
        got = tfiqa.load(export).score(photos)
        np.testing.assert_allclose(got, expected, atol=tolerance, err_msg=export)


def run_model_test(folder, export=False, **model_kwargs):
    """Builds `IQAModel(weights="none", **SMALL_HEAD | model_kwargs)` and runs
    every check; returns the model and its backbone's level names."""
    kwargs = {"weights": "none", **SMALL_HEAD, **model_kwargs}
    model = IQAModel(**kwargs)
    levels = check_levels(model)
    images, scores = check_scores(model)
    check_round_trip(model, images, scores, folder)
    if export:
        check_export_parity(model, folder)
    return model, levels
