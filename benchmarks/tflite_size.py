"""Where the bytes of a TFLite export go: float32 vs int8, by tensor kind.

Builds the model of a built-in config (`config`, default: quickstart;
untrained: sizes do not depend on the weights' values), exports float32,
dynamic and int8 TFLite, and splits each file into
constant tensors by dtype (int8 weights, int32 biases, float32 constants),
quantization parameters (per-channel scales and zero points) and the rest
(graph, metadata, signature). Writes results/tflite_size.{json,md}.

    .venv/bin/python benchmarks/tflite_size.py
"""

import os
import sys
import tempfile

import numpy as np
from common import script, write_results


def breakdown(path):
    """Bytes of a .tflite file by what they hold."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    parts = {"int8 weights": 0, "int32 biases": 0, "float constants": 0, "qparams": 0}
    for detail in interpreter.get_tensor_details():
        q = detail.get("quantization_parameters", {})
        scales = q.get("scales", np.zeros(0))
        zero_points = q.get("zero_points", np.zeros(0))
        parts["qparams"] += scales.size * 4 + zero_points.size * 8
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue  # an activation: no buffer in the file
        if not np.all(detail["shape_signature"] >= 0) or value.size <= 1:
            continue
        kind = {
            np.dtype("int8"): "int8 weights",
            np.dtype("int32"): "int32 biases",
        }.get(value.dtype, "float constants")
        parts[kind] += value.nbytes
    size = os.path.getsize(path)
    parts["graph and metadata"] = max(size - sum(parts.values()), 0)
    return size, parts


def run(args):
    from tfiqa.config import builtin_config_path, load_config
    from tfiqa.export import export_model
    from tfiqa.models import build_model

    config = load_config(builtin_config_path(args.config))
    model = build_model(config.model, crop_size=config.data.crop_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        calibration = os.path.join(tmp, "calibration")
        os.makedirs(calibration)
        from PIL import Image

        rng = np.random.default_rng(0)
        for i in range(8):
            image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
            Image.fromarray(image).save(os.path.join(calibration, f"{i}.png"))
        manifest = export_model(
            model,
            os.path.join(tmp, "out"),
            formats=["tflite"],
            quantize=["none", "dynamic", "int8"],
            calibration_dir=calibration,
        )
        float_size = os.path.getsize(manifest["tflite"]["none"])
        for variant, path in manifest["tflite"].items():
            size, parts = breakdown(path)
            rows.append(
                {
                    "variant": variant,
                    "bytes": size,
                    "ratio to float32": size / float_size,
                    **parts,
                }
            )
    params = int(sum(np.prod(v.shape) for v in model.weights))
    notes = (
        f"The {args.config} model ({config.model.backbone}, levels "
        f"{'/'.join(config.model.levels)}, head {config.model.head_units}, crop "
        f"{config.data.crop_size}): {params} parameters. 'qparams' counts the "
        "scales (float32) and zero points (int64) of every quantized tensor, "
        "activations included (an upper bound: the rest is what remains)."
    )
    columns = list(rows[0])
    print(
        write_results(
            "tflite_size", rows, columns, "TFLite file size by content", notes
        )
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
