"""Deployment: TF Serving SavedModels, quantized TFLite files, parity checks.

`export_model` writes, under one output directory:
```
DIR/models.config                         TF Serving --model_config_file
DIR/<name>/<version>/                     SavedModel (serving_default, score_uint8)
DIR/<name>/<version>/assets.extra/tfiqa.json   its sidecar
DIR/tflite/<name>_<variant>.tflite        float32, fp16, dynamic, int8, int8_io
DIR/tflite/<name>_<variant>.json          sidecar: input spec, score meaning
DIR/export.json                           what was written (last: absent = partial)
DIR/verify.json                           parity report (with verify_dir)
```
See export/README.md for serving and on-device use.

Reading models (every format) is `tfiqa.inference.backends`' job; export
writes files and verifies them through those readers.

Example:
```python
model = load_keras_model("runs/exp1/model.keras")  # tfiqa.inference.backends.keras
export_model(model, "export/out", quantize=["none", "int8"],
             calibration_dir="calib/", verify_dir="check/",
             model_path="runs/exp1/model.keras")
```
"""

import dataclasses
import os
import warnings

from tfiqa.errors import ConfigError

FORMATS = ("saved_model", "tflite")
VARIANT_NAMES = {
    "none": "float32",
    "fp16": "fp16",
    "dynamic": "dynamic",
    "int8": "int8",
    "int8_io": "int8_io",
}
DEFAULT_INPUT_SIZE = 224


def __getattr__(name):
    # `load_keras_model` lives with the other model readers; the old import
    # path keeps working, with a warning naming the new one.
    if name == "load_keras_model":
        from tfiqa.inference.backends.keras import load_keras_model

        warnings.warn(
            "tfiqa.export.load_keras_model is now "
            "tfiqa.inference.backends.keras.load_keras_model",
            DeprecationWarning,
            stacklevel=2,
        )
        return load_keras_model
    raise AttributeError(f"module 'tfiqa.export' has no attribute {name!r}")


def resolve_input_size(model, input_size):
    """None -> the model's crop size; 0 -> None (dynamic); else that size.

    A fixed input is one crop of the model's scoring policy, so it must be
    the model's crop size (for models that carry one).
    """
    policy = getattr(model, "scoring_policy", None)
    crop = policy.crop_size if policy else None
    if input_size is None:
        return int(crop or DEFAULT_INPUT_SIZE)
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        raise ConfigError(
            f"export.input_size must be an integer or null. Received: {input_size!r}"
        )
    if input_size < 0:
        raise ConfigError(
            f"export.input_size must be 0 (dynamic) or positive. Received: {input_size}"
        )
    if input_size and crop and input_size != int(crop):
        raise ConfigError(
            f"export.input_size must be the model's crop size {crop} (a fixed "
            "input is one scoring crop), 0 (dynamic) or unset. "
            f"Received: {input_size}"
        )
    return input_size or None


def export_policy(model, size):
    """The `ScoringPolicy` written into the exports' sidecars and graphs: the
    model's own, or for a model without one the defaults at the fixed `size`."""
    from tfiqa.scoring_policy import ScoringPolicy

    policy = ScoringPolicy.of(model)
    if size and getattr(model, "scoring_policy", None) is None:
        policy = dataclasses.replace(policy, crop_size=size)
    return policy


def _write_json(path, obj):
    from tfiqa.export.saved_model import make_readable
    from tfiqa.files import write_json_atomic

    write_json_atomic(path, obj)
    make_readable(path)


