"""How a quality model turns pixels into one score, the same in every format.

- `score_images(model, images)`: uint8 (B, H, W, 3) -> float32 (B,) in a
  graph; every caller (validation, `Scorer`, exports, verification) uses it.
- `predict_fn(model)` / `predict(model, images)`: its cached `tf.function`.
- The scoring policy in graphs (`tf_policy_score`, `resize_short_side`):
  the policy itself (`tfiqa.scoring_policy.ScoringPolicy`) and its numpy
  side for Python callers give the same pixels.

Example:
```python
policy = model.scoring_policy        # ScoringPolicy(crop_size=64, crops=3, ...)
crops = policy.crops_of(image)       # uint8 (3, 64, 64, 3)
score = predict(model, crops).mean()
```
"""

import weakref

import tensorflow as tf

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


def tf_policy_score(model, image, policy):
    """Graph-mode score of one uint8 image (H, W, 3) under `policy` (a
    `ScoringPolicy`) -> scalar."""
    from tfiqa.data.crops import tf_eval_crops

    size = policy.crop_size
    if policy.resize:
        image = resize_short_side(image, policy.resize)

    def crops_score():
        upscaled = upscale_to_crop(image, size)
        return tf.reduce_mean(
            score_images(model, tf_eval_crops(upscaled, size, policy.crops))
        )

    if policy.small_images == "upscale":
        return crops_score()
    shape = tf.shape(image)
    return tf.cond(
        tf.minimum(shape[0], shape[1]) < size,
        lambda: score_images(model, image[tf.newaxis])[0],
        crops_score,
    )
