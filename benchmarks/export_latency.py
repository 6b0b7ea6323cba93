"""Latency, throughput, size and FLOPs of every export, per backbone.

For each backbone an `IQAModel` (weights none: latency does not depend on the
values) is exported to a SavedModel and every TFLite variant at a fixed input
size. Each backend is then timed in a fresh process per thread count (TF's
thread pools are fixed at start-up): p50/p90 ms per image at batch 1, and
images/s at batch 32. FLOPs come from TF's profiler on the frozen graph and are
set against this CPU's rough fp32 peak (ANCHORS.md: about 173 GFLOP/s per core
for a 2048^3 matmul). For the int8 files the ops that are not int8 are listed:
they show where full-integer quantization falls back or adds work.

Usage (from the repository root, on a quiet machine):
    .venv/bin/python benchmarks/export_latency.py
    .venv/bin/python benchmarks/export_latency.py --backbones mobilenet_v3_small \
        --runs 50 --threads 1,2
"""

import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import child_result, run_child, script, time_interleaved, write_results  # noqa: E402

PEAK_GFLOPS_PER_CORE = 173.0
BACKENDS = ("keras", "saved_model", "none", "fp16", "dynamic", "int8", "int8_io")
LABELS = {
    "keras": "Keras (tf.function)",
    "saved_model": "SavedModel score_uint8",
    "none": "TFLite float32",
    "fp16": "TFLite fp16",
    "dynamic": "TFLite dynamic",
    "int8": "TFLite int8",
    "int8_io": "TFLite int8_io",
}


def make_calibration_images(folder, count=32, size=256, seed=0):
    """Smooth random photos-like images, enough to calibrate ranges."""
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        freq = rng.uniform(2, 12, size=3)
        phase = rng.uniform(0, 6.3, size=3)
        base = np.stack(
            [np.sin(freq[c] * (x + y * c) + phase[c]) for c in range(3)], axis=-1
        )
        image = 127 + 90 * base + rng.normal(0, 12, size=(size, size, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"cal_{i:03d}.png")
        )
    return folder


def dir_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(path)
        for f in files
    )


def count_flops(model, size):
    """FLOPs of one image (batch 1) from TF's profiler on the frozen graph."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    def score(images):
        return model(images, training=False)

    frozen = convert_variables_to_constants_v2(score.get_concrete_function())
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(frozen.graph.as_graph_def(), name="")
        info = tf.compat.v1.profiler.profile(graph, options=options)
    return info.total_float_ops


def xnnpack_partitions(path=None, content=None):
    """How many pieces the XNNPACK delegate cut the graph into (1: all of it)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())


def probe_int8_delegation():
    """Single-op int8 models: is each op kind run by XNNPACK?

    A probe is conv -> op -> conv; one delegate partition means XNNPACK ran
    the op, two mean the op fell back to the built-in int8 kernel between two
    delegated pieces.
    """
    import numpy as np
    import tensorflow as tf

    shape = (1, 28, 28, 16)
    kernel = tf.constant(
        np.random.default_rng(0).normal(size=(1, 1, 16, 16)), "float32"
    )

    def conv(x):
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    probes = {
        "HARD_SWISH": lambda x: conv(conv(x) * tf.nn.relu6(conv(x) + 3.0) / 6.0),
        "MEAN (global pool)": lambda x: conv(
            tf.reduce_mean(conv(x), axis=[1, 2], keepdims=True)
        ),
        "MUL (broadcast, SE)": lambda x: conv(
            conv(x) * tf.reduce_mean(conv(x), axis=[1, 2], keepdims=True)
        ),
        "CONCATENATION": lambda x: conv(tf.concat([conv(x), x], axis=-1)),
        "LOGISTIC": lambda x: conv(tf.sigmoid(conv(x))),
    }
    rng = np.random.default_rng(0)
    rows = {}
    for name, fn in probes.items():
        f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [f.get_concrete_function()], f
        )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-3, 3, shape).astype("float32")] for _ in range(8)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        rows[name] = xnnpack_partitions(content=converter.convert())
    return rows


