"""Colour: colour diffusion, colour shift, colour quantisation, colour
saturation in HSV and in Lab (KADID-10k types 4-8).

- color_diffusion: the a* and b* channels of CIELAB are Gaussian-blurred
  with sigma = 1.5 * amount + 2 px, amount 1, 3, 6, 8, 12 (KADIS-700k),
  lightness kept. The public port of KADIS also multiplies the blurred
  chroma by the amount; that saturates colours beyond recognition and is
  not done here (the type is about bleeding colour, saturation has its own
  types).
- color_shift: the green channel is displaced by 1, 3, 6, 8, 12 px in a
  random direction and blended in where the image has edges (blurred,
  percentile-normalised gradient magnitude), as KADIS-700k.
- color_quantization: the image is reduced to 64, 48, 32, 16, 8 colours by
  k-means (10 Lloyd iterations on a pixel subsample, initialised from
  seeded random pixels), without dithering. KADID used MATLAB `rgb2ind`
  (minimum-variance quantisation, which has no TF form); the palette sizes
  follow KADID's range.
- color_saturation_1: HSV saturation multiplied by 0.4, 0.2, 0.1, 0, -0.4
  (KADIS-700k; the negative factor swaps hues to their complements).
- color_saturation_2: CIELAB a* and b* multiplied by 1.5, 2, 3, 6, 9. KADIS
  starts at 1 (no change); level 1 is raised to 1.5 so it differs from the
  pristine image.
"""

import tensorflow as tf

from tfiqa.distortions import ops
from tfiqa.distortions.registry import register_distortion, sub_seed

DIFFUSION_AMOUNTS = (1, 3, 6, 8, 12)
SHIFT_AMOUNTS = (1, 3, 6, 8, 12)
PALETTE_SIZES = (64, 48, 32, 16, 8)
HSV_FACTORS = (0.4, 0.2, 0.1, 0.0, -0.4)
LAB_FACTORS = (1.5, 2.0, 3.0, 6.0, 9.0)


