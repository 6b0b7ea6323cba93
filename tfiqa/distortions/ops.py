"""TensorFlow building blocks shared by the distortion families.

All functions take and return float32 images of shape (H, W, C) and work for
any (dynamic) size, including images smaller than a filter's support.
"""

import math

import numpy as np
import tensorflow as tf


def to_uint8(image):
    """Float image(s) in [0, 1] -> uint8 (clipped, rounded)."""
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)


def _mirror_indices(n, before, after):
    """Indices of a symmetric ("half-sample") extension of an axis of length n,
    for any pad width, even one larger than n."""
    i = tf.range(-before, n + after)
    period = 2 * n
    m = tf.math.floormod(i, period)
    return tf.where(m < n, m, period - 1 - m)


def pad_symmetric(image, ry, rx):
    """Pads (H, W, C) by ry rows and rx columns on each side, mirroring."""
    shape = tf.shape(image)
    image = tf.gather(image, _mirror_indices(shape[0], ry, ry), axis=0)
    return tf.gather(image, _mirror_indices(shape[1], rx, rx), axis=1)


def gaussian_kernel1d(sigma, radius=None):
    """A normalised 1-D Gaussian (numpy, float32) of odd length 2*radius+1."""
    if radius is None:
        radius = max(1, math.ceil(3.0 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2.0 * sigma**2))
    return (k / k.sum()).astype(np.float32)


def depthwise_filter(image, kernel):
    """Correlates every channel of (H, W, C) with one 2-D kernel (kh, kw),
    mirroring at the borders; output has the input's size."""
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    kh, kw = kernel.shape
    channels = image.shape[-1] or 3
    padded = pad_symmetric(image, kh // 2, kw // 2)
    weights = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])  # (kh, kw, C, 1)
    out = tf.nn.depthwise_conv2d(
        padded[None], weights, strides=[1, 1, 1, 1], padding="VALID"
    )
    return out[0]


def separable_filter(image, k1d):
    """Applies the 1-D kernel along rows then columns (mirrored borders)."""
    k1d = np.asarray(k1d, np.float32)
    out = depthwise_filter(image, k1d[:, None])
    return depthwise_filter(out, k1d[None, :])


def gaussian_blur(image, sigma, radius=None):
    return separable_filter(image, gaussian_kernel1d(sigma, radius))


# sRGB (D65) <-> CIE L*a*b*, as in MATLAB rgb2lab / skimage.color.rgb2lab.
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    np.float32,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ).astype(np.float32)
_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)
_DELTA = 6.0 / 29.0


def fast_pow(x, p):
    """x ** p for x >= 0 as exp(p * log(x)): several times faster than `tf.pow`
    on CPU (vectorised exp and log), equal up to float32 rounding."""
    return tf.exp(p * tf.math.log(tf.maximum(x, 1e-30)))


# L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz): linear in (fx, fy, fz),
# so one (3, 3) matmul replaces unstacking and restacking the channels.
_F_TO_LAB = np.array([[0, 500, 0], [116, -500, 200], [0, 0, -200]], np.float32)
_LAB_OFFSET = np.array([-16.0, 0.0, 0.0], np.float32)
_LAB_TO_F = np.linalg.inv(_F_TO_LAB).astype(np.float32)


def rgb_to_lab(rgb):
    """float (..., 3) sRGB in [0, 1] -> L in [0, 100], a and b about [-128, 127]."""
    rgb = tf.clip_by_value(rgb, 0.0, 1.0)
    linear = tf.where(rgb <= 0.04045, rgb / 12.92, fast_pow((rgb + 0.055) / 1.055, 2.4))
    xyz = tf.tensordot(linear, tf.constant(_RGB_TO_XYZ.T / _WHITE[None, :]), axes=1)
    f = tf.where(
        xyz > _DELTA**3,
        fast_pow(xyz, 1.0 / 3.0),
        xyz / (3 * _DELTA**2) + 4.0 / 29.0,
    )
    return tf.tensordot(f, tf.constant(_F_TO_LAB), axes=1) + _LAB_OFFSET


def lab_to_rgb(lab):
    """Inverse of `rgb_to_lab`; out-of-gamut colours are clipped to [0, 1]."""
    f = tf.tensordot(lab - _LAB_OFFSET, tf.constant(_LAB_TO_F), axes=1)
    xyz = tf.where(f > _DELTA, f * f * f, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    linear = tf.tensordot(xyz, tf.constant((_XYZ_TO_RGB * _WHITE[None, :]).T), axes=1)
    linear = tf.clip_by_value(linear, 0.0, 1.0)
    rgb = tf.where(
        linear <= 0.0031308,
        12.92 * linear,
        1.055 * fast_pow(linear, 1.0 / 2.4) - 0.055,
    )
    return tf.clip_by_value(rgb, 0.0, 1.0)


# Full-range (JPEG) YCbCr with chroma centred on 0.5.
_RGB_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    np.float32,
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC).astype(np.float32)
_YCC_OFFSET = np.array([0.0, 0.5, 0.5], np.float32)


