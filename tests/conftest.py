"""Shared fixtures: tiny synthetic images made on the fly, never real data."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def make_image(size=(48, 40), seed=0):
    """A smooth random RGB uint8 image (H, W, 3) with some structure."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            np.sin(x / (3 + seed % 5)) * 60 + 120,
            np.cos(y / (4 + seed % 3)) * 60 + 120,
            (x + y) * 120.0 / (h + w) + 60,
        ],
        axis=-1,
    )
    noise = rng.normal(0, 8, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def conv_scorer(size=8, seed=0, activation="relu", batchnorm=True, rescale=False):
    """A tiny conv net: (B, size, size, 3) images (uint8 with `rescale`) ->
    (B,) sigmoid scores from a Dense layer named "score"."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs) if rescale else inputs
    x = keras.layers.Conv2D(4, 3, activation=activation)(x)
    if batchnorm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(1, activation="sigmoid", name="score")(x)
    return keras.Model(inputs, keras.layers.Reshape(())(x))


def tiny_resnet(**overrides):
    """A small random-weight ResNet-18 IQAModel scoring 32 px crops."""
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    settings = dict(
        backbone="resnet18",
        weights="none",
        levels=("P3", "P5"),
        head_units=(8,),
        dropout=0.0,
        scoring_policy=ScoringPolicy(crop_size=32),
    )
    return IQAModel(**{**settings, **overrides})


def python_stdout(code):
    """stdout of `python -c code` in a fresh interpreter (fails on error)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


# A small IQAModel: random weights, one level, an 8-unit head.
TINY_MODEL_SETTINGS = (
    "model.backbone=mobilenet_v3_small",
    "model.weights=none",
    "model.levels=[P5]",
    "model.head_units=[8]",
)


@pytest.fixture
def image_folder(tmp_path):
    """A folder with six small JPEG/PNG images; returns its path."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(make_image(seed=i)).save(folder / f"img_{i}.{ext}")
    return folder
