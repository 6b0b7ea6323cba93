"""Full-reference measures: MS-SSIM, PSNR and the pseudo-MOS built on MS-SSIM.

Synthetic images have no human scores; meta-learning tasks and `tfiqa
distort --pseudo-mos` label them with a full-reference score against the
pristine image instead:

    pseudo_mos = clip(MS-SSIM, 0, 1) ** PSEUDO_MOS_EXPONENT

MS-SSIM of visibly distorted images lies mostly in [0.7, 1]; the power
spreads that range over [0, 1] (0.99 -> 0.92, 0.95 -> 0.66, 0.8 -> 0.17) while
keeping the order, so labels use the scale a sigmoid head predicts. Higher is
better, 1 = identical to the pristine image.

Rank-only labels use `level_label(level) = 1 - level / 6` (pristine 1.0,
level 5 about 0.17), also higher-is-better.
"""

import math

import tensorflow as tf

# Default MS-SSIM scale weights (Wang, Simoncelli, Bovik 2003).
POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FILTER_SIZE = 11
PSEUDO_MOS_EXPONENT = 8.0


def num_scales(height, width, filter_size=FILTER_SIZE):
    """How many dyadic MS-SSIM scales an image of this size supports (1..5)."""
    side = min(height, width)
    if side < filter_size:
        return 1
    return max(1, min(len(POWER_FACTORS), int(math.log2(side / filter_size)) + 1))


def ms_ssim(reference, distorted, scales=None):
    """MS-SSIM of float images in [0, 1], (..., H, W, 3) -> (...).

    The number of scales adapts to the (static) image size so small crops
    work; the weights of the scales kept are renormalised to sum to 1.
    """
    reference = tf.convert_to_tensor(reference, tf.float32)
    distorted = tf.convert_to_tensor(distorted, tf.float32)
    if scales is None:
        h, w = reference.shape[-3], reference.shape[-2]
        scales = num_scales(h, w) if h and w else len(POWER_FACTORS)
    factors = POWER_FACTORS[:scales]
    total = sum(factors)
    factors = [f / total for f in factors]
    filter_size = min(FILTER_SIZE, *(s for s in reference.shape[-3:-1] if s))
    return tf.image.ssim_multiscale(
        reference,
        distorted,
        max_val=1.0,
        power_factors=factors,
        filter_size=filter_size,
    )


def psnr(reference, distorted):
    """PSNR in dB of float images in [0, 1] (capped at 100 for identical ones)."""
    value = tf.image.psnr(reference, distorted, max_val=1.0)
    return tf.minimum(value, 100.0)


def pseudo_mos(reference, distorted):
    """MS-SSIM-based quality label in [0, 1], higher is better."""
    score = tf.clip_by_value(ms_ssim(reference, distorted), 0.0, 1.0)
    return tf.pow(score, PSEUDO_MOS_EXPONENT)


def level_label(level):
    """Rank-only quality label: 1 - level / 6 (level 0 = pristine -> 1)."""
    return 1.0 - tf.cast(level, tf.float32) / 6.0
