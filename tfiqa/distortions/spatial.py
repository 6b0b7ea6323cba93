"""Spatial: jitter, non-eccentricity patch, pixelate, quantisation, colour
block (KADID-10k types 19-23).

KADID's images are 512x384; counts and sizes of local defects are scaled to
the image area (A = H * W / (512 * 384)) so a 224x224 training crop shows a
similar density of defects as a KADID image.

- jitter: every pixel moved by an independent random Gaussian displacement,
  resampled bilinearly (KADIS: bicubic). KADIS applies five successive warps
  of sigma 0.05, 0.1, 0.2, 0.5, 1 px (KADIS-700k); their displacements add
  up, so one warp of sigma sqrt(5) times as large is used instead (one
  resampling instead of five, which also drops the slight extra blur of
  resampling five times).
- non_eccentricity_patch: 20, 40, 60, 80, 100 (times A, at least 2, 4, ..., 10)
  patches of 16x16 px (smaller on images under 128 px) copied to a random
  offset of up to half a patch (KADIS-700k).
- pixelate: a mosaic of 2, 3, 4, 6, 8 px square blocks, each the mean of
  its pixels. KADIS resizes down by 0.95 - p^0.6 (p = 0.01 ... 0.5, i.e.
  blocks of 1.1 to 3.4 px) and back up with nearest neighbour; at
  non-integer factors that drops rows and columns at phases that make mild
  levels randomly better or worse than each other, so integer block sizes
  covering a similar (slightly wider) range are used.
- quantization: every channel quantised to 20, 16, 13, 10, 7 levels,
  evenly spaced between the channel's minimum and maximum, each bin mapped
  to its centre. KADID places thresholds with MATLAB multithresh
  (multi-level Otsu), which has no TF form and whose data-dependent
  thresholds do not keep the levels ordered.
- color_block: 2, 4, 6, 8, 10 uniformly coloured squares of 32 px
  (times sqrt(A), at least 4 px) at random positions (KADIS-700k).
"""

import math

import tensorflow as tf

from tfiqa.distortions import ops
from tfiqa.distortions.registry import register_distortion, sub_seed

JITTER_SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0)
PATCH_COUNTS = (20, 40, 60, 80, 100)
PIXEL_BLOCKS = (2, 3, 4, 6, 8)
QUANTIZATION_LEVELS = (20, 16, 13, 10, 7)
BLOCK_COUNTS = (2, 4, 6, 8, 10)
KADID_AREA = 512.0 * 384.0


def _size(image):
    shape = tf.shape(image)
    return shape[0], shape[1]


def _area_scale(image):
    h, w = _size(image)
    return tf.cast(h * w, tf.float32) / KADID_AREA


@register_distortion("jitter", params=JITTER_SIGMAS)
def jitter(image, level, seed):
    """Random per-pixel warp (five warps' worth); per-warp sigma (px) per level."""
    # The sum of five independent N(0, sigma^2) displacements is N(0, 5 sigma^2).
    sigma = JITTER_SIGMAS[level - 1] * math.sqrt(5.0)
    h, w = _size(image)
    ys, xs = tf.meshgrid(
        tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij"
    )
    shifts = tf.random.stateless_normal([h, w, 2], seed) * sigma  # (H, W, 2)
    return ops.bilinear_sample(image, ys - shifts[..., 0], xs - shifts[..., 1])


def _uniform_int(shape, seed, low, high):
    """Integers in [low, high] (inclusive; high >= low enforced)."""
    high = tf.maximum(high, low)
    u = tf.random.stateless_uniform(shape, seed)
    return low + tf.cast(tf.floor(u * tf.cast(high - low + 1, tf.float32)), tf.int32)


@register_distortion("non_eccentricity_patch", params=PATCH_COUNTS)
def non_eccentricity_patch(image, level, seed):
    """Small patches copied to nearby positions; number of patches per level."""
    h, w = _size(image)
    scale = _area_scale(image)
    size = tf.clip_by_value(tf.minimum(h, w) // 8, 4, 16)
    n_max = tf.maximum(10, tf.cast(tf.round(PATCH_COUNTS[-1] * scale), tf.int32))
    n = tf.maximum(
        2 * level, tf.cast(tf.round(PATCH_COUNTS[level - 1] * scale), tf.int32)
    )
    radius = size
    # Source corners, kept a radius away from the border as in KADIS.
    sy = _uniform_int([n_max], sub_seed(seed, 0), radius, h - size - radius)
    sx = _uniform_int([n_max], sub_seed(seed, 1), radius, w - size - radius)
    dy = _uniform_int([n_max], sub_seed(seed, 2), -(radius // 2), radius // 2)
    dx = _uniform_int([n_max], sub_seed(seed, 3), -(radius // 2), radius // 2)
    dx = tf.where((dx == 0) & (dy == 0), 1, dx)
    return ops.paste_patches(
        image, None, (sy + dy)[:n], (sx + dx)[:n], dy[:n], dx[:n], size, size
    )


@register_distortion("pixelate", params=PIXEL_BLOCKS)
def pixelate(image, level, seed):
    """Mosaic of square blocks (mean colour); block size (px) per level."""
    block = PIXEL_BLOCKS[level - 1]
    h, w = _size(image)
    ph = (block - h % block) % block
    pw = (block - w % block) % block
    padded = tf.gather(image, tf.minimum(tf.range(h + ph), h - 1), axis=0)
    padded = tf.gather(padded, tf.minimum(tf.range(w + pw), w - 1), axis=1)
    means = tf.nn.avg_pool2d(padded[None], block, block, "VALID")[0]
    up = tf.repeat(tf.repeat(means, block, axis=0), block, axis=1)
    return up[:h, :w]


@register_distortion("quantization", params=QUANTIZATION_LEVELS)
def quantization(image, level, seed):
    """Per-channel uniform quantisation; number of levels per level."""
    n = float(QUANTIZATION_LEVELS[level - 1])
    lo = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    step = tf.maximum(hi - lo, 1e-6) / n
    index = tf.clip_by_value(tf.floor((image - lo) / step), 0.0, n - 1.0)
    return lo + (index + 0.5) * step


@register_distortion("color_block", params=BLOCK_COUNTS)
def color_block(image, level, seed):
    """Uniformly coloured squares at random positions; number per level."""
    h, w = _size(image)
    size = tf.maximum(
        4, tf.cast(tf.round(32.0 * tf.sqrt(_area_scale(image))), tf.int32)
    )
    size = tf.minimum(size, tf.minimum(h, w))
    n_max = BLOCK_COUNTS[-1]
    n = BLOCK_COUNTS[level - 1]
    y0 = _uniform_int([n_max], sub_seed(seed, 0), 0, h - size)
    x0 = _uniform_int([n_max], sub_seed(seed, 1), 0, w - size)
    colours = tf.random.stateless_uniform([n_max, 3], sub_seed(seed, 2))
    return ops.paste_patches(image, colours[:n], y0[:n], x0[:n], None, None, size, size)
