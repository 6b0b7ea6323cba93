"""Mobile backbones side by side: LiteRT float32 vs int8 latency, size, SRCC.

For each backbone a tfiqa `IQAModel` (default multi-level head, weights none:
latency does not depend on the values) and the bare `keras.applications`
network + global average pooling + Dense(1) are converted to float32 and
full-integer int8 TFLite files. All files are loaded in one process and timed
interleaved (one call of each file per round, 1 thread, batch 1), so that
machine load hits every row alike; the table gives the median per file, the
int8/float ratio and the XNNPACK partition count of the int8 file.

With `--accuracy results/mobile_accuracy.json` (written by
`export_accuracy.py --name mobile_accuracy --variants none,int8`) the float
and int8 SRCC of trained models are added per backbone, and each backbone is
checked against the mobile target: int8 <= 0.6x float latency and int8 SRCC
within 0.01 of float.

Usage (from the repository root, on a quiet machine):
    .venv/bin/python benchmarks/mobile.py
    .venv/bin/python benchmarks/mobile.py --backbones mobilenet_v3_small --runs 50
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, time_interleaved, write_results  # noqa: E402
from export_latency import make_calibration_images, xnnpack_partitions  # noqa: E402

MAX_INT8_RATIO = 0.6
MAX_SRCC_DROP = 0.01


def bare_network(backbone, size):
    """The plain network a user would start from: backbone + GAP + Dense(1)."""
    import keras

    from tfiqa.models.backbones import resnet18_network

    if backbone == "resnet18":
        network = resnet18_network()
    else:
        cls = (
            keras.applications.MobileNetV3Small
            if "small" in backbone
            else keras.applications.MobileNetV3Large
        )
        network = cls(
            include_top=False,
            weights=None,
            input_shape=(size, size, 3),
            minimalistic=backbone.endswith("minimalistic"),
        )
    images = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(network(images))
    return keras.Model(images, keras.layers.Dense(1)(x))


def convert_bare(model, size, int8, seed=0):
    """float32 or full-integer int8 (float I/O) TFLite bytes of `model`."""
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(seed)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(0, 255, (1, size, size, 3)).astype("float32")]
            for _ in range(16)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def build_files(backbone, size, out_dir, calibration_dir):
    """{(kind, quantization): path} for the tfiqa model and the bare network."""
    from tfiqa.export import export_model
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    model = IQAModel(
        backbone=backbone,
        weights="none",
        scoring_policy=ScoringPolicy(crop_size=size),
    )
    manifest = export_model(
        model,
        os.path.join(out_dir, "tfiqa"),
        formats=["tflite"],
        quantize=["none", "int8"],
        input_size=size,
        calibration_dir=calibration_dir,
        calibration_count=16,
        name=backbone,
    )
    files = {("tfiqa", q): manifest["tflite"][q] for q in ("none", "int8")}
    bare = bare_network(backbone, size)
    for q in ("none", "int8"):
        path = os.path.join(out_dir, f"bare_{q}.tflite")
        with open(path, "wb") as f:
            f.write(convert_bare(bare, size, int8=q == "int8"))
        files[("bare", q)] = path
    return files


def runner_fn(path, size):
    """A batch-1 LiteRT call with its input prepared once (1 thread)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3))
    interpreter.set_tensor(detail["index"], pixels.astype(detail["dtype"]))
    return interpreter.invoke


def load_accuracy(path):
    """{backbone: (float SRCC, int8 SRCC)} from an export_accuracy result."""
    if not path:
        return {}
    with open(path) as f:
        rows = json.load(f)["rows"]
    pairs = {}
    for row in rows:
        if not row["split"].startswith("test"):
            continue
        key = {"TFLite none": 0, "TFLite int8": 1}.get(row["model"])
        if key is not None:
            pairs.setdefault(row["backbone"], [None, None])[key] = row["SRCC vs MOS"]
    return {b: tuple(p) for b, p in pairs.items() if None not in p}


def table_rows(backbones, files, times, accuracy):
    import numpy as np

    rows, checks = [], []
    for backbone in backbones:
        for kind in ("bare", "tfiqa"):
            ms = {
                q: 1000 * float(np.median(times[(backbone, kind, q)]))
                for q in ("none", "int8")
            }
            paths = files[backbone]
            ratio = ms["int8"] / ms["none"]
            row = {
                "backbone": backbone,
                "model": "bare + GAP + Dense" if kind == "bare" else "tfiqa IQAModel",
                "float32 ms": round(ms["none"], 2),
                "int8 ms": round(ms["int8"], 2),
                "int8 / float": round(ratio, 2),
                "float32 MB": round(os.path.getsize(paths[(kind, "none")]) / 1e6, 2),
                "int8 MB": round(os.path.getsize(paths[(kind, "int8")]) / 1e6, 2),
                "int8 XNNPACK partitions": xnnpack_partitions(paths[(kind, "int8")]),
            }
            if kind == "tfiqa" and backbone in accuracy:
                float_srcc, int8_srcc = accuracy[backbone]
                drop = float_srcc - int8_srcc
                row.update(
                    {
                        "SRCC float": float_srcc,
                        "SRCC int8": int8_srcc,
                        "SRCC drop": round(drop, 4),
                    }
                )
                met = ratio <= MAX_INT8_RATIO and drop <= MAX_SRCC_DROP
                checks.append(
                    f"{backbone}: int8 {ratio:.2f}x float, SRCC drop {drop:+.4f} "
                    f"(target <= {MAX_INT8_RATIO}x and <= {MAX_SRCC_DROP}: "
                    f"{'met' if met else 'missed'})"
                )
            rows.append(row)
    return rows, checks


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    backbones = args.backbones.split(",")
    calibration_dir = make_calibration_images(os.path.join(args.out, "calibration"))
    files, fns = {}, {}
    for backbone in backbones:
        print(f"Converting {backbone} ...", file=sys.stderr)
        files[backbone] = build_files(
            backbone, args.size, os.path.join(args.out, backbone), calibration_dir
        )
        for (kind, q), path in files[backbone].items():
            fns[(backbone, kind, q)] = runner_fn(path, args.size)
    load_before = os.getloadavg()
    print(f"Timing {len(fns)} files interleaved ...", file=sys.stderr)
    times = time_interleaved(fns, args.runs, warmup=3)
    load_after = os.getloadavg()
    rows, checks = table_rows(backbones, files, times, load_accuracy(args.accuracy))
    notes = (
        f"LiteRT (ai-edge-litert, default XNNPACK delegate), 1 thread, batch 1, "
        f"{args.size}x{args.size} input, median of {args.runs} interleaved calls "
        "per file after 3 warm-up calls, all files in one process. int8 = full "
        "integer (TFLITE_BUILTINS_INT8, float I/O for the bare network, the "
        "tfiqa export's `int8` variant for IQAModel). Weights random for "
        "latency; SRCC columns come from trained models (see benchmarks/"
        "README.md). No GPU was lent to this session: phone GPU/NPU delegates "
        "are not measured. Load average (1 min) before/after timing: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores."
        + ("\n\n" + "\n".join(f"- {c}" for c in checks) if checks else "")
    )
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print(write_results("mobile", rows, columns, "Mobile backbones", notes=notes))


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