def export_model(
    model,
    output_dir,
    formats=FORMATS,
    quantize=("none",),
    input_size=None,
    name="tfiqa",
    version=1,
    calibration_dir=None,
    calibration_count=100,
    verify_dir=None,
    model_path=None,
    serving_base_path="/models",
    log=None,
):
    """Exports a scoring model to SavedModel and/or TFLite files.

    Args:
        model: keras.Model taking (B, H, W, 3) pixels in [0, 255] and
            returning scores (B,), e.g. `tfiqa.models.IQAModel`.
        output_dir: str. Created if missing.
        formats: iterable of "saved_model", "tflite".
        quantize: iterable of TFLite variants ("none", "fp16", "dynamic",
            "int8", "int8_io").
        input_size: int or None. Fixed square input side; 0 exports a
            dynamic size; None uses the crop size of the model's scoring
            policy (or 224).
        name: str. Model name (TF Serving name, file prefix).
        version: int. TF Serving version directory.
        calibration_dir: str or None. Images for int8 calibration.
        calibration_count: int. Use at most this many calibration images.
        verify_dir: str or None. Score these images with Keras and every
            export; raises `TfiqaError` when an export disagrees.
        model_path: str or None. The `.keras` file, for the sidecar's
            training data and metrics (read from its run directory).
        serving_base_path: str. Where `models.config` says the model lives
            on the serving machine (`/models` in the TF Serving image).
        log: callable(str) or None. Progress messages.

    Returns:
        dict, the manifest also written to `DIR/export.json`.
    """
    log = log or (lambda message: None)
    formats, quantize = _check_request(formats, quantize, version, calibration_dir)
    size = resolve_input_size(model, input_size)
    policy = export_policy(model, size)
    manifest_path, manifest = _start_manifest(output_dir, name, version, size, policy)
    if "saved_model" in formats:
        manifest["saved_model"], manifest["models_config"] = _write_saved_model(
            model, output_dir, manifest, policy, model_path, serving_base_path, log
        )
    if "tflite" in formats:
        calibration = None
        if _needs_calibration(formats, quantize):
            calibration = _calibrate(
                model, calibration_dir, calibration_count, policy, log
            )
        manifest["tflite"] = _write_tflite(
            model, output_dir, manifest, policy, quantize, calibration, model_path, log
        )
    report = None
    if verify_dir:
        report = _verify(model, manifest, policy, verify_dir, log)
        manifest["verify"] = os.path.join(output_dir, "verify.json")
        _write_json(manifest["verify"], report)
    _write_json(manifest_path, manifest)
    if report is not None:
        from tfiqa.export.verify import check_report

        check_report(report)
    return manifest


def _start_manifest(output_dir, name, version, size, policy):
    """Creates `output_dir` and removes a previous `export.json`: it is written
    last, so a folder without it is a partial export."""
    os.makedirs(output_dir, exist_ok=True)
    manifest_path = os.path.join(output_dir, "export.json")
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    manifest = {
        "name": name,
        "version": int(version),
        "input_size": size,
        "scoring": policy.to_dict(),
        "saved_model": None,
        "models_config": None,
        "tflite": {},
    }
    return manifest_path, manifest


def _calibrate(model, calibration_dir, calibration_count, policy, log):
    """The int8 calibration set (`tfiqa.export.calibration`), spanning the
    model's score range."""
    from tfiqa.export.calibration import calibration_images, spanning_calibration

    crops = calibration_images(calibration_dir, calibration_count, policy)
    crop = policy.crop_size
    log(
        f"Calibrating int8 on {len(crops)} images from "
        f"{calibration_dir} ({crop}x{crop} crops)"
    )
    calibration = spanning_calibration(model, crops)
    calibration["images"] = len(crops)
    low, high = calibration["check_scores"].min(), calibration["check_scores"].max()
    log(
        f"  with {calibration['copies']} distorted copies, so that it spans the "
        f"float scores {low:.3f}..{high:.3f} of the crops and their copies"
    )
    return calibration


def _check_int8(path, calibration, log):
    """Compares a calibrated file with the float model; warns past tolerance."""
    from tfiqa.export.calibration import INT8_TOLERANCE, int8_agreement

    check = int8_agreement(path, calibration["check"], calibration["check_scores"])
    if check["max_abs_error"] > INT8_TOLERANCE:
        log(
            f"Warning: {os.path.basename(path)} scores differ from the float "
            f"model by up to {check['max_abs_error']:.3f} (more than "
            f"{INT8_TOLERANCE}) on the calibration crops and their copies; use "
            "float32 or dynamic TFLite where absolute scores matter."
        )
    return check


def _needs_calibration(formats, quantize):
    from tfiqa.export.tflite import CALIBRATED

    return "tflite" in formats and any(q in CALIBRATED for q in quantize)


