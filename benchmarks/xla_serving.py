"""Batch-1 scoring latency of Keras and SavedModel, with and without XLA.

Per backbone, an `IQAModel` (random weights, 224 px) is scored through:
- "keras": `tf.function` around the model (what `tfiqa predict` runs);
- "keras_xla": the same with `jit_compile=True`;
- "saved_model" / "saved_model_xla": a SavedModel whose `score_uint8`
  signature is that function without / with `jit_compile=True`, reloaded
  (`tf.saved_model.load`) in this process.
All variants are timed interleaved (one call of each per round) in one
process with one intra-op thread; the table has the medians and the XLA
speed-up. XLA fuses the many small ops of MobileNet-style networks, which
are otherwise dispatched one by one.

Usage:
    .venv/bin/python benchmarks/xla_serving.py --runs 30
"""

import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, time_interleaved, write_results  # noqa: E402


def score_fns(backbone, size, folder):
    """{variant: callable(uint8 batch)} for one backbone."""
    import tensorflow as tf

    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    model = IQAModel(
        backbone=backbone,
        weights="none",
        scoring_policy=ScoringPolicy(crop_size=size),
    )
    spec = [tf.TensorSpec([1, size, size, 3], tf.uint8, name="images")]
    fns = {}
    for jit in (False, True):

        @tf.function(input_signature=spec, jit_compile=jit)
        def score(images):
            return {"score": model(tf.cast(images, tf.float32), training=False)}

        suffix = "_xla" if jit else ""
        fns[f"keras{suffix}"] = score
        path = os.path.join(folder, f"{backbone}{suffix}")
        module = tf.Module()
        module.model = model
        tf.saved_model.save(module, path, signatures={"score_uint8": score})
        fns[f"saved_model{suffix}"] = tf.saved_model.load(path).signatures[
            "score_uint8"
        ]
    return fns


def run(args):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    image = tf.constant(
        np.random.default_rng(0).integers(0, 256, (1, args.size, args.size, 3)),
        tf.uint8,
    )
    calls, outputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for backbone in args.backbones.split(","):
            print(f"Building {backbone} ...", file=sys.stderr)
            for variant, fn in score_fns(backbone, args.size, folder).items():
                calls[(backbone, variant)] = fn
                for _ in range(3):  # warm-up (XLA compiles on the first call)
                    outputs[(backbone, variant)] = float(fn(images=image)["score"][0])
        times = time_interleaved(
            {
                k: lambda fn=fn: fn(images=image)["score"].numpy()
                for k, fn in calls.items()
            },
            args.runs,
        )
    rows = []
    for backbone in args.backbones.split(","):
        ms = {
            v: 1000 * statistics.median(times[(backbone, v)])
            for v in ("keras", "keras_xla", "saved_model", "saved_model_xla")
        }
        diff = abs(outputs[(backbone, "keras_xla")] - outputs[(backbone, "keras")])
        rows.append(
            {
                "backbone": backbone,
                "keras ms": round(ms["keras"], 2),
                "keras XLA ms": round(ms["keras_xla"], 2),
                "SavedModel ms": round(ms["saved_model"], 2),
                "SavedModel XLA ms": round(ms["saved_model_xla"], 2),
                "XLA speed-up (SavedModel)": round(
                    ms["saved_model"] / ms["saved_model_xla"], 2
                ),
                "|score diff| XLA": float(f"{diff:.2g}"),
            }
        )
    load = os.getloadavg()[0]
    notes = (
        f"Batch 1, {args.size}x{args.size} uint8, random weights, one intra-op "
        f"thread, median of {args.runs} interleaved calls after 3 warm-up calls "
        f"(XLA compiles on the first). Load average (1 min) at the end: {load:.2f} "
        f"on {os.cpu_count()} cores. No GPU was lent to this session (CPU only)."
    )
    text = write_results(
        "xla_serving", rows, list(rows[0]), "XLA serving latency", notes=notes
    )
    print(text)


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
