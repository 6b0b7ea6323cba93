"""Image folders and input fitting for exported models.

How an image becomes a score is the model's scoring policy
(`tfiqa.models.scoring`), the same for every format; `CROP_POLICY` describes
it in the sidecars. `fit_to_size` (centre crop / zero pad, never resize) only
adapts an array handed directly to a fixed-size export's predict function.
"""

import os

import numpy as np
import tensorflow as tf

from tfiqa.data.image_io import IMAGE_EXTENSIONS
from tfiqa.errors import DataError

CROP_POLICY = (
    "one input is one crop: score each image as the mean over the `scoring` "
    "policy's crops (crop_size x crop_size, spread as tfiqa.data.crops."
    "crop_positions places them); an image whose short side is below "
    "crop_size is first upscaled (bilinear, aspect kept) to it when "
    "small_images is 'upscale', or scored whole (dynamic input only) when "
    "'whole'."
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
