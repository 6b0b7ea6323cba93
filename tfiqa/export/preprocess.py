"""The input policy shared by every export: crop or pad, never resize.

An exported model either scores images at their own size (dynamic input
size) or takes a fixed `size x size` input. In the fixed case an image is
centre-cropped to the size, and a side shorter than the size is zero-padded
symmetrically (`tf.image.resize_with_crop_or_pad`). Images are never
resized: IQA scores the artefacts that resampling would change. The same
function prepares calibration images, verification images and the images the
`image_bytes` serving signature decodes, so that all exports see identical
pixels.
"""

import os

import numpy as np
import tensorflow as tf

from tfiqa.data.image_io import IMAGE_EXTENSIONS
from tfiqa.errors import DataError

CROP_POLICY = (
    "fixed input size: centre crop to size x size, zero-pad a shorter side "
    "symmetrically; dynamic input size: the whole image at its own size. "
    "Never resized."
)


def fit_to_size(images, size):
    """Centre-crops (or zero-pads) images to `size x size` without resizing.

    Args:
        images: uint8 array or tensor (H, W, 3) or (B, H, W, 3).
        size: int or None. None (or 0) returns the images unchanged.

    Returns:
        The same rank and dtype as `images`; (size, size, 3) spatially.
    """
    if not size:
        return images
    out = tf.image.resize_with_crop_or_pad(images, size, size)
    return out.numpy() if isinstance(images, np.ndarray) else out


def list_image_files(folder, limit=None):
    """Sorted image files directly inside `folder` (by extension).

    Raises:
        DataError: the folder is missing or holds no images.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"Image folder not found. Received: {folder}")
    files = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )
    if not files:
        raise DataError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}. "
            f"Received: {len(os.listdir(folder))} other entries"
        )
    return files[:limit] if limit else files
