"""Image resizing in numpy that gives the pixels `tf.image.resize` gives.

The scoring policy resizes in two places: inside exported graphs (TF ops)
and in Python before a model is called. Both must see the same pixels, and
the Python side must not need TensorFlow (a `.tflite` model is scored with
LiteRT alone). These functions follow TF's kernels step by step in float32:
`ResizeBilinear` with half-pixel centres when enlarging, and
`ScaleAndTranslate` with the antialiased triangle kernel when shrinking.
"""

import numpy as np


def _bilinear_taps(in_size, out_size):
    """Lower/upper source indices and weights of TF's half-pixel bilinear."""
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    centres = centres - np.float32(0.5)
    floor = np.floor(centres)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(centres).astype(np.int64), in_size - 1)
    return lower, upper, (centres - floor).astype(np.float32)


def _resize_bilinear(image, height, width):
    x = image.astype(np.float32)
    y0, y1, wy = _bilinear_taps(image.shape[0], height)
    x0, x1, wx = _bilinear_taps(image.shape[1], width)
    wx = wx[np.newaxis, :, np.newaxis]
    top = x[y0][:, x0] + (x[y0][:, x1] - x[y0][:, x0]) * wx
    bottom = x[y1][:, x0] + (x[y1][:, x1] - x[y1][:, x0]) * wx
    return top + (bottom - top) * wy[:, np.newaxis, np.newaxis]


def _triangle_spans(in_size, out_size):
    """(starts, weights (out, span)) of TF's antialiased triangle kernel."""
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0) / scale
    kernel_scale = max(inv_scale, np.float32(1.0))
    span = min(2 * int(np.ceil(kernel_scale)) + 1, in_size)
    samples = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale
    starts = np.ceil(samples - kernel_scale - np.float32(0.5)).astype(np.int64)
    ends = np.floor(samples + kernel_scale - np.float32(0.5)).astype(np.int64)
    starts = np.clip(starts, 0, in_size - 1)
    ends = np.clip(ends, 0, in_size - 1) + 1
    sources = starts[:, np.newaxis] + np.arange(span)
    offsets = sources.astype(np.float32) + np.float32(0.5) - samples[:, np.newaxis]
    weights = np.maximum(
        np.float32(0.0), np.float32(1.0) - np.abs(offsets / kernel_scale)
    ).astype(np.float32)
    weights[sources >= ends[:, np.newaxis]] = 0.0
    totals = weights.sum(axis=1, dtype=np.float32)
    weights *= (np.float32(1.0) / totals)[:, np.newaxis]
    return np.minimum(sources, in_size - 1), weights


def _resize_axis_antialiased(x, out_size, axis):
    """Resamples `x` (H, W, C) along `axis` (0: rows, 1: columns) -> float32.

    One gather per kernel tap, cast after the gather, so a large uint8 image
    never exists as a whole in float32.
    """
    sources, weights = _triangle_spans(x.shape[axis], out_size)
    shape = (-1, 1, 1) if axis == 0 else (1, -1, 1)
    out = None
    for k in range(weights.shape[1]):
        term = np.take(x, sources[:, k], axis=axis).astype(np.float32)
        term *= weights[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


def _resize_antialiased(image, height, width):
    # Rows first: gathering whole rows is the cheap direction in memory.
    rows = _resize_axis_antialiased(image, height, axis=0)
    return _resize_axis_antialiased(rows, width, axis=1)


def _to_uint8(x):
    return np.clip(np.round(x), 0.0, 255.0).astype(np.uint8)


def resize_short_side(image, side, downscale=True):
    """Resizes uint8 (H, W, C) so its short side is `side` (aspect kept).

    Bilinear, antialiased when shrinking; an image whose short side is
    already `side` (or larger, with `downscale=False`) comes back unchanged.
    The long side is rounded up, so it never falls below the short one.

    Args:
        image: uint8 numpy array (H, W, C).
        side: int. The short side wanted.
        downscale: bool. Also shrink images whose short side is larger.

    Returns:
        uint8 numpy array (H', W', C).
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    short = min(h, w)
    if short == side or (short > side and not downscale):
        return image
    new_h = side if h <= w else -(-h * side // short)
    new_w = -(-w * side // short) if h <= w else side
    if short > side:
        return _to_uint8(_resize_antialiased(image, new_h, new_w))
    return _to_uint8(_resize_bilinear(image, new_h, new_w))
