"""Blurs: Gaussian blur, lens (defocus) blur, motion blur (KADID-10k types 1-3).

Parameters follow the KADID-10k / KADIS-700k generator (Lin, Hosu, Saupe,
"KADID-10k: A Large-scale Artificially Distorted IQA Database", QoMEX 2019)
where it is known, with these deviations:

- gaussian_blur: sigma = 0.4, 0.5, 1, 2, 5 px. KADID's level 1 (sigma 0.1)
  leaves a float32 image unchanged (tap weight e^-50), which would make
  level 1 identical to the pristine image (0.3 still rounds to the same
  uint8 pixels on most photos); it is raised to 0.4.
- lens_blur: an anti-aliased disk (pillbox, as MATLAB `fspecial('disk')`) of
  radius 1, 2, 4, 6, 8 px.
- motion_blur: an anti-aliased line of length 3, 5, 9, 13, 21 px at a random
  angle (drawn from the seed, same at every level), as MATLAB
  `fspecial('motion')`. KADID's lengths at level 1 are too short to change
  the image, so the lengths are lengthened to stay strictly ordered.

All filters mirror the image at its borders and run as depthwise
convolutions (separable for the Gaussian).
"""

import numpy as np
import tensorflow as tf

from tfiqa.distortions import ops
from tfiqa.distortions.registry import register_distortion

GAUSSIAN_SIGMAS = (0.4, 0.5, 1.0, 2.0, 5.0)
LENS_RADII = (1, 2, 4, 6, 8)
MOTION_LENGTHS = (3, 5, 9, 13, 21)


@register_distortion("gaussian_blur", params=GAUSSIAN_SIGMAS)
def gaussian_blur(image, level, seed):
    """Gaussian low-pass filter; sigma in px per level."""
    return ops.gaussian_blur(image, GAUSSIAN_SIGMAS[level - 1])


def disk_kernel(radius, supersample=8):
    """A pillbox of `radius` px: each tap is the fraction of its pixel inside
    the disk (numpy, normalised, odd size)."""
    r = int(np.ceil(radius - 0.5))
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(-r, r + 1)
    y = grid[:, None, None, None] + offsets[None, None, :, None]
    x = grid[None, :, None, None] + offsets[None, None, None, :]
    kernel = ((x**2 + y**2) <= radius**2).mean(axis=(2, 3))
    return (kernel / kernel.sum()).astype(np.float32)


@register_distortion("lens_blur", params=LENS_RADII)
def lens_blur(image, level, seed):
    """Defocus blur: convolution with a disk of radius (px) per level."""
    return ops.depthwise_filter(image, disk_kernel(LENS_RADII[level - 1]))


def line_kernel(length, angle):
    """An anti-aliased line segment of `length` px through the centre at
    `angle` (radians, a scalar tensor); (length, length) float32, sums to 1."""
    half = (length - 1) / 2.0
    coords = tf.range(length, dtype=tf.float32) - half
    y = coords[:, None]
    x = coords[None, :]
    c, s = tf.cos(angle), tf.sin(angle)
    t = tf.clip_by_value(x * c + y * s, -half, half)
    dist = tf.sqrt((x - t * c) ** 2 + (y - t * s) ** 2)
    kernel = tf.nn.relu(1.0 - dist)
    return kernel / tf.reduce_sum(kernel)


@register_distortion("motion_blur", params=MOTION_LENGTHS)
def motion_blur(image, level, seed):
    """Linear camera motion: a line kernel of length (px) per level, random angle."""
    angle = tf.random.stateless_uniform([], seed, 0.0, np.pi)
    kernel = line_kernel(MOTION_LENGTHS[level - 1], angle)
    return _filter_dynamic(image, kernel)


def _filter_dynamic(image, kernel):
    """`ops.depthwise_filter` for a kernel tensor with a static square size."""
    size = kernel.shape[0]
    padded = ops.pad_symmetric(image, size // 2, size // 2)
    weights = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    out = tf.nn.depthwise_conv2d(padded[None], weights, [1, 1, 1, 1], "VALID")
    return out[0]