def rgb_to_ycbcr(rgb):
    return tf.tensordot(rgb, tf.constant(_RGB_TO_YCC.T), axes=1) + _YCC_OFFSET


def ycbcr_to_rgb(ycc):
    return tf.tensordot(ycc - _YCC_OFFSET, tf.constant(_YCC_TO_RGB.T), axes=1)


def to_gray(rgb):
    """Luma (H, W) with Rec. 601 weights, as MATLAB rgb2gray."""
    return tf.tensordot(rgb, tf.constant([0.2989, 0.5870, 0.1140]), axes=1)


def minmax(x):
    lo, hi = tf.reduce_min(x), tf.reduce_max(x)
    return tf.where(hi > lo, (x - lo) / tf.maximum(hi - lo, 1e-12), x)


def quantile(x, q):
    """The q-quantile (q a float in [0, 1]) of all values of x (nearest rank)."""
    flat = tf.sort(tf.reshape(x, [-1]))
    n = tf.shape(flat)[0]
    idx = tf.cast(tf.round(q * tf.cast(n - 1, tf.float32)), tf.int32)
    return flat[idx]


def bilinear_sample(image, ys, xs):
    """Samples (H, W, C) at float coordinates ys, xs (each (h, w)), clamping
    to the border; returns (h, w, C).

    The four neighbours of every pixel are laid side by side first, so one
    `tf.gather` of whole rows fetches all four corners of every sample.
    """
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    channels = image.shape[-1] or 3
    ys = tf.clip_by_value(ys, 0.0, tf.cast(h - 1, tf.float32))
    xs = tf.clip_by_value(xs, 0.0, tf.cast(w - 1, tf.float32))
    y0 = tf.floor(ys)
    x0 = tf.floor(xs)
    wy = (ys - y0)[..., None]
    wx = (xs - x0)[..., None]
    # Edge-replicated by one pixel so (y + 1, x + 1) exists at the border.
    padded = tf.pad(image, [[0, 1], [0, 1], [0, 0]], mode="SYMMETRIC")
    quad = tf.concat(
        [padded[:-1, :-1], padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]], -1
    )  # (H, W, 4C): (y, x), (y, x+1), (y+1, x), (y+1, x+1)
    index = tf.cast(y0, tf.int32) * w + tf.cast(x0, tf.int32)
    corners = tf.gather(tf.reshape(quad, [-1, 4 * channels]), index)  # (h, w, 4C)
    c00, c01, c10, c11 = tf.split(corners, 4, axis=-1)
    top = c00 + (c01 - c00) * wx
    bottom = c10 + (c11 - c10) * wx
    return top + (bottom - top) * wy


def paste_patches(image, sources, y0, x0, dy, dx, ph, pw):
    """Overwrites n rectangles of `image` (later ones on top).

    Pixel (y, x) inside rectangle i (rows y0[i]..y0[i]+ph-1, columns
    x0[i]..x0[i]+pw-1) takes `sources[i]` evaluated by the caller: either a
    colour (n, 3) when `dy`/`dx` are None, or the original image pixel at
    (y - dy[i], x - dx[i]) (a copied, displaced patch). Where rectangles
    overlap the first one wins, so the first k rectangles of a list damage
    a subset of what the first k + 1 damage (levels stay nested).
    """
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    yy = tf.range(h)[:, None, None]  # (H, 1, 1)
    xx = tf.range(w)[None, :, None]  # (1, W, 1)
    inside = (yy >= y0) & (yy < y0 + ph) & (xx >= x0) & (xx < x0 + pw)  # (H, W, n)
    n = tf.shape(y0)[0]
    order = tf.where(inside, tf.range(n)[None, None, :], n)
    first = tf.reduce_min(order, axis=-1)  # (H, W); n = untouched
    covered = first < n
    index = tf.minimum(first, n - 1)
    if dy is None:
        fill = tf.gather(sources, index)  # (H, W, 3)
    else:
        sy = tf.clip_by_value(yy[..., 0] - tf.gather(dy, index), 0, h - 1)
        sx = tf.clip_by_value(xx[..., 0] - tf.gather(dx, index), 0, w - 1)
        fill = tf.gather_nd(image, tf.stack([sy, sx], axis=-1))
    return tf.where(covered[..., None], fill, image)
