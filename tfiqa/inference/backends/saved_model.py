"""SavedModels as `tfiqa export` writes them: find, check, load, score.

A SavedModel is a program: before it is loaded its graph is checked against
the op allowlist (`trust.check_saved_model`) unless the caller trusts it.

Example:
```python
fn, input_size = saved_model_predict_fn("out/tfiqa")  # highest version
scores = fn(images_uint8)  # (N,)
```
"""

import os

import numpy as np

from tfiqa.data.crops import fit_to_size
from tfiqa.errors import DataError, first_line
from tfiqa.inference.backends.sidecar import read_sidecar, scorer_settings
from tfiqa.inference.backends.trust import check_saved_model
from tfiqa.inference.scorer import Scorer

SIGNATURE_BYTES = "serving_default"
SIGNATURE_UINT8 = "score_uint8"
SIDECAR_PATH = os.path.join("assets.extra", "tfiqa.json")


def _versions(folder):
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return sorted(
        int(e)
        for e in entries
        if e.isdigit() and os.path.isfile(os.path.join(folder, e, "saved_model.pb"))
    )


def resolve_saved_model_dir(path):
    """Finds the SavedModel for a version dir, a model base dir or an export dir.

    `DIR/<name>/<version>` is used as is; `DIR/<name>` gives its highest
    version; `DIR` gives the highest version of its only model.

    Raises:
        DataError: no SavedModel (or more than one model) under `path`.
    """
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = _versions(path)
    if versions:
        return os.path.join(path, str(versions[-1]))
    models = []
    if os.path.isdir(path):
        for entry in sorted(os.listdir(path)):
            if _versions(os.path.join(path, entry)):
                models.append(entry)
    if len(models) == 1:
        return resolve_saved_model_dir(os.path.join(path, models[0]))
    if models:
        raise DataError(
            f"{path} holds several models; pass one of them "
            f"({', '.join(os.path.join(path, m) for m in models)}). "
            f"Received: {path}"
        )
    raise DataError(
        "Not a SavedModel: expected saved_model.pb in the folder, in a numeric "
        f"version subfolder, or in <name>/<version>/. Received: {path}"
    )


def load_saved_model(directory, trust_model=False):
    """`tf.saved_model.load`, with a one-line DataError for a corrupt folder.

    Unless `trust_model`, the graph is first checked against the op allowlist
    (`tfiqa.inference.backends.trust`): a SavedModel is a program, and loading or
    calling one runs it.

    Raises:
        UnsafeModelError: an op that scoring does not need (file I/O, ...).
        DataError: the folder is not a loadable SavedModel.
    """
    import tensorflow as tf

    pb = os.path.join(directory, "saved_model.pb")
    if os.path.getsize(pb) == 0:
        raise DataError(f"Corrupt SavedModel {directory}: saved_model.pb is empty")
    if not trust_model:
        check_saved_model(directory)
    try:
        return tf.saved_model.load(directory)
    except Exception as e:  # noqa: BLE001  (protobuf, checkpoint and TF errors)
        raise DataError(f"Corrupt SavedModel {directory}: {first_line(e)}") from None


def saved_model_predict_fn(path, trust_model=False):
    """A scoring function for an exported SavedModel (its `score_uint8`).

    Args:
        path: str. Version dir, model base dir or export dir (see
            `resolve_saved_model_dir`).
        trust_model: bool. Skip the op allowlist (`load_saved_model`).

    Returns:
        (fn, input_size): `fn(uint8 array (N, H, W, 3)) -> np.ndarray (N,)`
        float32 scores; `input_size` is the fixed square input side, or None
        when the export takes any size. With a fixed size, other sizes are
        centre-cropped / zero-padded to it (never resized).
    """
    import tensorflow as tf

    directory = resolve_saved_model_dir(path)
    loaded = load_saved_model(directory, trust_model)
    if SIGNATURE_UINT8 not in loaded.signatures:
        raise DataError(
            f"SavedModel has no '{SIGNATURE_UINT8}' signature; re-export it with "
            f"`tfiqa export`. Received signatures: {list(loaded.signatures)} "
            f"in {directory}"
        )
    signature = loaded.signatures[SIGNATURE_UINT8]
    spec = signature.structured_input_signature[1]["images"]
    input_size = spec.shape[1]

    def fn(images):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[np.newaxis]
        if images.dtype != np.uint8:
            images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        if input_size and images.shape[1:3] != (input_size, input_size):
            images = fit_to_size(images, input_size)
        return signature(images=tf.constant(images))["score"].numpy()

    fn.saved_model = loaded  # keeps the loaded object (and its variables) alive
    return fn, input_size


def saved_model_bytes_fn(path, trust_model=False):
    """`fn(list of encoded image files (bytes)) -> np.ndarray (N,)` through the
    `serving_default` signature, i.e. what a TF Serving client gets
    (`trust_model`: see `load_saved_model`)."""
    import tensorflow as tf

    loaded = load_saved_model(resolve_saved_model_dir(path), trust_model)
    signature = loaded.signatures[SIGNATURE_BYTES]

    def fn(blobs):
        return signature(image_bytes=tf.constant(list(blobs), tf.string))[
            "score"
        ].numpy()

    fn.saved_model = loaded
    return fn


def saved_model_scorer(path, trust_model=False):
    """A `Scorer` for a SavedModel, under the policy of its sidecar."""
    fn, input_size = saved_model_predict_fn(path, trust_model)
    sidecar_path = os.path.join(resolve_saved_model_dir(path), SIDECAR_PATH)
    settings = scorer_settings(read_sidecar(sidecar_path), input_size, sidecar_path)
    return Scorer(fn, backend="saved_model", path=path, **settings)
