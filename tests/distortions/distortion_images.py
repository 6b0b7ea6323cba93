"""Test images for distortions: tests/conftest.make_image plus edges and
texture at several scales, so that no distortion lines up with a period of
the test pattern by chance."""

import numpy as np
from conftest import make_image
from scipy import ndimage


def natural_image(size=64, seed=0):
    """uint8 (size, size, 3): make_image + a few coloured rectangles (edges),
    all under multi-scale texture (no perfectly flat areas, as in photos)."""
    rng = np.random.default_rng(1000 + seed)
    base = make_image((size, size), seed=seed).astype(np.float64)
    texture = sum(
        ndimage.gaussian_filter(rng.normal(0, 1, (size, size, 3)), (s, s, 0)) * s
        for s in (1, 3, 8)
    )
    image = 0.6 * base + 40
    for _ in range(4):
        y, x = rng.integers(0, size - size // 4, 2)
        h, w = rng.integers(size // 8, size // 3, 2)
        image[y : y + h, x : x + w] = rng.uniform(20, 210, 3)
    image += 25.0 * texture / texture.std()
    return np.clip(image, 0, 255).astype(np.uint8)
