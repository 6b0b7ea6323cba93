"""Sharpness and contrast: high sharpen, contrast change (KADID-10k types 24-25).

- high_sharpen: CIELAB lightness minus a times its Laplacian (central
  differences applied twice, as KADIS's numpy port), a = 1, 2, 3, 6, 12
  (KADIS-700k), over-sharpening with halos.
- contrast_change: the tone curve through (0, 0), (0.3, 0.25 - p/4),
  (0.5, 0.5), (0.7, 0.75 + p/4), (1, 1), piecewise linear (KADIS: a
  smoothing spline), with p = -0.3, -0.4, -0.5, -0.6, -0.7. KADIS's
  p = 0.3, 0.15, 0, -0.4, -0.6 raise contrast at the first levels and lower
  it at the last; since p = -0.2 is the identity, that list is not ordered by
  distance from the original. This engine keeps only contrast reduction,
  in five equal steps away from the identity.
"""

import numpy as np
import tensorflow as tf

from tfiqa.distortions import ops
from tfiqa.distortions.registry import register_distortion

SHARPEN_AMOUNTS = (1.0, 2.0, 3.0, 6.0, 12.0)
CONTRAST_AMOUNTS = (-0.3, -0.4, -0.5, -0.6, -0.7)

# np.gradient applied twice: second difference with step 2.
_SECOND_DIFF = np.array([0.25, 0.0, -0.5, 0.0, 0.25], np.float32)


@register_distortion("high_sharpen", params=SHARPEN_AMOUNTS)
def high_sharpen(image, level, seed):
    """Laplacian sharpening of Lab lightness; amount per level."""
    lab = ops.rgb_to_lab(image)
    lightness = lab[..., :1]
    laplacian = ops.depthwise_filter(lightness, _SECOND_DIFF[:, None])
    laplacian += ops.depthwise_filter(lightness, _SECOND_DIFF[None, :])
    sharp = tf.clip_by_value(lightness - SHARPEN_AMOUNTS[level - 1] * laplacian, 0, 100)
    return ops.lab_to_rgb(tf.concat([sharp, lab[..., 1:]], axis=-1))


def piecewise_linear(x, xs, ys):
    """Interpolates x through the points (xs[i], ys[i]) (xs increasing)."""
    out = tf.zeros_like(x)
    for i in range(len(xs) - 1):
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        segment = ys[i] + slope * (x - xs[i])
        inside = (
            (x >= xs[i]) & (x <= xs[i + 1])
            if i == 0
            else (x > xs[i]) & (x <= xs[i + 1])
        )
        out = tf.where(inside, segment, out)
    return out


@register_distortion("contrast_change", params=CONTRAST_AMOUNTS)
def contrast_change(image, level, seed):
    """Contrast-reducing tone curve; curve parameter per level."""
    p = CONTRAST_AMOUNTS[level - 1]
    xs = (0.0, 0.3, 0.5, 0.7, 1.0)
    ys = (0.0, 0.25 - p / 4, 0.5, 0.75 + p / 4, 1.0)
    return piecewise_linear(tf.clip_by_value(image, 0.0, 1.0), xs, ys)
