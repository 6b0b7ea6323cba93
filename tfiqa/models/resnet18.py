"""ResNet-18 v1 (the MetaIQA backbone), built here so that keras-hub is optional.

Layer names and structure mirror keras-hub's `ResNetBackbone` (basic blocks,
v1) so that the `resnet_18_imagenet` preset's weights copy over by name.
"""

import keras

from tfiqa.errors import ConfigError
from tfiqa.models.pretrained import (
    DOWNLOAD_HOSTS,
    copy_weights_by_name,
    require_download,
)


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


def _copy_keras_hub_resnet18(network):
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


def resnet18_with_weights(weights=None):
    """`resnet18_network()` with checked `weights` (None, "imagenet" or a path).

    "imagenet" copies keras-hub's `resnet_18_imagenet` preset (downloaded by
    keras-hub on first use); a path loads a `.weights.h5` of this network or
    of a keras-hub `ResNetBackbone` ResNet-18, which has the same layers.
    """
    network = resnet18_network()
    if weights == "imagenet":
        _copy_keras_hub_resnet18(network)
    elif weights is not None:
        network.load_weights(weights)
    return network
