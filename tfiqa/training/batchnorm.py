"""Precise BatchNorm statistics, shared by every stage and the MAML step.

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


class BatchNormSlots:
    """Where each BatchNorm layer's moving statistics sit among the model's
    non-trainable variables, and how to get batch statistics functionally.

    Keras updates `moving = m * moving + (1 - m) * batch` in a training-mode
    call. Calling `stateless_call(..., training=True)` with zero moving
    statistics (unused for normalisation in training mode) therefore returns
    `(1 - m) * batch`, from which the batch statistics follow exactly.
    Frozen BatchNorm layers run in inference mode (Keras 3) and keep their
    moving statistics, so they get no slot.
    """

    def __init__(self, model):
        non_trainable = model.non_trainable_variables
        position = {id(v): i for i, v in enumerate(non_trainable)}
        self.slots = []  # (mean index, variance index, momentum)
        for layer in batchnorm_layers(model):
            if not layer.trainable:
                continue
            self.slots.append(
                (
                    position[id(layer.moving_mean)],
                    position[id(layer.moving_variance)],
                    float(layer.momentum),
                )
            )

    def batch_statistics(self, model, params, non_trainable, images):
        """Returns (non_trainable with batch statistics in the BatchNorm
        slots, [mean, variance, mean, variance, ...] in slot order)."""
        zeroed = list(non_trainable)
        for mean_i, var_i, _ in self.slots:
            zeroed[mean_i] = tf.zeros_like(non_trainable[mean_i])
            zeroed[var_i] = tf.zeros_like(non_trainable[var_i])
        with dropout_off(model):  # statistics of what inference will see
            _, new = model.stateless_call(params, zeroed, images, training=True)
        stats = []
        for mean_i, var_i, momentum in self.slots:
            for i in (mean_i, var_i):
                stats.append(tf.stop_gradient(new[i] / (1.0 - momentum)))
        return self.substitute(non_trainable, stats), stats

    def substitute(self, non_trainable, stats):
        """`non_trainable` with `stats` ([mean, variance, ...]) in the slots."""
        values = list(non_trainable)
        k = 0
        for mean_i, var_i, _ in self.slots:
            for i in (mean_i, var_i):
                values[i] = stats[k]
                k += 1
        return values

    def cross_replica(self, stats, count, context):
        """Statistics of the images of every replica, from each replica's
        statistics `stats` of its `count` images (all-reduced)."""
        count = tf.cast(count, tf.float32)
        moments = []
        for mean, variance in zip(stats[0::2], stats[1::2], strict=True):
            mean32 = tf.cast(mean, tf.float32)
            second = tf.cast(variance, tf.float32) + tf.square(mean32)
            moments += [count * mean32, count * second]
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        moments = context.all_reduce(tf.distribute.ReduceOp.SUM, moments)
        out = []
        for k in range(0, len(moments), 2):
            mean = moments[k] / total
            variance = tf.maximum(moments[k + 1] / total - tf.square(mean), 0.0)
            out += [
                tf.cast(mean, stats[k].dtype),
                tf.cast(variance, stats[k + 1].dtype),
            ]
        return out

    def moving_update(self, model, stats):
        """Folds batch statistics into the moving averages (one BN update)."""
        variables = model.non_trainable_variables
        k = 0
        for mean_i, var_i, momentum in self.slots:
            for i in (mean_i, var_i):
                v = variables[i]
                v.assign(momentum * v + (1.0 - momentum) * tf.cast(stats[k], v.dtype))
                k += 1

    def assign(self, model, stats):
        variables = model.non_trainable_variables
        k = 0
        for mean_i, var_i, _ in self.slots:
            for i in (mean_i, var_i):
                variables[i].assign(tf.cast(stats[k], variables[i].dtype))
                k += 1


class PreciseBatchNorm:
    """Sets BatchNorm moving statistics to their mean over given batches.

    Each layer's moving mean and variance become the mean of its
    training-mode batch statistics (Dropout off) over the batches; the
    trainable weights are untouched. The statistics function is traced once
    per model (and input signature), so calling `recalibrate` every epoch
    costs only the forward passes.

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
        self.slots = BatchNormSlots(model)
        self._fn = None

    def _statistics_fn(self):
        model, slots = self.model, self.slots

        @tf.function(reduce_retracing=True)
        def batch_statistics(images):
            params = [tf.convert_to_tensor(v) for v in model.trainable_variables]
            old = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]
            return slots.batch_statistics(model, params, old, images)[1]

        return batch_statistics

    def recalibrate(self, batches):
        """Re-estimates the statistics from an iterable of image batches.

        Returns:
            int, the number of batches used (0 when the model has no BN).
        """
        if not self.slots.slots:
            return 0
        if self._fn is None:
            self._fn = self._statistics_fn()
        sums, count = None, 0
        for images in batches:
            stats = self._fn(tf.convert_to_tensor(images))
            sums = (
                stats
                if sums is None
                else [a + b for a, b in zip(sums, stats, strict=True)]
            )
            count += 1
        if not count:
            return 0
        means = [tf.cast(total, tf.float32) / count for total in sums]
        # [mean, variance, mean, variance, ...]: clip rounding below zero.
        means[1::2] = [tf.maximum(v, 0.0) for v in means[1::2]]
        self.slots.assign(self.model, means)
        return count


def recalibrate_batchnorm(model, batches):
    """`PreciseBatchNorm(model).recalibrate(batches)` for a one-off call."""
    return PreciseBatchNorm(model).recalibrate(batches)