@register_distortion("color_diffusion", params=DIFFUSION_AMOUNTS)
def color_diffusion(image, level, seed):
    """Chroma (Lab a*, b*) blurred with sigma 1.5*amount+2; amount per level."""
    sigma = 1.5 * DIFFUSION_AMOUNTS[level - 1] + 2.0
    lab = ops.rgb_to_lab(image)
    # The blurred chroma has no detail finer than sigma: blur at a reduced
    # resolution (factor sigma / 3) and upsample, 5-50x cheaper than a
    # full-resolution kernel of 6 sigma taps.
    factor = max(1, int(sigma // 3))
    shape = tf.shape(image)
    small = tf.maximum(1, shape[:2] // factor)
    chroma = tf.image.resize(lab[..., 1:], small, method="area")
    chroma = ops.gaussian_blur(chroma, sigma / factor)
    chroma = tf.image.resize(chroma, shape[:2], method="bilinear")
    return ops.lab_to_rgb(tf.concat([lab[..., :1], chroma], axis=-1))


def edge_weight(image):
    """Where colour fringes show: blurred gradient magnitude mapped to [0, 1]
    with 1% percentile clipping, as KADIS-700k's imcolorshift."""
    gray = ops.to_gray(image)[..., None]
    dy = ops.depthwise_filter(gray, [[-0.5], [0.0], [0.5]])
    dx = ops.depthwise_filter(gray, [[-0.5, 0.0, 0.5]])
    e = ops.gaussian_blur(tf.sqrt(dx**2 + dy**2), 4.0)
    e = ops.minmax(tf.clip_by_value(ops.minmax(e), 0.1, 1.0))
    lo, hi = ops.quantile(e, 0.01), ops.quantile(e, 0.99)
    return ops.minmax(tf.clip_by_value(e, lo, hi))  # (H, W, 1)


@register_distortion("color_shift", params=SHIFT_AMOUNTS)
def color_shift(image, level, seed):
    """Green channel displaced at edges; shift (px) per level, random direction."""
    amount = SHIFT_AMOUNTS[level - 1]
    direction = tf.random.stateless_uniform([2], seed, 0.0, 1.0)
    direction = direction / tf.maximum(tf.norm(direction), 1e-6)
    shift = tf.cast(tf.round(direction * amount), tf.int32)
    shift = tf.maximum(shift, [0, 0])
    # Guarantee a displacement of at least one pixel.
    shift = tf.where(tf.reduce_sum(shift) == 0, tf.constant([0, 1]), shift)
    pad = amount + 1
    green = ops.pad_symmetric(image[..., 1:2], pad, pad)
    green = tf.roll(green, shift=shift, axis=[0, 1])
    shape = tf.shape(image)
    green = green[pad : pad + shape[0], pad : pad + shape[1]]
    e = edge_weight(image)
    new_green = green * e + image[..., 1:2] * (1.0 - e)
    return tf.concat([image[..., :1], new_green, image[..., 2:]], axis=-1)


def nearest_centre(pixels, centres):
    """Index (N,) of the nearest of (k, 3) centres for (N, 3) pixels.

    |p - c|^2 = |p|^2 - 2 p.c + |c|^2 and |p|^2 does not change the argmin,
    so one (N, 3) x (3, k) matmul replaces an (N, k, 3) difference tensor.
    """
    scores = tf.reduce_sum(tf.square(centres), -1)[None, :] - 2.0 * tf.matmul(
        pixels, centres, transpose_b=True
    )  # (N, k)
    return tf.argmin(scores, axis=-1, output_type=tf.int32)


def kmeans_palette(pixels, k, seed, iterations=10):
    """Lloyd's k-means on (N, 3) pixels; returns (k, 3) centres."""
    n = tf.shape(pixels)[0]
    start = tf.random.stateless_uniform([k], seed, 0, n, dtype=tf.int32)
    centres = tf.gather(pixels, start)
    ones = tf.ones_like(pixels[:, :1])
    for _ in range(iterations):
        assign = nearest_centre(pixels, centres)
        sums = tf.math.unsorted_segment_sum(pixels, assign, k)
        counts = tf.math.unsorted_segment_sum(ones, assign, k)
        # Empty clusters keep their old centre.
        centres = tf.where(counts > 0, sums / tf.maximum(counts, 1.0), centres)
    return centres


def quantize_to_palette(image, centres):
    flat = tf.reshape(image, [-1, 3])
    index = nearest_centre(flat, centres)
    return tf.reshape(tf.gather(centres, index), tf.shape(image))


@register_distortion("color_quantization", params=PALETTE_SIZES)
def color_quantization(image, level, seed):
    """Reduction to a k-means palette; number of colours per level."""
    k = PALETTE_SIZES[level - 1]
    flat = tf.reshape(image, [-1, 3])
    n = tf.shape(flat)[0]
    # About 4096 pixels are plenty to place 64 colours.
    stride = tf.maximum(1, n // 4096)
    sample = flat[::stride]
    centres = kmeans_palette(sample, k, sub_seed(seed, 0))
    return quantize_to_palette(image, centres)


@register_distortion("color_saturation_1", params=HSV_FACTORS)
def color_saturation_1(image, level, seed):
    """HSV saturation multiplied by a factor per level."""
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(image, 0.0, 1.0))
    hsv = tf.concat(
        [hsv[..., :1], hsv[..., 1:2] * HSV_FACTORS[level - 1], hsv[..., 2:]], axis=-1
    )
    return tf.image.hsv_to_rgb(hsv)


@register_distortion("color_saturation_2", params=LAB_FACTORS)
def color_saturation_2(image, level, seed):
    """CIELAB a*, b* multiplied by a factor per level (over-saturation)."""
    lab = ops.rgb_to_lab(image)
    lab = tf.concat([lab[..., :1], lab[..., 1:] * LAB_FACTORS[level - 1]], axis=-1)
    return ops.lab_to_rgb(lab)
