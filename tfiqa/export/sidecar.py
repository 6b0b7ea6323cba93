"""The JSON sidecar that travels with every export.

It tells an app or a server everything needed to use the file without the
training code: the input tensor (dtype, shape, colour order, pixel range,
crop policy and quantization), what the score means (range and direction,
output quantization), and where the model came from (backbone, training data
and validation metrics when the model's run directory has them).

Example (`model_int8_io.json`, abridged):
```json
{"format": "tflite", "quantization": "int8_io", "signature": "score",
 "input": {"name": "image", "dtype": "uint8", "shape": [-1, 224, 224, 3],
           "quantization": {"scale": 1.0, "zero_point": 0}, ...},
 "output": {"name": "score", "range": [0.0, 1.0],
            "direction": "higher is better",
            "quantization": {"scale": 0.00390625, "zero_point": 0}, ...}}
```
"""

import datetime
import json
import os
import warnings

import yaml

import tfiqa
from tfiqa.config_migration import migrate
from tfiqa.scoring_policy import ScoringPolicy

_MODEL_KEYS = (
    "backbone",
    "weights",
    "levels",
    "pooling",
    "head_units",
    "output_activation",
)

CROP_POLICY = (
    "one input is one crop: score each image as the mean over the `scoring` "
    "policy's crops (crop_size x crop_size, spread as tfiqa.data.crops."
    "crop_positions places them); an image whose short side is below "
    "crop_size is first upscaled (bilinear, aspect kept) to it when "
    "small_images is 'upscale', or scored whole (dynamic input only) when "
    "'whole'."
)


def score_range(model):
    """(low, high) of the model's scores, or None if unbounded or unknown."""
    activation = model_summary(model).get("output_activation")
    if activation == "sigmoid":
        return [0.0, 1.0]
    if activation == "tanh":
        return [-1.0, 1.0]
    return None


def model_summary(model):
    """JSON-friendly facts about the model (IQAModel config keys when present;
    its scoring policy is the sidecar's `scoring` record)."""
    summary = {"class": type(model).__name__, "name": model.name}
    try:
        config = model.get_config() or {}
    except NotImplementedError:
        config = {}
    for key in _MODEL_KEYS:
        # From the config only: `model.weights` and `model.backbone` are
        # attributes of another kind.
        value = config.get(key)
        if value is None:
            continue
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        summary[key] = value
    return summary


def _without_history(value):
    """Drops per-epoch "history" lists: final figures are what an app needs."""
    if isinstance(value, dict):
        return {k: _without_history(v) for k, v in value.items() if k != "history"}
    return value


def training_info(model_path):
    """Training data and validation metrics from the model's run directory.

    `run_experiment` writes `model.keras` next to `config.yaml` and
    `metrics.json`; a model file elsewhere gives an empty dict.
    """
    if not model_path:
        return {}
    workdir = os.path.dirname(os.path.abspath(model_path))
    info = {}
    metrics_path = os.path.join(workdir, "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            info["metrics"] = _without_history(json.load(f))
    config_path = os.path.join(workdir, "config.yaml")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            config = yaml.safe_load(f) or {}
        with warnings.catch_warnings():
            # A run of the layout before: its training warned already.
            warnings.simplefilter("ignore", DeprecationWarning)
            config = migrate(config)
        data = config.get("data", {})
        stages = config.get("stages", {})
        info["data"] = {
            k: data[k]
            for k in ("dataset", "dataset_dir", "pristine_dir", "crop_size")
            if k in data
        }
        if "order" in stages:
            info["stages"] = stages["order"]
    if info:
        info["workdir"] = workdir
    return info


def build_sidecar(
    *,
    export_format,
    file,
    model,
    input_spec,
    output_spec,
    model_path=None,
    quantization="none",
    policy=None,
    signature=None,
    extra=None,
):
    """Assembles the sidecar dict.

    Args:
        export_format: "saved_model" or "tflite".
        file: str. The export, relative to the sidecar.
        model: the Keras model that was exported.
        input_spec: dict with at least name, dtype, shape; quantization
            params where the input is integer.
        output_spec: dict with at least name, dtype, shape.
        model_path: str or None. The `.keras` file (for training info).
        quantization: str. One of `tfiqa.export.tflite.QUANTIZATIONS`.
        policy: `ScoringPolicy` or None. The scoring policy (default: the
            model's), recorded as `scoring` (`ScoringPolicy.to_dict`).
        signature: str or None. Signature (TFLite) name.
        extra: dict or None. Merged in at the top level.
    """
    low_high = score_range(model)
    input_spec = {
        "layout": "NHWC",
        "color": "RGB",
        "pixel_range": [0, 255],
        "normalisation": (
            "none: feed raw RGB pixel values 0..255; the model normalises internally"
        ),
        "crop_policy": CROP_POLICY,
        **input_spec,
    }
    output_spec = {
        "meaning": "perceptual quality score, higher is better",
        "direction": "higher is better",
        "range": low_high,
        **output_spec,
    }
    sidecar = {
        "format": export_format,
        "file": file,
        "quantization": quantization,
        "signature": signature,
        "input": input_spec,
        "output": output_spec,
        "scoring": (policy or ScoringPolicy.of(model)).to_dict(),
        "model": model_summary(model),
        "training": training_info(model_path),
        "tfiqa_version": tfiqa.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if extra:
        sidecar.update(extra)
    return sidecar