def _check_request(formats, quantize, version, calibration_dir):
    """Validated (formats, quantize) lists; raises ConfigError before any work."""
    from tfiqa.export.tflite import check_quantizations

    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"Unknown export format {unknown}; valid: {', '.join(FORMATS)}. "
            f"Received: {formats}"
        )
    quantize = check_quantizations(list(quantize))
    if "tflite" in formats and not quantize:
        raise ConfigError("TFLite export needs at least one quantization. Received: []")
    if "tflite" not in formats and any(q != "none" for q in quantize):
        raise ConfigError(
            "Quantization applies to TFLite only; add --format tflite or all. "
            f"Received: formats={formats}, quantize={quantize}"
        )
    if int(version) < 1:
        raise ConfigError(f"export.version must be >= 1. Received: {version}")
    if _needs_calibration(formats, quantize) and not calibration_dir:
        raise ConfigError(
            "int8 and int8_io need calibration images: pass --calibration-dir "
            f"(a folder of typical images). Received: quantize={quantize}"
        )
    return formats, quantize


def _write_saved_model(model, output_dir, manifest, policy, model_path, base_path, log):
    """Writes the SavedModel and `models.config`; returns both their paths."""
    from tfiqa.export import saved_model as sm
    from tfiqa.export.sidecar import build_sidecar

    name, version, size = manifest["name"], manifest["version"], manifest["input_size"]
    base_dir = os.path.join(output_dir, name)
    log(f"Writing SavedModel to {base_dir}/{version}")
    meta = build_sidecar(
        export_format="saved_model",
        file="..",
        model=model,
        model_path=model_path,
        input_spec={
            "name": "images (score_uint8) / image_bytes (serving_default)",
            "dtype": "uint8 / string (encoded JPEG, PNG, BMP or GIF)",
            "shape": [-1, size or -1, size or -1, 3],
            "quantization": None,
        },
        output_spec={"name": "score", "dtype": "float32", "shape": [-1]},
        policy=policy,
        extra={"signatures": [sm.SIGNATURE_BYTES, sm.SIGNATURE_UINT8]},
    )
    version_dir = sm.export_saved_model(model, base_dir, version, size, meta)
    config_path = os.path.join(output_dir, "models.config")
    sm.write_models_config(config_path, name, f"{base_path}/{name}")
    return version_dir, config_path


def _write_tflite(
    model, output_dir, manifest, policy, quantize, calibration, model_path, log
):
    """Writes one `.tflite` file and its JSON sidecar per quantization;
    returns {quantization: path}."""
    from tfiqa.export import tflite
    from tfiqa.export.sidecar import build_sidecar

    tflite_dir = os.path.join(output_dir, "tflite")
    paths = {
        q: os.path.join(tflite_dir, f"{manifest['name']}_{VARIANT_NAMES[q]}.tflite")
        for q in quantize
    }
    log(f"Converting to TFLite ({', '.join(quantize)}) in {tflite_dir}")
    samples = calibration["samples"] if calibration else None
    infos = tflite.export_tflite_variants(model, paths, manifest["input_size"], samples)
    for q, info in infos.items():
        calibrated = q in tflite.CALIBRATED
        meta = build_sidecar(
            export_format="tflite",
            file=os.path.basename(paths[q]),
            model=model,
            model_path=model_path,
            quantization=q,
            policy=policy,
            signature=tflite.SIGNATURE,
            input_spec=info["input"],
            output_spec=info["output"],
            extra={
                "float_fallback": info["float_fallback"],
                "calibration_images": calibration["images"] if calibrated else 0,
                "bytes": info["bytes"],
            },
        )
        if calibrated:
            meta["calibration_copies"] = calibration["copies"]
            meta["int8_check"] = _check_int8(paths[q], calibration, log)
        if info["output"]["quantization"]:
            meta["output"]["dequantize"] = "score = scale * (q - zero_point)"
        _write_json(os.path.splitext(paths[q])[0] + ".json", meta)
    return {q: paths[q] for q in infos}


def _verify(model, manifest, policy, verify_dir, log):
    from tfiqa.export import verify
    from tfiqa.inference import load
    from tfiqa.inference.backends.saved_model import saved_model_bytes_fn

    exports = []
    if manifest["saved_model"]:
        exports.append(
            {
                "name": "saved_model (score_uint8)",
                "kind": "saved_model",
                "scorer": load(manifest["saved_model"]),
                "bytes_fn": saved_model_bytes_fn(manifest["saved_model"]),
            }
        )
    for q, path in manifest["tflite"].items():
        exports.append(
            {"name": f"tflite {VARIANT_NAMES[q]}", "kind": q, "scorer": load(path)}
        )
    log(f"Verifying exports on {verify_dir}")
    report = verify.verify_exports(model, exports, verify_dir, policy=policy)
    log(verify.format_report(report))
    return report
