"""Compression: JPEG2000 and JPEG (KADID-10k types 9-10).

- jpeg: libjpeg through `tf.io.encode_jpeg` (4:2:0 chroma subsampling, as
  MATLAB `imwrite`) at quality 70, 43, 36, 24, 7 (KADIS-700k's values).
- jpeg2000: Pillow's OpenJPEG encoder with distortion-targeted rate
  allocation (`quality_mode="dB"`) at PSNR targets 36, 32, 29, 26, 23 dB.
  KADID's generator used MATLAB's encoder at fixed compression ratios; fixed
  ratios break down on training crops (a 64x64 crop at ratio 64 is smaller
  than the codestream's own headers, so the last levels come out
  identical), while PSNR targets behave the same at every size and span the
  same visible range (slight softening to heavy ringing and blur). It runs
  through `tf.numpy_function` and is registered `python_only`.
"""

import io

import numpy as np
import tensorflow as tf

from tfiqa.distortions.ops import to_uint8
from tfiqa.distortions.registry import register_distortion

JPEG_QUALITIES = (70, 43, 36, 24, 7)
JPEG2000_PSNR_TARGETS = (36.0, 32.0, 29.0, 26.0, 23.0)


def jpeg_roundtrip(image, quality):
    """Encodes float (H, W, 3) in [0, 1] as JPEG at `quality` and decodes it."""
    quality = int(min(max(quality, 1), 100))
    encoded = tf.io.encode_jpeg(
        to_uint8(tf.ensure_shape(image, [None, None, 3])), quality=quality
    )
    decoded = tf.io.decode_jpeg(encoded, channels=3)
    return tf.cast(decoded, tf.float32) / 255.0


@register_distortion("jpeg", params=JPEG_QUALITIES)
def jpeg(image, level, seed):
    """JPEG compression at a quality (1-100) per level."""
    return jpeg_roundtrip(image, JPEG_QUALITIES[level - 1])


def _jpeg2000_numpy(image, mode, value):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(
        buffer,
        format="JPEG2000",
        quality_mode=mode,
        quality_layers=[float(value)],
        irreversible=True,
    )
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def jpeg2000_roundtrip(image, psnr_target):
    """JPEG2000 (OpenJPEG via Pillow) targeting `psnr_target` dB, out of graph."""
    pixels = to_uint8(image)
    out = tf.numpy_function(
        lambda x: _jpeg2000_numpy(x, "dB", psnr_target),
        [pixels],
        tf.uint8,
        stateful=False,
    )
    out = tf.reshape(out, tf.shape(pixels))
    return tf.cast(out, tf.float32) / 255.0


@register_distortion("jpeg2000", params=JPEG2000_PSNR_TARGETS, python_only=True)
def jpeg2000(image, level, seed):
    """JPEG2000 compression to a PSNR target (dB) per level (Pillow/OpenJPEG)."""
    return jpeg2000_roundtrip(image, JPEG2000_PSNR_TARGETS[level - 1])
