"""Packages a trained model as a preset folder (`tfiqa export --preset NAME`).

What goes in:
- a model whose backbone weights come from an installed package
  (`model.weights: hed`) ships only its head (`head.npz`) and is rebuilt
  at load time; any other model ships its `.keras` file;
- the TFLite files the export wrote (with their sidecars);
- `preset.json`: model config, input policy, score range, the run's
  test metrics (from the `metrics.json` beside the model), sizes and SHA-256.
Copy the folder into `tfiqa/presets/` to ship it with the package.
"""

import os
import shutil

from tfiqa.files import write_json_atomic
from tfiqa.presets import file_sha256, save_head

# Backbone weights installed with the package (the `pretrained` extra): a
# preset over them ships its head only. (weights, backbone or None for any).
PACKAGED_WEIGHTS = (
    ("hed", None),
    ("imagenet", "efficientnet_lite0"),
    ("imagenet", "efficientnet_lite1"),
    ("imagenet", "efficientnet_lite2"),
)


def ships_head_only(model):
    """Whether `model`'s backbone weights install with the package."""
    weights, backbone = model.backbone_weights, model.backbone_name
    return any(
        weights == w and backbone == (b or backbone) for w, b in PACKAGED_WEIGHTS
    )


def _model_card(model):
    config = model.get_config()
    config.pop("trainable", None)
    config.pop("name", None)
    config["weights"] = model.backbone_weights
    return config


def _run_metrics(model_path):
    import json

    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "metrics.json")
    if not os.path.isfile(path):
        return {}, {}
    with open(path) as f:
        metrics = json.load(f)
    test = metrics.get("test") or {}
    keep = ("srcc", "plcc", "krcc", "rmse", "n", "eval_mode")
    return {k: test[k] for k in keep if k in test}, metrics.get("seeds", {})


def _file_entry(folder, file):
    """Size and SHA-256 of a preset file, and of its JSON sidecar (a TFLite
    file's scoring policy) when it has one."""
    path = os.path.join(folder, file)
    entry = {"file": file, "bytes": os.path.getsize(path), "sha256": file_sha256(path)}
    sidecar = os.path.splitext(file)[0] + ".json"
    if file.endswith(".tflite") and os.path.isfile(os.path.join(folder, sidecar)):
        entry["sidecar"] = {
            "file": sidecar,
            "sha256": file_sha256(os.path.join(folder, sidecar)),
        }
    return entry


def write_preset(
    model,
    model_path,
    folder,
    name,
    manifest=None,
    description="",
    tflite_only=False,
):
    """Writes preset `name` for `model` (loaded from `model_path`) to `folder`.

    Args:
        model: IQAModel.
        model_path: str. Its `.keras` file (next to the run's metrics.json).
        folder: str. Output folder (created; files are replaced).
        name: str. Preset name.
        manifest: dict or None. `export_model`'s manifest: its TFLite files
            are included.
        description: str.
        tflite_only: bool. Ship only the manifest's TFLite files (a phone
            preset), its int8 file as the default format.

    Returns:
        dict, the card written to `folder/preset.json`.
    """
    os.makedirs(folder, exist_ok=True)
    files = {}
    if tflite_only:
        default = "tflite"
    elif ships_head_only(model):
        save_head(model, os.path.join(folder, "head.npz"))
        files["head"] = "head.npz"
        default = "head"
    else:
        shutil.copyfile(model_path, os.path.join(folder, "model.keras"))
        files["keras"] = "model.keras"
        default = "keras"
    for variant, path in ((manifest or {}).get("tflite") or {}).items():
        target = f"model_{variant}.tflite"
        shutil.copyfile(path, os.path.join(folder, target))
        sidecar = os.path.splitext(path)[0] + ".json"
        if os.path.isfile(sidecar):
            shutil.copyfile(sidecar, os.path.join(folder, f"model_{variant}.json"))
        # "tflite" is the int8 file phones want (int8, else int8_io); other
        # variants keep their name.
        label = "float32" if variant == "none" else variant
        tflite = manifest["tflite"]
        phone = variant == "int8" or (variant == "int8_io" and "int8" not in tflite)
        files["tflite" if phone else f"tflite_{label}"] = target
    test, seeds = _run_metrics(model_path)
    card = {
        "name": name,
        "description": description,
        "default_format": default,
        "model": _model_card(model),
        "input": model.scoring_policy.describe(),
        "scores": "[0, 1], higher is better"
        if model.output_activation == "sigmoid"
        else "unbounded, higher is better",
        "test": test,
        "seeds": seeds,
        "files": {fmt: _file_entry(folder, file) for fmt, file in files.items()},
    }
    write_json_atomic(os.path.join(folder, "preset.json"), card)
    return card
