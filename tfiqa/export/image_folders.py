"""Image folders for calibration and verification of exports."""

import os

from tfiqa.data.image_io import IMAGE_EXTENSIONS
from tfiqa.errors import DataError


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
