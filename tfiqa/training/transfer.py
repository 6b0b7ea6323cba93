"""Transfer learning from a pretrained backbone: freezing and cached features.

The recipe of the Keras transfer-learning guide, for IQA: keep the backbone
(or its first blocks) frozen, warm the head up, then unfreeze with a lower
backbone learning rate. While the backbone is frozen its features never
change, so the head can train on the pooled features of a few fixed views
(crops, or the whole image) per training image, computed once and cached on
disk: an epoch then costs milliseconds instead of a backbone pass per image.

Example:
```python
freeze_backbone(model, "P3")          # blocks up to P3 stay frozen
cache = PooledFeatureCache(model, "runs/x/cache", crop_size=224)
pooled = cache.features(paths, views=5)  # (N, 5, width)
```
"""

import contextlib
import hashlib
import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.files import atomic_path

logger = logging.getLogger("tfiqa.training")

FREEZE_CHOICES = ("none", "all", "P0", "P1", "P2", "P3", "P4", "P5")
# A view of an image for the cache: N deterministic crops, or "full".
FULL_IMAGE = "full"


def _feature_network(model):
    """The backbone's inner network (the layers that hold the weights)."""
    inner = [layer for layer in model.backbone.layers if isinstance(layer, keras.Model)]
    if len(inner) != 1:
        raise ConfigError(
            f"Cannot freeze parts of backbone '{model.backbone.name}': expected one "
            f"inner network, found {len(inner)}."
        )
    return inner[0]


def freeze_backbone(model, until, key="stages.finetune.freeze_backbone"):
    """Freezes the backbone of an `IQAModel` up to feature level `until`.

    Args:
        model: IQAModel.
        until: str. "none" (everything trains), "all" (the whole backbone is
            frozen) or a level "P2".."P5": every layer up to and including the
            one that outputs that level is frozen, the deeper ones train.
            Frozen BatchNorm layers run in inference mode (Keras 3).

    Returns:
        int, the number of backbone layers with weights that are frozen.
    """
    if until not in FREEZE_CHOICES:
        raise ConfigError(f"{key} must be one of {FREEZE_CHOICES}. Received: {until!r}")
    model.backbone.trainable = True
    network = _feature_network(model)
    layers = [layer for layer in network.layers if layer.weights]
    if until == "all":
        model.backbone.trainable = False
        return len(layers)
    if until == "none":
        return 0
    outputs = network.output
    if until not in outputs:
        raise ConfigError(
            f"{key}={until!r}: backbone '{model.backbone.name}' "
            f"has levels {sorted(outputs)}."
        )
    last = network.layers.index(outputs[until]._keras_history.operation)
    frozen = 0
    for index, layer in enumerate(network.layers):
        layer.trainable = index > last
        frozen += int(index <= last and bool(layer.weights))
    return frozen


@contextlib.contextmanager
def frozen_backbone(ctx, until, key):
    """Runs a stage with the backbone frozen up to `until`, then unfreezes it
    (saved models and later stages see a plain model)."""
    if until == "none":
        yield
        return
    count = freeze_backbone(ctx.model, until, key)
    ctx.precise_bn = None  # its functions were built for the old trainable set
    ctx.log(f"[{key.split('.')[0]}] {count} backbone layers frozen (up to {until})")
    try:
        yield
    finally:
        freeze_backbone(ctx.model, "none")
        ctx.precise_bn = None


def fingerprint(model, crop_size):
    """Identifies what cached features depend on: the backbone's name, levels
    and weights and the crop size. Any change (e.g. a ranking stage that trained
    the backbone) gives a new cache folder."""
    levels = sorted(model.backbone.output)
    key = (model.backbone.name, levels, int(crop_size))
    resize = model.scoring_policy.resize
    if resize:  # older caches (no resize) keep their folder
        key += (("resize", int(resize)),)
    digest = hashlib.sha1(repr(key).encode())
    for weight in model.backbone.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
    return digest.hexdigest()[:16]


