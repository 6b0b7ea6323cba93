"""Names of the distortion types, shared by the engine and the dataset readers.

Kept free of TensorFlow so that readers can label KADID-10k records with the
same names the distortion engine registers.
"""

# KADID-10k's 25 types, in the database's order (file names I<ref>_<type>_<level>).
KADID10K_TYPES = (
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "color_diffusion",
    "color_shift",
    "color_quantization",
    "color_saturation_1",
    "color_saturation_2",
    "jpeg2000",
    "jpeg",
    "white_noise",
    "white_noise_color_component",
    "impulse_noise",
    "multiplicative_noise",
    "denoise",
    "brighten",
    "darken",
    "mean_shift",
    "jitter",
    "non_eccentricity_patch",
    "pixelate",
    "quantization",
    "color_block",
    "high_sharpen",
    "contrast_change",
)

# RankIQA's LIVE-style set.
LIVE_TYPES = ("live_gaussian_blur", "live_white_noise", "live_jpeg", "live_jpeg2000")
