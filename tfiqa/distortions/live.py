"""RankIQA's LIVE-style set: Gaussian blur, white noise, JPEG, JPEG2000.

Parameters are RankIQA's (Liu, van de Weijer, Bagdanov, ICCV 2017), chosen
to span the LIVE database's range:

- live_gaussian_blur: kernel sizes 7, 15, 39, 91, 199 px with
  sigma = size / 6.
- live_white_noise: additive Gaussian noise with variance 2^-10, 2^-7.5,
  2^-5.5, 2^-3.5, 2^0 on [0, 1] intensities.
- live_jpeg: quality 43, 12, 7, 4, 0 (libjpeg clamps 0 to its minimum, 1).
- live_jpeg2000: RankIQA's 0.46, 0.16, 0.07, 0.04, 0.02 bits per pixel are
  replaced by PSNR targets of 32, 27, 24, 21.5, 19 dB, about what those
  rates give on LIVE's 768x512 images (Pillow/OpenJPEG, `python_only`). A
  bit rate cannot be met on training crops: 0.02 bpp of a 224x224 crop is
  125 bytes, less than the codestream headers, so levels 3-5 would be
  identical.
"""

import math

from tfiqa.distortions import ops
from tfiqa.distortions.compression import jpeg2000_roundtrip, jpeg_roundtrip
from tfiqa.distortions.noise import normal_field
from tfiqa.distortions.registry import register_distortion

BLUR_SIZES = (7, 15, 39, 91, 199)
NOISE_VARIANCES = (2**-10, 2**-7.5, 2**-5.5, 2**-3.5, 2**0)
JPEG_QUALITIES = (43, 12, 7, 4, 0)
JPEG2000_PSNR_TARGETS = (32.0, 27.0, 24.0, 21.5, 19.0)


@register_distortion("live_gaussian_blur", params=BLUR_SIZES)
def live_gaussian_blur(image, level, seed):
    """Gaussian blur, kernel size (px) per level, sigma = size / 6."""
    size = BLUR_SIZES[level - 1]
    return ops.gaussian_blur(image, size / 6.0, radius=size // 2)


@register_distortion("live_white_noise", params=NOISE_VARIANCES)
def live_white_noise(image, level, seed):
    """Additive Gaussian noise; variance per level."""
    return image + math.sqrt(NOISE_VARIANCES[level - 1]) * normal_field(image, seed)


@register_distortion("live_jpeg", params=JPEG_QUALITIES)
def live_jpeg(image, level, seed):
    """JPEG at a quality per level."""
    return jpeg_roundtrip(image, JPEG_QUALITIES[level - 1])


@register_distortion("live_jpeg2000", params=JPEG2000_PSNR_TARGETS, python_only=True)
def live_jpeg2000(image, level, seed):
    """JPEG2000 to a PSNR target (dB) per level (Pillow/OpenJPEG)."""
    return jpeg2000_roundtrip(image, JPEG2000_PSNR_TARGETS[level - 1])
