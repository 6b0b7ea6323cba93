"""Batch statistics of a model whose first BatchNorm layer is frozen."""

import keras
import numpy as np

from tfiqa.training.batchnorm import BatchNormSlots


def two_batchnorm_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn_frozen")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_live")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    frozen = model.get_layer("bn_frozen")
    frozen.moving_mean.assign(np.full(4, 0.5, np.float32))
    frozen.moving_variance.assign(np.full(4, 2.0, np.float32))
    return model


def test_frozen_batchnorm_layers_keep_their_moving_statistics():
    model = two_batchnorm_model()
    model.get_layer("bn_frozen").trainable = False
    model.get_layer("conv_a").trainable = False
    slots = BatchNormSlots(model)
    assert len(slots.slots) == 1
    images = np.random.default_rng(0).normal(size=(6, 8, 8, 3)).astype("float32")
    params = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    values, stats = slots.batch_statistics(model, params, non_trainable, images)
    frozen = model.get_layer("bn_frozen")
    position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    np.testing.assert_allclose(values[position[id(frozen.moving_mean)]], 0.5)
    np.testing.assert_allclose(values[position[id(frozen.moving_variance)]], 2.0)
    # The live layer gets the exact batch statistics of its input.
    hidden = keras.Model(model.input, model.get_layer("conv_b").output)
    expected = hidden(images, training=False).numpy()
    np.testing.assert_allclose(stats[0], expected.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(stats[1], expected.var(axis=(0, 1, 2)), atol=1e-4)
