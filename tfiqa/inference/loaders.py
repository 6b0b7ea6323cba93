"""`load(path)` -> `Scorer`, for each model format and the shipped presets.

One door for every model reference; each format has its reader in
`tfiqa.inference.backends` and is imported only when used, so that scoring
a `.tflite` file needs LiteRT but never TensorFlow. A `.keras` model carries
its scoring policy; a SavedModel or TFLite export carries it in a JSON
sidecar written next to it by `tfiqa export`.
"""

import os
import warnings

from tfiqa.errors import AmbiguousModelWarning, TfiqaError


def _load_keras(path):
    from tfiqa.inference.backends.keras import keras_scorer

    return keras_scorer(path)


def _load_saved_model(path, trust_model):
    from tfiqa.inference.backends.saved_model import saved_model_scorer

    return saved_model_scorer(path, trust_model)


def _load_tflite(path):
    from tfiqa.inference.backends.tflite import tflite_scorer

    return tflite_scorer(path)


def _load_preset(text, trust_model=False):
    from tfiqa.presets import build_head_model, preset_card, preset_file, split_name

    name, fmt = split_name(text)
    fmt, file = preset_file(name, fmt)
    if fmt != "head":
        scorer = load(file, trust_model)
    else:
        from tfiqa.inference.backends.keras import model_scorer

        scorer = model_scorer(build_head_model(preset_card(name), file), path=file)
    scorer.preset = name
    return scorer


def load(path, trust_model=False):
    """Loads a quality model for scoring.

    Args:
        path: str or path-like. A `.keras` model (as `tfiqa train` writes), a
            SavedModel folder (as `tfiqa export` writes: the version folder,
            the model folder or the export folder), a `.tflite` file, or the
            name of a shipped preset (`tfiqa list presets`), optionally with
            a format: "mobile-mnv3s:tflite". An existing path wins over a
            preset of the same name (with an `AmbiguousModelWarning`);
            "preset:NAME" or "preset:NAME:FORMAT" is always the preset.
        trust_model: bool. Run a SavedModel even when its graph uses ops
            outside the scoring allowlist (file I/O, Python calls, ...;
            `tfiqa.inference.backends.trust`). Only for models from a trusted source:
            a SavedModel is a program. `.keras` files are always loaded in
            Keras's safe mode.

    Returns:
        `Scorer`; `scorer.score(images)` returns float32 scores (N,), higher
        is better (in [0, 1] for sigmoid-output models).

    Raises:
        TfiqaError: the path does not exist or is not a known model format.
        UnsafeModelError: the model would run code that scoring does not
            need (see `trust_model`).
    """
    from tfiqa.presets import PREFIX, is_preset

    path = os.fspath(path)
    if path.startswith(PREFIX):
        return _load_preset(path, trust_model)
    if not os.path.exists(path):
        if is_preset(path):
            return _load_preset(path, trust_model)
        raise TfiqaError(f"Model not found. Received: {path}")
    if is_preset(path):
        warnings.warn(
            f"{path!r} is both an existing path and a shipped preset; using the "
            f"path {os.path.abspath(path)}. For the preset, pass "
            f"'{PREFIX}{path}'.",
            AmbiguousModelWarning,
            stacklevel=2,
        )
    if os.path.isdir(path):
        return _load_saved_model(path, trust_model)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".keras":
        return _load_keras(path)
    if ext == ".tflite":
        return _load_tflite(path)
    raise TfiqaError(
        "Unknown model format: expected a .keras file, a .tflite file or a "
        f"SavedModel folder. Received: {path}"
    )