def int8_op_report(path):
    """Op types of a TFLite file and the ops that compute in float."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    counts = collections.Counter()
    float_ops = collections.Counter()
    for op in interpreter._get_ops_details():  # op listing; no public API yet
        name = op["op_name"]
        counts[name] += 1
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        inputs = [tensors[i] for i in op["inputs"] if i in tensors]
        dtypes = {t["dtype"].__name__ for t in inputs}
        if "float32" in dtypes:
            float_ops[name] += 1
    return {
        "ops": dict(counts),
        "float_ops": dict(float_ops),
        "partitions": xnnpack_partitions(path),
    }


def _counts(counter):
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def export_backbone(backbone, size, out_dir, calibration_dir):
    from tfiqa.export import export_model
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    model = IQAModel(
        backbone=backbone,
        weights="none",
        scoring_policy=ScoringPolicy(crop_size=size),
    )
    keras_path = os.path.join(out_dir, "model.keras")
    os.makedirs(out_dir, exist_ok=True)
    model.save(keras_path)
    manifest = export_model(
        model,
        out_dir,
        quantize=["none", "fp16", "dynamic", "int8", "int8_io"],
        input_size=size,
        calibration_dir=calibration_dir,
        name=backbone,
    )
    paths = {"keras": keras_path, "saved_model": manifest["saved_model"]}
    paths.update(manifest["tflite"])
    flops = count_flops(model, size)
    ops = {
        q: int8_op_report(manifest["tflite"][q]) for q in ("none", "int8", "int8_io")
    }
    return paths, flops, ops


# --- timing worker (fresh process per thread count) ---


def _predict_fn(kind, path, threads):
    import tensorflow as tf

    if kind == "keras":
        from tfiqa.inference.backends.keras import load_keras_model
        from tfiqa.models.scoring import predict_fn

        score = predict_fn(load_keras_model(path))
        return lambda batch: score(tf.constant(batch)).numpy()
    if kind == "saved_model":
        from tfiqa.inference.backends.saved_model import saved_model_predict_fn

        return saved_model_predict_fn(path)[0]
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner(
        "score"
    )
    dtype = runner.get_input_details()["image"]["dtype"]
    # Inputs are prepared once outside the timed call, as an app would hold
    # its pixel buffer in the model's input type already.
    cache = {}

    def fn(batch):
        key = batch.shape
        if key not in cache:
            cache[key] = batch.astype(dtype)
        return runner(image=cache[key])["score"]

    return fn


def worker(args):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    paths = args.paths
    rng = np.random.default_rng(0)
    size = args.size
    one = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    many = rng.integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
    rows = []
    for kind in BACKENDS:
        fn = _predict_fn(kind, paths[kind], args.threads)
        t1 = 1000 * np.array(
            time_interleaved({0: lambda f=fn: f(one)}, args.runs, warmup=3)[0]
        )
        tb = time_interleaved({0: lambda f=fn: f(many)}, args.batch_runs, 1)[0]
        rows.append(
            {
                "backend": kind,
                "p50_ms": float(np.percentile(t1, 50)),
                "p90_ms": float(np.percentile(t1, 90)),
                "img_per_s_b32": float(args.batch / np.median(tb)),
            }
        )
        print(f"# {kind} threads={args.threads}: {rows[-1]}", file=sys.stderr)
    child_result(rows)


def run(args):
    calibration_dir = args.calibration_dir or make_calibration_images(
        os.path.join(args.out, "calibration")
    )
    load_before = os.getloadavg()
    rows, op_rows, checks = [], [], []
    for backbone in args.backbones.split(","):
        out_dir = os.path.join(args.out, backbone)
        print(f"Exporting {backbone} ...", file=sys.stderr)
        paths, flops, ops = export_backbone(
            backbone, args.size, out_dir, calibration_dir
        )
        gflops = flops / 1e9
        sizes = {k: dir_bytes(p) / 1e6 for k, p in paths.items()}
        by_threads = {}
        for threads in [int(t) for t in args.threads.split(",")]:
            print(f"Timing {backbone}, {threads} thread(s) ...", file=sys.stderr)
            results = run_child(__file__, args, threads=threads, paths=paths)
            if results is None:
                raise SystemExit(f"timing worker failed (threads={threads})")
            by_threads[threads] = {r["backend"]: r for r in results}
            for r in results:
                peak = PEAK_GFLOPS_PER_CORE * threads
                achieved = gflops / (r["p50_ms"] / 1000)
                rows.append(
                    {
                        "model": backbone,
                        "export": LABELS[r["backend"]],
                        "threads": threads,
                        "p50 ms (b1)": round(r["p50_ms"], 2),
                        "p90 ms (b1)": round(r["p90_ms"], 2),
                        "img/s (b32)": round(r["img_per_s_b32"], 1),
                        "size MB": round(sizes[r["backend"]], 2),
                        "GFLOP/img": round(gflops, 3),
                        "GFLOP/s (b1)": round(achieved, 1),
                        "% fp32 peak": round(100 * achieved / peak, 1),
                    }
                )
        for q, report in ops.items():
            op_rows.append(
                {
                    "model": backbone,
                    "file": q,
                    "ops": _counts(report["ops"]),
                    "float ops": _counts(report["float_ops"]) or "none",
                    "XNNPACK partitions": report["partitions"],
                }
            )
        size_ratio = sizes["int8"] / sizes["none"]
        for threads, results in by_threads.items():
            ratio = results["int8"]["p50_ms"] / results["none"]["p50_ms"]
            checks.append(
                f"{backbone}, {threads} thread(s): int8/float32 TFLite latency "
                f"{ratio:.2f}x (target <= 0.6x: {'met' if ratio <= 0.6 else 'missed'})"
            )
        checks.append(
            f"{backbone}: int8/float32 file size {size_ratio:.2f} "
            f"(target <= 0.30: {'met' if size_ratio <= 0.30 else 'missed'})"
        )
    load_after = os.getloadavg()
    notes = (
        f"Input {args.size}x{args.size}, IQAModel with the default head (P2-P5 avg "
        "pooling, 512 units), weights none. Batch 1: p50/p90 of "
        f"{args.runs} calls after 3 warm-up calls; batch {args.batch}: median of "
        f"{args.batch_runs} calls. TFLite through ai-edge-litert (XNNPACK), "
        "inputs already in the model's input type. % fp32 peak = GFLOP/img / "
        f"p50 / ({PEAK_GFLOPS_PER_CORE:g} GFLOP/s x threads); for int8 and fp16 "
        "files it is a float-equivalent figure. No GPU was lent to this "
        "session: no GPU rows. Load average (1 min) before/after: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores "
        "shared with other work, so single figures can be noisy.\n\n"
        + "\n".join(f"- {c}" for c in checks)
    )
    text = write_results(
        "export_latency",
        rows,
        list(rows[0]),
        "Export latency, throughput and size (CPU)",
        notes=notes,
    )
    print(text)
    probe = probe_int8_delegation()
    text = write_results(
        "export_int8_ops",
        op_rows,
        ["model", "file", "ops", "float ops", "XNNPACK partitions"],
        "Ops in the float32 and full-integer TFLite files",
        notes=(
            "'float ops' are ops with a float32 input (QUANTIZE/DEQUANTIZE at "
            "the boundaries excluded): where the converter kept float kernels. "
            "'XNNPACK partitions' is how many pieces the default XNNPACK "
            "delegate took (1 = the whole graph); every extra piece is an op "
            "left to TFLite's built-in int8 kernels. Single-op int8 probes "
            "(conv -> op -> conv; 2 partitions = the op is not delegated): "
            + ", ".join(f"{k} {v}" for k, v in probe.items())
            + "."
        ),
    )
    print(text)


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__, worker))
