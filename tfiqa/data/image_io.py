"""Robust image decoding: any common format, mode or bit depth -> RGB uint8.

Pillow does the decoding so that multi-picture JPEGs (MPO, often saved with a
`.jpg` name), 16-bit PNG/TIFF, CMYK JPEGs and EXIF orientation tags are all
handled the same way in training, evaluation and inference.
"""

import errno
import io
import os
import struct
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from tfiqa.errors import ImageError
from tfiqa.files import file_kind

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".mpo",
    ".webp",
    ".ppm",
    ".pgm",
)

# Checked from the header before decoding: a small file can claim a huge
# image (decompression bomb), and a 1-pixel-wide strip is no photo.
MAX_PIXELS = 80_000_000
MAX_ASPECT_RATIO = 32
# libjpeg fills the blocks a JPEG's data does not reach with flat grey 128
# and only warns: a file cut short, or whose header overstates its size,
# decodes "fine". A JPEG whose last JPEG_FILL_ROWS rows are all exactly
# (128, 128, 128) is refused as such (the serving graph applies the same rule).
JPEG_FILL_ROWS = 16
JPEG_FILL_MESSAGE = (
    "JPEG data ends before the image does (truncated, or a header that "
    "overstates the size)"
)

# Modes holding more than 8 bits per sample; scaled, not clipped, to uint8.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

# Errors Pillow raises for unreadable, corrupt or truncated files (a GIF cut
# after an image separator raises struct.error while counting its frames).
_DECODE_ERRORS = (
    UnidentifiedImageError,
    struct.error,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    Image.DecompressionBombError,
)


def _to_rgb_array(img):
    """Converts a loaded PIL image of any mode to an RGB uint8 array (H, W, 3)."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        data = np.asarray(img).astype(np.float64)
        # "I" is also used for 8-bit-range data by some decoders; only scale
        # when the values actually exceed the 8-bit range.
        if mode != "I" or data.max(initial=0) > 255:
            data = data / 257.0
        gray = np.clip(np.rint(data), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        data = np.asarray(img).astype(np.float64)
        if data.size and data.min() >= 0.0 and data.max() <= 1.0:
            data = data * 255.0
        gray = np.clip(np.rint(data), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def load_image(path):
    """Decodes an image file to an RGB uint8 array, upright.

    Grayscale, RGBA, palette, CMYK and 16-bit images become 3-channel uint8
    (16-bit values are scaled by 1/257, not clipped); the EXIF orientation tag
    is applied because observers rated photos as displayed; for a
    multi-picture file (MPO) the first (primary) frame is used. The whole file
    is decoded eagerly, so a truncated file raises instead of loading half grey.

    Args:
        path: str or path-like. The image file.

    Returns:
        np.ndarray uint8 of shape (H, W, 3).

    Raises:
        ImageError: the file is missing, empty, truncated or not an image.

    Example:
    ```python
    image = load_image("photos/ss01 (1).jpg")  # (512, 512, 3) uint8
    ```
    """
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if file_size(path) == 0:
        raise ImageError(path, "Image file is empty (0 bytes)")
    return _decode(path, path)


def decode_image(data, name=""):
    """Decodes the bytes of an image file like `load_image` decodes the file.

    For images that are not local files (object stores, messages): the same
    modes, EXIF orientation, size caps and error messages as `load_image`.

    Args:
        data: bytes. The whole encoded file.
        name: str. Where the bytes came from, named in errors.

    Returns:
        np.ndarray uint8 of shape (H, W, 3).

    Raises:
        ImageError: the bytes are empty, truncated or not an image.
    """
    if not data:
        raise ImageError(name, "Image file is empty (0 bytes)")
    return _decode(io.BytesIO(data), name)


def _ends_in_fill(img):
    """Whether the stored (not yet rotated) image's last JPEG_FILL_ROWS rows
    are all decoder fill: exactly 128 in every channel."""
    width, height = img.size
    if height <= JPEG_FILL_ROWS or img.mode not in ("RGB", "L"):
        return False
    rows = np.asarray(img.crop((0, height - JPEG_FILL_ROWS, width, height)))
    return bool(np.all(rows == 128))


def _decode(source, path):
    """`source` (a file name or a binary file object) -> RGB uint8 (H, W, 3)."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Somebody enabled Pillow's global "pad truncated images with grey"
        # switch; a half-grey image would silently corrupt the MOS labels.
        raise ImageError(
            path,
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True, so truncated images "
            "cannot be detected; set it to False",
        )
    try:
        with warnings.catch_warnings():
            # Our own caps below replace Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        with img:
            check_header_size(img.size, path)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            if img.format in ("JPEG", "MPO") and _ends_in_fill(img):
                raise ImageError(path, JPEG_FILL_MESSAGE)
            img = ImageOps.exif_transpose(img)
            return _to_rgb_array(img)
    except Image.DecompressionBombError as e:
        raise ImageError(
            path, f"Image too large: at most {MAX_PIXELS} pixels ({e})"
        ) from None
    except _DECODE_ERRORS as e:
        # Pillow names a file object by its repr: name the bytes' source.
        reason = (str(e) or type(e).__name__).replace(repr(source), repr(path))
        raise ImageError(path, f"Cannot decode image ({reason})") from e


def file_size(path):
    """Size of a regular file; ImageError saying what `path` is otherwise."""
    if "\0" in path:
        raise ImageError(path.replace("\0", "\\0"), "File name holds a NUL byte")
    try:
        info = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageError(path, "Symbolic link loop, not an image file") from None
        if os.path.islink(path):
            raise ImageError(path, "Broken symbolic link, not an image file") from None
        if e.errno == errno.ENOENT:
            raise ImageError(path, "Image file not found") from None
        raise ImageError(path, f"Cannot read image file ({e.strerror})") from None
    kind = file_kind(info.st_mode)
    if kind is not None:
        raise ImageError(path, f"Not an image file: it is {kind}")
    return info.st_size


def check_header_size(size, path=""):
    """Rejects (width, height) beyond `MAX_PIXELS` or `MAX_ASPECT_RATIO`."""
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise ImageError(
            path,
            f"Image too large: at most {MAX_PIXELS} pixels. "
            f"Received: {width}x{height} (width x height)",
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(
            path,
            f"Image aspect ratio above {MAX_ASPECT_RATIO}:1. "
            f"Received: {width}x{height} (width x height)",
        )


def check_min_size(image, crop_size, path=""):
    """Raises ImageError if `image` (H, W, ...) is smaller than a square crop.

    Args:
        image: array-like with shape (H, W, ...).
        crop_size: int. Side of the square crop.
        path: str. The image's file, named in the error.
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    if h < crop_size or w < crop_size:
        raise ImageError(
            path,
            f"Image is smaller than the crop size {crop_size}x{crop_size}. "
            f"Received: {h}x{w}",
        )
