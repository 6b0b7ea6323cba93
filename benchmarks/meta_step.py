"""Cost of one meta-step: second-order vs first-order MAML vs a plain step.

For each backbone and mode, a fresh child process builds an `IQAModel`
(random weights), compiles the step with `tf.function`, runs `--warmup`
steps, then times `--steps` steps. "plain" is an ordinary supervised MSE
step on as many images as one meta-step touches (T * (S + Q)). Memory is the
child's peak resident set size (CPU) or TensorFlow's peak GPU allocation.

Example:
```
.venv/bin/python benchmarks/meta_step.py --backbones mobilenet_v3_small,resnet18 \
    --crop 64 --support 8 --query 4 --tasks 2 --steps 3
```
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODES = ("plain", "first", "second")


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from tfiqa.config import ModelConfig
    from tfiqa.models import build_model
    from tfiqa.training.meta_trainer import MetaTrainer

    keras.utils.set_random_seed(0)
    config = ModelConfig(backbone=args.backbone, weights="none")
    model = build_model(config, input_crop_size=args.crop)
    c, t, s, q = args.crop, args.tasks, args.support, args.query
    rng = np.random.default_rng(0)
    batch = {
        "support_images": tf.constant(rng.integers(0, 256, (t, s, c, c, 3), np.uint8)),
        "support_labels": tf.constant(rng.uniform(size=(t, s)), tf.float32),
        "query_images": tf.constant(rng.integers(0, 256, (t, q, c, c, 3), np.uint8)),
        "query_labels": tf.constant(rng.uniform(size=(t, q)), tf.float32),
    }
    optimizer = keras.optimizers.Adam(1e-4)
    if args.mode == "plain":
        images = tf.concat(
            [
                tf.reshape(batch["support_images"], (-1, c, c, 3)),
                tf.reshape(batch["query_images"], (-1, c, c, 3)),
            ],
            0,
        )
        labels = tf.concat(
            [
                tf.reshape(batch["support_labels"], [-1]),
                tf.reshape(batch["query_labels"], [-1]),
            ],
            0,
        )

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                pred = model(images, training=True)
                loss = tf.reduce_mean(tf.square(tf.reshape(pred, [-1]) - labels))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss
    else:
        trainer = MetaTrainer(
            model,
            inner_steps=args.inner_steps,
            inner_learning_rate=1e-3,
            order=args.mode,
            adapt=args.adapt,
        )

        @tf.function
        def step():
            terms = trainer.replica_step(batch, [(optimizer, trainer.meta_variables)])
            return terms["loss"][0]

    gpu = bool(tf.config.list_physical_devices("GPU"))
    baseline = _rss_mb()
    start = time.perf_counter()
    for _ in range(args.warmup):
        float(step())
    compile_s = time.perf_counter() - start
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = float(step())
    step_s = (time.perf_counter() - start) / args.steps
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {
        "backbone": args.backbone,
        "mode": args.mode,
        "step_s": step_s,
        "first_steps_s": compile_s,
        "loss": loss,
        "params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "peak_rss_mb": peak_rss,
        "rss_before_mb": baseline,
        "step_rss_mb": peak_rss - baseline,
    }
    if gpu:
        out["gpu_peak_mb"] = (
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        )
    print("RESULT " + json.dumps(out), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="mobilenet_v3_small,resnet18")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--support", type=int, default=8)
    parser.add_argument("--query", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument(
        "--adapt", default="all,head", help="Comma list: inner loop adapts all/head."
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--name", default="meta_step")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    rows = []
    jobs = []
    for backbone in args.backbones.split(","):
        for mode in args.modes.split(","):
            adapts = ["-"] if mode == "plain" else args.adapt.split(",")
            jobs += [(backbone, mode, adapt) for adapt in adapts]
    for backbone, mode, adapt in jobs:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            f"--backbone={backbone}",
            f"--mode={mode}",
            f"--crop={args.crop}",
            f"--support={args.support}",
            f"--query={args.query}",
            f"--tasks={args.tasks}",
            f"--inner-steps={args.inner_steps}",
            f"--adapt={adapt if adapt != '-' else 'all'}",
            f"--steps={args.steps}",
            f"--warmup={args.warmup}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"backbone": backbone, "mode": mode, "error": "failed"})
            continue
        row = json.loads(line[0][len("RESULT ") :])
        row["adapt"] = adapt
        print(row, flush=True)
        rows.append(row)
    for row in rows:
        plain = next(
            (
                r
                for r in rows
                if r["backbone"] == row["backbone"] and r["mode"] == "plain"
            ),
            None,
        )
        if plain and "step_s" in row and "step_s" in plain:
            row["vs_plain"] = row["step_s"] / plain["step_s"]
    from benchmarks.common import write_results

    columns = ["backbone", "mode", "adapt", "step_s", "vs_plain", "first_steps_s"]
    columns += (
        ["step_rss_mb", "peak_rss_mb", "gpu_peak_mb"]
        if "gpu_peak_mb" in rows[0]
        else ["step_rss_mb", "peak_rss_mb"]
    )
    notes = (
        f"crop {args.crop}x{args.crop}, T={args.tasks} tasks x (S={args.support} "
        f"support + Q={args.query} query), inner_steps={args.inner_steps}, "
        "adapt = weights updated in the inner loop (all, or the head only); "
        "plain = one MSE step on T*(S+Q) images; "
        f"mean of {args.steps} steps after {args.warmup} warm-up step(s) "
        "(first_steps_s includes tracing). Each row is a fresh process; "
        "peak_rss_mb is that process's peak resident memory, step_rss_mb the "
        "growth of resident memory from the built model to that peak (tracing, "
        "graph optimisation and the step's tensors)."
    )
    print(
        write_results(
            args.name, rows, columns, "One meta-step: cost per backbone", notes
        )
    )


if __name__ == "__main__":
    main()
