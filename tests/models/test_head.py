import keras
import numpy as np
import pytest

from tfiqa.errors import ConfigError
from tfiqa.models import GlobalPooling, MultiLevelHead


def feature_maps(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "P2": rng.normal(size=(batch, 8, 6, 4)).astype("float32"),
        "P3": rng.normal(size=(batch, 4, 3, 5)).astype("float32"),
        "P5": rng.normal(size=(batch, 1, 1, 7)).astype("float32"),
    }


def test_global_pooling_values():
    x = feature_maps()["P2"]
    out = np.asarray(GlobalPooling(("avg", "max", "std"))(x))
    flat = x.reshape(3, -1, 4)
    expected = np.concatenate(
        [flat.mean(1), flat.max(1), np.sqrt(flat.var(1) + 1e-6)], axis=-1
    )
    assert out.shape == (3, 12)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_std_pooling_of_a_flat_map_has_finite_gradient():
    import tensorflow as tf

    x = tf.ones((1, 4, 4, 2))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(GlobalPooling(("std",))(x))
    assert np.all(np.isfinite(tape.gradient(y, x).numpy()))


def test_std_pooling_keeps_a_small_spread_on_a_large_mean():
    # float32 E[x^2] - E[x]^2 loses a spread of 0.01 around 1000 entirely.
    rng = np.random.default_rng(0)
    x = (1000.0 + 0.01 * rng.normal(size=(2, 16, 16, 3))).astype("float32")
    out = np.asarray(GlobalPooling(("std",))(x))
    expected = np.sqrt(x.astype(np.float64).reshape(2, -1, 3).var(1) + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=0.02)


@pytest.mark.parametrize("pooling", [(), ("mean",)])
def test_bad_pooling(pooling):
    with pytest.raises(ConfigError, match="model.pooling"):
        GlobalPooling(pooling)


def test_multi_level_head_uses_only_its_levels():
    features = feature_maps()
    head = MultiLevelHead(
        levels=("P2", "P5"), pooling=("avg", "std"), head_units=(8,), dropout=0.0
    )
    out = np.asarray(head(features))
    assert out.shape == (3, 1)
    assert np.all((out > 0) & (out < 1))
    # Input width of the first Dense: (4 + 7) channels x 2 poolings.
    assert head.hidden[0].kernel.shape == (22, 8)
    # Changing an unused level does not change the score.
    features["P3"] = features["P3"] * 100
    np.testing.assert_allclose(np.asarray(head(features)), out, rtol=1e-6)


def test_single_level_linear_prelu_head():
    head = MultiLevelHead(
        levels=("P5",),
        head_units=(16, 8),
        activation="prelu",
        output_activation="linear",
        batch_norm=False,
    )
    out = np.asarray(head(feature_maps(), training=False))
    assert out.shape == (3, 1)
    names = [layer.__class__.__name__ for layer in head.hidden]
    assert names == ["Dense", "PReLU", "Dropout", "Dense", "PReLU", "Dropout"]


def test_missing_level_is_a_config_error():
    head = MultiLevelHead(levels=("P4",))
    with pytest.raises(ConfigError, match="P4"):
        head(feature_maps())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"levels": ()}, "levels"),
        ({"activation": "gelu"}, "activation"),
        ({"output_activation": "tanh"}, "output_activation"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_head_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MultiLevelHead(**kwargs)


def test_head_config_round_trip():
    head = MultiLevelHead(
        levels=("P3",), pooling=("max",), head_units=(4,), activation="prelu"
    )
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(head)
    )
    assert isinstance(clone, MultiLevelHead)
    assert clone.get_config() == head.get_config()
