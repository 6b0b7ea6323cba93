"""Noise: white noise, white noise in colour components, impulse noise,
multiplicative noise and denoising artefacts (KADID-10k types 11-15).

Each type draws one standard-normal (or uniform) field from the seed and
scales it by the level's parameter, so levels of one seed are nested.
Variances are on the [0, 1] intensity scale (MATLAB `imnoise` convention).

- white_noise: additive Gaussian in RGB, variance 0.001, 0.002, 0.003,
  0.005, 0.01 (KADIS-700k).
- white_noise_color_component: additive Gaussian in full-range YCbCr (all
  three components), variance 0.0001, 0.0005, 0.001, 0.002, 0.003
  (KADIS-700k). KADID used MATLAB's studio-swing `rgb2ycbcr`; full range
  makes the same variances about 15% weaker in RGB.
- impulse_noise: salt and pepper on whole pixels, density 0.001, 0.005,
  0.01, 0.02, 0.03 (KADIS-700k), as an exact count of pixels (at least
  `level` pixels, so small crops are never left untouched).
- multiplicative_noise: speckle `x + x * n`, variance 0.001, 0.005, 0.01,
  0.02, 0.05 (KADIS-700k).
- denoise: white noise of variance 0.001, 0.002, 0.003, 0.005, 0.01, then a
  5x5 colour bilateral filter (spatial sigma 1.5 px, range sigma three times
  the noise sigma), computed separably (a 5-tap bilateral pass along rows,
  then along columns: 10 taps instead of 25). KADID denoised with a Gaussian
  or box filter chosen at random; the bilateral filter gives the waxy,
  edge-preserving look of real denoisers while staying in TF ops and
  deterministic.
"""

import math

import tensorflow as tf

from tfiqa.distortions import ops
from tfiqa.distortions.registry import register_distortion, sub_seed

WHITE_NOISE_VARIANCES = (0.001, 0.002, 0.003, 0.005, 0.01)
COLOR_NOISE_VARIANCES = (0.0001, 0.0005, 0.001, 0.002, 0.003)
IMPULSE_DENSITIES = (0.001, 0.005, 0.01, 0.02, 0.03)
SPECKLE_VARIANCES = (0.001, 0.005, 0.01, 0.02, 0.05)
DENOISE_VARIANCES = (0.001, 0.002, 0.003, 0.005, 0.01)


def normal_field(image, seed):
    return tf.random.stateless_normal(tf.shape(image), seed)


@register_distortion("white_noise", params=WHITE_NOISE_VARIANCES)
def white_noise(image, level, seed):
    """Additive Gaussian noise in RGB; variance per level."""
    sigma = math.sqrt(WHITE_NOISE_VARIANCES[level - 1])
    return image + sigma * normal_field(image, seed)


@register_distortion("white_noise_color_component", params=COLOR_NOISE_VARIANCES)
def white_noise_color_component(image, level, seed):
    """Additive Gaussian noise in YCbCr; variance per level."""
    sigma = math.sqrt(COLOR_NOISE_VARIANCES[level - 1])
    ycc = ops.rgb_to_ycbcr(image) + sigma * normal_field(image, seed)
    return ops.ycbcr_to_rgb(ycc)


@register_distortion("impulse_noise", params=IMPULSE_DENSITIES)
def impulse_noise(image, level, seed):
    """Salt-and-pepper noise on whole pixels; density per level."""
    shape = tf.shape(image)
    pixels = shape[0] * shape[1]
    # Exactly round(density * pixels) pixels (at least `level`, so that small
    # crops are hit too): those with the smallest draws, nested across levels.
    count = tf.cast(
        tf.round(IMPULSE_DENSITIES[level - 1] * tf.cast(pixels, tf.float32)), tf.int32
    )
    count = tf.minimum(tf.maximum(count, level), pixels)
    u = tf.random.stateless_uniform(shape[:2], seed)
    threshold = tf.sort(tf.reshape(u, [-1]))[count - 1]
    hit = (u <= threshold)[..., None]  # (H, W, 1)
    salt = (tf.random.stateless_uniform(shape[:2], sub_seed(seed, 1)) < 0.5)[..., None]
    return tf.where(hit, tf.where(salt, 1.0, 0.0), image)


@register_distortion("multiplicative_noise", params=SPECKLE_VARIANCES)
def multiplicative_noise(image, level, seed):
    """Speckle noise x + x * n; variance of n per level."""
    sigma = math.sqrt(SPECKLE_VARIANCES[level - 1])
    return image + image * sigma * normal_field(image, seed)


def _bilateral_pass(image, range_sigma, spatial_sigma, radius, axis):
    """One 1-D pass of the colour bilateral filter along `axis` (0: rows)."""
    size = tf.shape(image)[axis]
    padded = ops.pad_symmetric(
        image, radius if axis == 0 else 0, radius if axis == 1 else 0
    )
    total = tf.zeros_like(image)
    weight_sum = tf.zeros_like(image[..., :1])
    for d in range(-radius, radius + 1):
        if axis == 0:
            shifted = padded[radius + d : radius + d + size]
        else:
            shifted = padded[:, radius + d : radius + d + size]
        diff = tf.reduce_mean(tf.square(shifted - image), axis=-1, keepdims=True)
        spatial = math.exp(-(d * d) / (2 * spatial_sigma**2))
        weight = spatial * tf.exp(-diff / (2 * range_sigma**2))
        total += weight * shifted
        weight_sum += weight
    return total / weight_sum


def bilateral_filter(image, range_sigma, spatial_sigma=1.5, radius=2):
    """Colour bilateral filter over a (2r+1)^2 window (mirrored borders),
    computed separably: a 1-D bilateral pass along rows, then one along
    columns (Pham and van Vliet, "Separable bilateral filtering for fast
    video preprocessing", ICME 2005). 2(2r+1) taps instead of (2r+1)^2,
    with the same edge-preserving smoothing away from thin diagonal lines."""
    out = _bilateral_pass(image, range_sigma, spatial_sigma, radius, axis=0)
    return _bilateral_pass(out, range_sigma, spatial_sigma, radius, axis=1)


@register_distortion("denoise", params=DENOISE_VARIANCES)
def denoise(image, level, seed):
    """White noise then bilateral denoising; noise variance per level."""
    sigma = math.sqrt(DENOISE_VARIANCES[level - 1])
    noisy = tf.clip_by_value(image + sigma * normal_field(image, seed), 0.0, 1.0)
    return bilateral_filter(noisy, range_sigma=3.0 * sigma)
