"""Shared fixtures: tiny synthetic images made on the fly, never real data."""

import os

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


@pytest.fixture
def image_folder(tmp_path):
    """A folder with six small JPEG/PNG images; returns its path."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(make_image(seed=i)).save(folder / f"img_{i}.{ext}")
    return folder
