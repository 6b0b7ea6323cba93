"""`load(path)` -> `Scorer`, for each model format and the shipped presets.

A `.keras` model carries its scoring policy; a SavedModel or TFLite export
carries it in a JSON sidecar written next to it by `tfiqa export`.
"""

import json
import os
import warnings

from tfiqa.errors import AmbiguousModelWarning, TfiqaError
from tfiqa.inference.scorer import Scorer


def _read_sidecar(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _from_sidecar(sidecar, input_size):
    from tfiqa.models.scoring import DEFAULT_CROPS, make_policy

    policy = sidecar.get("scoring")
    if not isinstance(policy, dict):
        # Exports written before the policy travelled with the model.
        crop = sidecar.get("model", {}).get("input_crop_size") or input_size
        policy = {"crop_size": crop or 224, "crops": DEFAULT_CROPS}
    policy = make_policy(
        policy.get("crop_size"),
        policy.get("crops"),
        policy.get("small_images"),
        policy.get("resize", 0),
    )
    output = sidecar.get("output", {})
    score_range = output.get("range", (0.0, 1.0)) if output else (0.0, 1.0)
    return {"input_size": input_size, "policy": policy, "score_range": score_range}


def _load_keras(path):
    from tfiqa.export import load_keras_model
    from tfiqa.models.scoring import predict_fn, scoring_policy

    model = load_keras_model(path)
    predict = predict_fn(model)

    def fn(images):
        return predict(images).numpy()

    fn.model = model
    activation = getattr(model, "output_activation", "sigmoid")
    return Scorer(
        fn,
        input_size=None,
        policy=scoring_policy(model),
        score_range=(0.0, 1.0) if activation == "sigmoid" else None,
        backend="keras",
        path=path,
    )


def _load_saved_model(path, trust_model):
    from tfiqa.export.saved_model import (
        SIDECAR_PATH,
        resolve_saved_model_dir,
        saved_model_predict_fn,
    )

    fn, input_size = saved_model_predict_fn(path, trust_model)
    sidecar = _read_sidecar(os.path.join(resolve_saved_model_dir(path), SIDECAR_PATH))
    return Scorer(
        fn, backend="saved_model", path=path, **_from_sidecar(sidecar, input_size)
    )


def _load_tflite(path):
    from tfiqa.export.tflite import tflite_predict_fn

    fn, input_size = tflite_predict_fn(path)
    sidecar = _read_sidecar(os.path.splitext(path)[0] + ".json")
    return Scorer(fn, backend="tflite", path=path, **_from_sidecar(sidecar, input_size))


def _load_preset(text, trust_model=False):
    from tfiqa.models.scoring import predict_fn, scoring_policy
    from tfiqa.presets import build_head_model, preset_card, preset_file, split_name

    name, fmt = split_name(text)
    fmt, file = preset_file(name, fmt)
    if fmt != "head":
        scorer = load(file, trust_model)
    else:
        model = build_head_model(preset_card(name), file)
        predict = predict_fn(model)
        scorer = Scorer(
            lambda images: predict(images).numpy(),
            policy=scoring_policy(model),
            backend="keras",
            path=file,
        )
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
            `tfiqa.export.trust`). Only for models from a trusted source:
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
