"""The scoring policy: how a photo becomes the crops a quality model scores.

`{"crop_size": c, "crops": N, "placement": ..., "small_images": rule,
"resize": r}`, a property of the model (`IQAModel` config) that travels into
every export's sidecar and serving graph. With `r > 0` an image is first
resized (antialiased, aspect ratio kept) so that its short side is r, which
puts photos of any resolution at the scale the model was trained on. An
image is then scored as the mean of N deterministic c x c crops spread over
it (`tfiqa.data.crops.crop_positions`). An image whose short side is below c
is first upscaled (bilinear, aspect ratio kept) until its short side is c
("upscale", the default), or scored whole at its own size ("whole": only
backends with a dynamic input size can do that).

This module needs numpy only, so that a `.tflite` model is scored without
TensorFlow; `tfiqa.models.scoring` applies the same policy inside graphs,
and `tfiqa.data.resize` gives the pixels TF's resize gives.

Example:
```python
policy = scoring_policy(model)        # {"crop_size": 64, "crops": 3, ...}
crops = policy_crops(image, policy)   # uint8 (3, 64, 64, 3)
```
"""

import numpy as np

from tfiqa.data.crops import eval_crops
from tfiqa.data.resize import resize_short_side
from tfiqa.errors import ConfigError

SMALL_IMAGE_RULES = ("upscale", "whole")
PLACEMENT = "spread"  # tfiqa.data.crops.crop_positions
DEFAULT_CROP_SIZE = 224
DEFAULT_CROPS = 5


def make_policy(
    crop_size=DEFAULT_CROP_SIZE, crops=DEFAULT_CROPS, small_images=None, resize=0
):
    """A validated policy dict (see the module docstring)."""
    small_images = small_images or SMALL_IMAGE_RULES[0]
    resize = 0 if resize is None else resize
    if isinstance(resize, bool) or int(resize) < 0:
        raise ConfigError(
            "input_resize must be 0 (off) or a positive short side. "
            f"Received: {resize!r}"
        )
    if 0 < int(resize) < int(crop_size):
        raise ConfigError(
            f"input_resize ({resize}) must be 0 or at least input_crop_size "
            f"({crop_size}). Received: input_resize={resize!r}"
        )
    if isinstance(crop_size, bool) or int(crop_size) < 1:
        raise ConfigError(f"input_crop_size must be positive. Received: {crop_size!r}")
    if isinstance(crops, bool) or int(crops) < 1:
        raise ConfigError(f"eval_crops must be positive. Received: {crops!r}")
    if small_images not in SMALL_IMAGE_RULES:
        raise ConfigError(
            f"small_images must be one of {', '.join(SMALL_IMAGE_RULES)}. "
            f"Received: {small_images!r}"
        )
    return {
        "crop_size": int(crop_size),
        "crops": int(crops),
        "placement": PLACEMENT,
        "small_images": small_images,
        "resize": int(resize),
    }


def scoring_policy(model):
    """The policy a model carries (defaults for models without one)."""
    return make_policy(
        getattr(model, "input_crop_size", None) or DEFAULT_CROP_SIZE,
        getattr(model, "eval_crops", None) or DEFAULT_CROPS,
        getattr(model, "small_images", None),
        getattr(model, "input_resize", 0),
    )


def apply_resize(image, policy):
    """The policy's resize step (numpy in, numpy out); a no-op when off."""
    if not policy.get("resize"):
        return image
    return resize_short_side(image, policy["resize"])


def is_small(image, policy):
    """True if the image's short side is below the policy's crop size (never
    with a resize step: it brings every image to at least the crop size)."""
    if policy.get("resize"):
        return False
    return min(int(image.shape[0]), int(image.shape[1])) < policy["crop_size"]


def policy_crops(image, policy, num_crops=None):
    """The policy's crops of one uint8 numpy image -> (N, c, c, 3).

    Applies the "upscale" rule to small images; with "whole" a small image
    must be scored at its own size instead (check `is_small` first).
    """
    size = policy["crop_size"]
    image = apply_resize(image, policy)
    if is_small(image, policy):
        image = resize_short_side(image, size, downscale=False)
    return np.asarray(eval_crops(image, size, num_crops or policy["crops"]))
