"""Brightness: brighten, darken, mean shift (KADID-10k types 16-18).

These change global intensity, which MS-SSIM hardly sees, so their levels
are ordered by PSNR (`measure="psnr"`).

- brighten: a tone curve through (0, 0), (0.5, 0.5 + 0.5 * a), (1, 1),
  a = 0.1, 0.2, 0.4, 0.7, 1.1, applied to RGB and to Lab lightness and
  mixed 2:1 (KADIS-700k). KADIS fits a quadratic spline through the three
  points, which is this parabola.
- darken: the parabola through (0, 0), (0.5, 0.5 - p / 2), (1, 1),
  p = 0.05, 0.1, 0.2, 0.4, 0.8, on RGB (KADIS-700k).
- mean_shift: every channel shifted by 0.03, 0.06, 0.09, 0.12, 0.15 with a
  sign drawn from the seed. KADIS's list (+0.15, +0.08, 0, -0.08, -0.15)
  has an identity at level 3 and is not ordered by severity; the same
  magnitudes are spread over five levels instead.
"""

import tensorflow as tf

from tfiqa.distortions import ops
from tfiqa.distortions.registry import register_distortion

BRIGHTEN_AMOUNTS = (0.1, 0.2, 0.4, 0.7, 1.1)
DARKEN_AMOUNTS = (0.05, 0.1, 0.2, 0.4, 0.8)
MEAN_SHIFTS = (0.03, 0.06, 0.09, 0.12, 0.15)


def parabola(x, mid):
    """The quadratic through (0, 0), (0.5, mid), (1, 1), clipped to [0, 1]."""
    b = 4.0 * mid - 1.0
    return tf.clip_by_value(b * x + (1.0 - b) * x * x, 0.0, 1.0)


@register_distortion("brighten", params=BRIGHTEN_AMOUNTS, measure="psnr")
def brighten(image, level, seed):
    """Brightening tone curve on RGB and Lab lightness; amount per level."""
    mid = 0.5 + 0.5 * BRIGHTEN_AMOUNTS[level - 1]
    lab = ops.rgb_to_lab(image)
    lightness = parabola(lab[..., :1] / 100.0, mid) * 100.0
    from_lab = ops.lab_to_rgb(tf.concat([lightness, lab[..., 1:]], axis=-1))
    return (2.0 * parabola(image, mid) + from_lab) / 3.0


@register_distortion("darken", params=DARKEN_AMOUNTS, measure="psnr")
def darken(image, level, seed):
    """Darkening tone curve on RGB; amount per level."""
    return parabola(image, 0.5 - DARKEN_AMOUNTS[level - 1] / 2.0)


@register_distortion("mean_shift", params=MEAN_SHIFTS, measure="psnr")
def mean_shift(image, level, seed):
    """All intensities shifted by an amount per level, random sign."""
    sign = tf.where(tf.random.stateless_uniform([], seed) < 0.5, -1.0, 1.0)
    return image + sign * MEAN_SHIFTS[level - 1]