class PooledFeatureCache:
    """Pooled head inputs of fixed views of images, under a frozen backbone.

    Every level the backbone has is pooled every way `GlobalPooling` knows,
    so heads with other levels or poolings share one cache; `features` picks
    the model's head layout. Each image's pooled levels for one set of views
    are stored as a `.npz` file named by a hash of the image file's bytes
    and the views, in a folder named by
    `fingerprint(model, crop_size)`; files are written atomically, so an
    interrupted extraction resumes where it stopped.

    Args:
        model: IQAModel whose backbone stays frozen while the cache is used.
        folder: str. Cache root (e.g. `<workdir>/cache/features`).
        crop_size: int. Side of the crops.
    """

    def __init__(self, model, folder, crop_size):
        self.model = model
        self.crop_size = int(crop_size)
        self.folder = os.path.join(folder, fingerprint(model, crop_size))
        os.makedirs(self.folder, exist_ok=True)

        from tfiqa.models.head import POOLINGS, GlobalPooling

        pool = GlobalPooling(POOLINGS)

        @tf.function(reduce_retracing=True)
        def pooled(images):
            features = model.features(images)
            return {level: pool(maps) for level, maps in features.items()}

        self._pooled = pooled
        self._layout = [
            (level, POOLINGS.index(kind))
            for level in model.head.levels
            for kind in model.head.pooling
        ]
        self._kinds = len(POOLINGS)

    def _file(self, path, views):
        # Keyed by content, not path or modification time: a dataset copied
        # or re-extracted elsewhere still finds its features.
        with open(path, "rb") as f:
            digest = hashlib.sha1(f.read())
        digest.update(f"|{views}".encode())
        return os.path.join(self.folder, digest.hexdigest() + ".npz")

    def _compute(self, path, views):
        """{level: (V, 3 * channels)}: avg, max and std of each level."""
        from tfiqa.data.crops import eval_crops
        from tfiqa.data.image_io import load_image
        from tfiqa.models.scoring import resize_short_side

        image = load_image(path)
        resize = self.model.scoring_policy.resize
        if resize:  # the scoring policy's resize step, as inference applies it
            image = resize_short_side(image, resize).numpy()
        if views == FULL_IMAGE:
            batch = image[None]
        else:
            batch = eval_crops(image, self.crop_size, views, path)
        return {level: value.numpy() for level, value in self._pooled(batch).items()}

    def _head_input(self, levels):
        """The head's pooled vector (V, width), in `GlobalPooling`'s layout."""
        parts = []
        for level, kind in self._layout:
            values = levels[level]
            channels = values.shape[-1] // self._kinds
            parts.append(values[:, kind * channels : (kind + 1) * channels])
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def features(self, paths, views, log_every=100):
        """Pooled features (N, V, width) of every image's views.

        Args:
            paths: list of image paths.
            views: int (that many deterministic crops, see
                `tfiqa.data.crops.crop_positions`) or "full" (the whole image
                at its own resolution, V = 1).
        """
        if views != FULL_IMAGE and int(views) < 1:
            raise ConfigError(f"Cached views must be >= 1 or 'full'. Received: {views}")
        out, computed, start = [], 0, time.time()
        for index, path in enumerate(paths):
            file = self._file(path, views)
            if os.path.isfile(file):
                with np.load(file) as levels:
                    out.append(self._head_input(levels))
                continue
            levels = self._compute(path, views)
            with atomic_path(file) as tmp, open(tmp, "wb") as f:
                np.savez(f, **levels)
            out.append(self._head_input(levels))
            computed += 1
            if log_every and computed % log_every == 0:
                rate = computed / (time.time() - start)
                logger.info(
                    "Cached features of %d/%d images (%.1f images/s)",
                    index + 1,
                    len(paths),
                    rate,
                )
        return np.stack(out) if out else np.zeros((0, 1, 0), np.float32)


def head_scores(model, pooled):
    """Scores (N,) of pooled features (N, V, width), averaged over the V views.

    Equal to the model's crop-averaged score of the same views.
    """
    n, v, width = pooled.shape
    flat = tf.convert_to_tensor(pooled.reshape(n * v, width))
    scores = model.head.regress(flat, training=False)
    return keras.ops.convert_to_numpy(scores).reshape(n, v).mean(axis=1)


def cached_head_dataset(pooled, mos, batch_size, seed, drop_remainder):
    """One epoch of (pooled (B, width), mos (B,)) batches from cached views.

    Every image appears once per epoch with one of its views drawn at random
    (the cached counterpart of one random crop per image per epoch).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pooled))
    view = rng.integers(0, pooled.shape[1], len(pooled))
    x = pooled[order, view[order]]
    y = np.asarray(mos, np.float32)[order]
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.batch(int(batch_size), drop_remainder=drop_remainder)


def precise_head_batchnorm(model, pooled):
    """Sets the head's BatchNorm moving statistics from pooled features.

    The cached counterpart of precise BN (`PreciseBatchNorm`): the features of
    the whole training split pass through the hidden layers in inference mode,
    and each BatchNorm takes the exact mean and variance of its input.

    Args:
        model: IQAModel.
        pooled: float32 (N, width) training features, one view per image.

    Returns:
        int, the number of BatchNorm layers set.
    """
    x = tf.convert_to_tensor(pooled, tf.float32)
    count = 0
    for layer in model.head.hidden:
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, variance = tf.nn.moments(tf.cast(x, tf.float32), axes=[0])
            layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
            layer.moving_variance.assign(tf.cast(variance, layer.moving_variance.dtype))
            count += 1
        x = layer(x, training=False)
    return count
