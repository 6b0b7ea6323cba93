"""`load(path)` -> `Scorer`, for each model format and the shipped presets.

One door for every model reference; each format has its reader in
`tfiqa.inference.backends` and is imported only when used, so that scoring
a `.tflite` file needs LiteRT but never TensorFlow. A `.keras` model carries
its scoring policy; a SavedModel or TFLite export carries it in a JSON
sidecar written next to it by `tfiqa export`.
"""

import dataclasses
import os
import warnings

from tfiqa.errors import AmbiguousModelWarning, TfiqaError

MODEL_KINDS = ("keras", "saved_model", "tflite", "head")


@dataclasses.dataclass(frozen=True)
class ModelReference:
    """What a model argument names, before anything is loaded.

    kind: one of `MODEL_KINDS` ("head": a preset's head on a backbone whose
        weights come from an installed package).
    path: the file or folder to read.
    preset: the preset's name or folder, or None.
    shipped: True for a preset shipped in the package (which every
        machine with tfiqa installed has).
    """

    kind: str
    path: str
    preset: str | None = None
    shipped: bool = False

    @property
    def needs_tensorflow(self):
        return self.kind != "tflite"


def resolve_model(reference):
    """Resolves a model argument by the one rule `load` documents.

    Checks a preset's files against its card; loads nothing else.
    """
    from tfiqa.presets import PREFIX, is_preset, is_preset_folder

    text = os.fspath(reference)
    if text.startswith(PREFIX):
        return _preset_reference(text)
    if not os.path.exists(text):
        if is_preset(text):
            return _preset_reference(text)
        raise TfiqaError(f"Model not found. Received: {text}")
    if is_preset(text):
        warnings.warn(
            f"{text!r} is both an existing path and a shipped preset; using the "
            f"path {os.path.abspath(text)}. For the preset, pass "
            f"'{PREFIX}{text}'.",
            AmbiguousModelWarning,
            stacklevel=3,
        )
    if is_preset_folder(text):
        return _preset_reference(os.path.abspath(text), folder=True)
    if os.path.isdir(text):
        return ModelReference("saved_model", text)
    ext = os.path.splitext(text)[1].lower()
    if ext in (".keras", ".tflite"):
        return ModelReference(ext[1:], text)
    raise TfiqaError(
        "Unknown model format: expected a .keras file, a .tflite file, a "
        f"SavedModel folder or a preset. Received: {text}"
    )


def _preset_reference(text, folder=False):
    from tfiqa.presets import preset_file, split_name

    name, fmt = (text, None) if folder else split_name(text)
    fmt, path = preset_file(name, fmt)
    if fmt == "head":
        kind = "head"
    else:
        kind = "saved_model" if os.path.isdir(path) else os.path.splitext(path)[1][1:]
    return ModelReference(kind, path, name, shipped=not folder)


def _read(ref, trust_model):
    # Each reader imports its own runtime: TensorFlow only where needed.
    if ref.kind == "tflite":
        from tfiqa.inference.backends.tflite import tflite_scorer

        return tflite_scorer(ref.path)
    if ref.kind == "saved_model":
        from tfiqa.inference.backends.saved_model import saved_model_scorer

        return saved_model_scorer(ref.path, trust_model)
    from tfiqa.inference.backends.keras import keras_scorer, model_scorer

    if ref.kind == "keras":
        return keras_scorer(ref.path)
    from tfiqa.presets import build_head_model, preset_card

    model = build_head_model(preset_card(ref.preset), ref.path)
    return model_scorer(model, path=ref.path)


def load(path, trust_model=False):
    """Loads a quality model for scoring.

    One rule for every model argument (`resolve_model`):
    1. "preset:NAME" or "preset:NAME:FORMAT" is always a shipped preset.
    2. An existing path is read as what it is: a folder holding a
       `preset.json` is a preset folder (what `tfiqa export --preset`
       writes, anywhere on disk); another folder is a SavedModel (the
       version folder, the model folder or the export folder); a `.keras`
       or `.tflite` file is that format. A path that is also a shipped
       preset's name wins, with an `AmbiguousModelWarning`.
    3. Otherwise "NAME" or "NAME:FORMAT" is a shipped preset
       (`tfiqa list presets`), e.g. "mobile-mnv3s:tflite".

    Args:
        path: str or path-like. A model reference, as above (or what
            `resolve_model` made of one).
        trust_model: bool. Run a SavedModel even when its graph uses ops
            outside the scoring allowlist (file I/O, Python calls, ...;
            `tfiqa.inference.backends.trust`). Only for models from a
            trusted source: a SavedModel is a program. `.keras` files are
            always loaded in Keras's safe mode.

    Returns:
        `Scorer`; `scorer.score(images)` returns float32 scores (N,), higher
        is better (in [0, 1] for sigmoid-output models). A `.tflite` model
        is read with LiteRT alone: TensorFlow is not imported.

    Raises:
        TfiqaError: the path does not exist or is not a known model format.
        UnsafeModelError: the model would run code that scoring does not
            need (see `trust_model`).
    """
    ref = path if isinstance(path, ModelReference) else resolve_model(path)
    scorer = _read(ref, trust_model)
    if ref.preset:
        scorer.preset = ref.preset
    return scorer
