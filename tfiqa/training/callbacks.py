"""Epoch-end helpers of the training loop: precise BatchNorm statistics.

In training mode BatchNorm normalises with the batch's statistics and keeps a
running average for inference. With Keras' MobileNetV3 momentum of 0.999 the
average needs thousands of steps to forget its initial values, so after a
short run the model scores very differently in inference mode than it
trained. Re-estimating the averages from a few training batches before each
validation ("precise BN") fixes that without touching any trainable weight;
the training steps themselves never read the averages.

The statistics pass runs the model in training mode with Dropout switched
off (`dropout_off`): Dropout is off at inference, so statistics measured on
dropped-out activations would not match what a BatchNorm layer after a
Dropout sees when the model scores.

Reference: Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021.
"""

import contextlib

import keras
import tensorflow as tf

# Validation scores images the way every format does.
from tfiqa.models.scoring import IMAGE_SPEC, predict, predict_fn  # noqa: F401


def batchnorm_layers(model):
    """All `BatchNormalization` layers of `model`, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


@contextlib.contextmanager
def dropout_off(model):
    """Training-mode calls inside this context apply no Dropout.

    Keras has one `training` flag for every layer; the Dropout layers
    (`Dropout`, its spatial variants, `GaussianDropout`) skip themselves
    when their `rate` is 0, so the rates are zeroed and then restored. A
    `tf.function` traced inside the context keeps the Dropout-free graph.
    """
    kinds = (keras.layers.Dropout, keras.layers.GaussianDropout)
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, kinds) and layer.rate
    ]
    rates = [layer.rate for layer in layers]
    try:
        for layer in layers:
            layer.rate = 0.0
        yield
    finally:
        for layer, rate in zip(layers, rates, strict=True):
            layer.rate = rate


class PreciseBatchNorm:
    """Sets BatchNorm moving statistics to their mean over given batches.

    The statistics function is traced once per model and input shape, so
    calling `recalibrate` every epoch costs only the forward passes.

    Args:
        model: keras.Model.

    Example:
    ```python
    precise_bn = PreciseBatchNorm(model)
    precise_bn.recalibrate(images for images, _ in train_ds.take(10))
    ```
    """

    def __init__(self, model):
        self.model = model
        self.layers = batchnorm_layers(model)
        self._fn = None

    def _statistics_fn(self):
        model = self.model
        non_trainable = model.non_trainable_variables
        position = {id(v): i for i, v in enumerate(non_trainable)}
        slots = [
            (
                position[id(layer.moving_mean)],
                position[id(layer.moving_variance)],
                float(layer.momentum),
            )
            for layer in self.layers
        ]

        @tf.function(input_signature=[IMAGE_SPEC])
        def statistics(images):
            old = [tf.convert_to_tensor(v) for v in non_trainable]
            params = [tf.convert_to_tensor(v) for v in model.trainable_variables]
            _, new = model.stateless_call(params, old, images, training=True)
            stats = []
            for mean_i, var_i, momentum in slots:
                # Keras updates moving = m * moving + (1 - m) * batch.
                for i in (mean_i, var_i):
                    batch = (new[i] - momentum * old[i]) / (1.0 - momentum)
                    stats.append(tf.cast(batch, tf.float32))
            return stats

        return statistics, slots, non_trainable

    def recalibrate(self, batches):
        """Re-estimates the statistics from an iterable of image batches.

        Returns:
            int, the number of batches used (0 when the model has no BN).
        """
        if not self.layers:
            return 0
        if self._fn is None:
            self._fn = self._statistics_fn()
        statistics, slots, non_trainable = self._fn
        sums, count = None, 0
        for images in batches:
            with dropout_off(self.model):
                stats = statistics(tf.cast(images, tf.uint8))
            sums = (
                stats
                if sums is None
                else [a + b for a, b in zip(sums, stats, strict=True)]
            )
            count += 1
        if not count:
            return 0
        for k, (mean_i, var_i, _) in enumerate(slots):
            mean = non_trainable[mean_i]
            variance = non_trainable[var_i]
            mean.assign(tf.cast(sums[2 * k] / count, mean.dtype))
            variance.assign(
                tf.cast(tf.maximum(sums[2 * k + 1] / count, 0.0), variance.dtype)
            )
        return count
