"""How a quality model turns pixels into one score, the same in every format.

- `score_images(model, images)`: uint8 (B, H, W, 3) -> float32 (B,) in a
  graph; every caller (validation, `Scorer`, exports, verification) uses it.
- `predict_fn(model)` / `predict(model, images)`: its cached `tf.function`.
- The scoring policy, a property of the model (`IQAModel` config) that
  travels into every export's sidecar and serving graph:
  `{"crop_size": c, "crops": N, "placement": ..., "small_images": rule,
  "resize": r}`. With `r > 0` an image is first resized (antialiased,
  aspect ratio kept) so that its short side is r, which puts photos of any
  resolution at the scale the model was trained on (r = c with N = 1 scores
  a square photo whole). An image is then scored as the mean of N
  deterministic c x c crops spread over it
  (`tfiqa.data.crops.crop_positions`). An image whose short side is below
  c is first upscaled (bilinear, aspect ratio kept) until its short side is
  c ("upscale", the default: every backend, fixed-input TFLite included,
  sees the same pixels), or scored whole at its own size ("whole": only
  backends with a dynamic input size can do that).

Example:
```python
policy = scoring_policy(model)        # {"crop_size": 64, "crops": 3, ...}
crops = policy_crops(image, policy)   # uint8 (3, 64, 64, 3)
score = predict(model, crops).mean()
```
"""

import weakref

import numpy as np
import tensorflow as tf

from tfiqa.errors import ConfigError

SMALL_IMAGE_RULES = ("upscale", "whole")
PLACEMENT = "spread"  # tfiqa.data.crops.crop_positions
DEFAULT_CROP_SIZE = 224
DEFAULT_CROPS = 5

# Any batch of uint8 RGB images: one trace serves every crop and batch size.
IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8)
_PREDICT_FNS = weakref.WeakKeyDictionary()


def score_images(model, images):
    """Scores uint8 images (B, H, W, 3) with `model` -> float32 (B,)."""
    scores = model(tf.cast(images, tf.float32), training=False)
    return tf.reshape(tf.cast(scores, tf.float32), [-1])


def predict_fn(model):
    """A `tf.function` of `score_images` for `model`, traced once per model."""
    fn = _PREDICT_FNS.get(model)
    if fn is None:

        @tf.function(input_signature=[IMAGE_SPEC], reduce_retracing=True)
        def fn(images):
            return score_images(model, images)

        _PREDICT_FNS[model] = fn
    return fn


def predict(model, images):
    """Scores (N,) float32 numpy for a batch (N, H, W, 3) of 0..255 pixels."""
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        images = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
    return predict_fn(model)(images).numpy()


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


def upscale_to_crop(image, crop_size):
    """Upscales (H, W, 3) uint8 so its short side is `crop_size` (aspect kept).

    Images already that large are returned unchanged. Works eagerly and in a
    graph with the same ops, so Python and serving paths give equal pixels.
    """
    return resize_short_side(image, crop_size, downscale=False)


def resize_short_side(image, side, downscale=True):
    """Resizes (H, W, 3) uint8 so its short side is `side` (aspect kept).

    Bilinear, antialiased when shrinking; an image whose short side is
    already `side` (or larger, with `downscale=False`) is returned unchanged.
    Works eagerly and in a graph with the same ops.
    """
    shape = tf.shape(image, out_type=tf.int64)
    h, w = shape[0], shape[1]
    short = tf.minimum(h, w)
    c = tf.constant(side, tf.int64)
    # Ceil so the long side never rounds below the short one.
    new_h = tf.where(h <= w, c, (h * c + short - 1) // short)
    new_w = tf.where(h <= w, (w * c + short - 1) // short, c)

    def resize(antialias):
        size = tf.cast(tf.stack([new_h, new_w]), tf.int32)
        out = tf.image.resize(image, size, antialias=antialias)
        return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)

    def grow_or_keep():
        keep = lambda: tf.convert_to_tensor(image, tf.uint8)  # noqa: E731
        return tf.cond(short < c, lambda: resize(False), keep)

    if not downscale:
        return grow_or_keep()
    return tf.cond(short > c, lambda: resize(True), grow_or_keep)


def apply_resize(image, policy):
    """The policy's resize step (numpy in, numpy out); a no-op when off."""
    if not policy.get("resize"):
        return image
    return resize_short_side(image, policy["resize"]).numpy()


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
    from tfiqa.data.crops import eval_crops

    size = policy["crop_size"]
    image = apply_resize(image, policy)
    if is_small(image, policy):
        image = upscale_to_crop(image, size).numpy()
    return np.asarray(eval_crops(image, size, num_crops or policy["crops"]))


def tf_policy_score(model, image, policy):
    """Graph-mode score of one uint8 image (H, W, 3) under `policy` -> scalar."""
    from tfiqa.data.crops import tf_eval_crops

    size = policy["crop_size"]
    if policy.get("resize"):
        image = resize_short_side(image, policy["resize"])

    def crops_score():
        upscaled = upscale_to_crop(image, size)
        return tf.reduce_mean(
            score_images(model, tf_eval_crops(upscaled, size, policy["crops"]))
        )

    if policy["small_images"] == "upscale":
        return crops_score()
    shape = tf.shape(image)
    return tf.cond(
        tf.minimum(shape[0], shape[1]) < size,
        lambda: score_images(model, image[tf.newaxis])[0],
        crops_score,
    )
