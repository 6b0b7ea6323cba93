"""Cost of one meta-step: second-order vs first-order MAML vs a plain step.

Per backbone (an `IQAModel` with random weights):
- Time: one process compiles every variant (`tf.function`), warms each up,
  then runs `--rounds` rounds of one step of each variant in turn and
  reports the median step time per variant. Interleaving makes the variants
  share whatever load the machine has, so their ratios stay meaningful on a
  busy CPU.
- Memory: a fresh process per variant runs `--memory-steps` steps; its peak
  resident set size (CPU) or TensorFlow's peak GPU allocation is reported.
"plain" is an ordinary supervised MSE step on as many images as one
meta-step touches (T * (S + Q)); "first"/"second" are first-order and exact
second-order MAML, with the inner loop adapting all weights or the head only.

Example:
```
.venv/bin/python benchmarks/meta_step.py --backbones mobilenet_v3_small,resnet18 \
    --crop 64 --support 8 --query 4 --tasks 2 --rounds 8
```
"""

import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    child_result,
    run_child,
    script,
    time_interleaved,
    write_results,
)

VARIANTS = (
    ("plain", "-"),
    ("first", "all"),
    ("second", "all"),
    ("first", "head"),
    ("second", "head"),
)


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def make_steps(args, variants, xla=False):
    """Builds the model and a compiled step function per variant; with
    `xla`, also an XLA-compiled (`jit_compile=True`) one, keyed
    (order, "<adapt> xla")."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfiqa.config import ModelConfig
    from tfiqa.models import build_model
    from tfiqa.training.meta_trainer import MetaTrainer

    keras.utils.set_random_seed(0)
    model = build_model(
        ModelConfig(backbone=args.backbone, weights="none"), crop_size=args.crop
    )
    c, t, s, q = args.crop, args.tasks, args.support, args.query
    rng = np.random.default_rng(0)
    batch = {
        "support_images": tf.constant(rng.integers(0, 256, (t, s, c, c, 3), np.uint8)),
        "support_labels": tf.constant(rng.uniform(size=(t, s)), tf.float32),
        "query_images": tf.constant(rng.integers(0, 256, (t, q, c, c, 3), np.uint8)),
        "query_labels": tf.constant(rng.uniform(size=(t, q)), tf.float32),
    }
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
    steps = {}
    jits = (False, True) if xla else (False,)
    for (order, adapt), jit in [(v, j) for v in variants for j in jits]:
        optimizer = keras.optimizers.Adam(1e-4)
        if order == "plain":

            @tf.function(jit_compile=jit)
            def step(optimizer=optimizer):
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
                inner_learning_rate=0.1 if adapt == "head" else 0.01,
                order=order,
                adapt=adapt,
            )

            @tf.function(jit_compile=jit)
            def step(trainer=trainer, optimizer=optimizer):
                groups = [(optimizer, trainer.meta_variables)]
                return trainer.replica_step(batch, groups)["loss"][0]

        steps[(order, f"{adapt} xla" if jit else adapt)] = step
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return steps, params


def selected_variants(args):
    if not args.variants:
        return VARIANTS
    return [tuple(v.split(":")) for v in args.variants.split(",")]


def time_child(args):
    steps, params = make_steps(args, selected_variants(args), xla=args.xla)
    compile_s = {}
    calls = {key: lambda step=step: float(step()) for key, step in steps.items()}
    times = time_interleaved(calls, args.rounds, args.warmup, compile_s)
    rows = [
        {
            "backbone": args.backbone,
            "mode": order,
            "adapt": adapt,
            "step_s": statistics.median(times[(order, adapt)]),
            "step_s_min": min(times[(order, adapt)]),
            "first_steps_s": compile_s[(order, adapt)],
            "params": params,
        }
        for order, adapt in steps
    ]
    child_result(rows)


def memory_child(args):
    import tensorflow as tf

    variant = (args.mode, args.adapt)
    baseline = None
    steps, _ = make_steps(args, [variant])
    step = steps[variant]
    baseline = _rss_mb()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    for _ in range(args.memory_steps):
        float(step())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"peak_rss_mb": peak, "step_rss_mb": peak - baseline}
    if gpu:
        out["gpu_peak_mb"] = (
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        )
    child_result(out)


def child(args):
    (time_child if args.child == "time" else memory_child)(args)


def run(args):
    rows = []
    for backbone in args.backbones.split(","):
        timed = run_child(__file__, args, child="time", backbone=backbone)
        if timed is None:
            rows.append({"backbone": backbone, "mode": "error"})
            continue
        plain = next(r for r in timed if r["mode"] == "plain")["step_s"]
        for row in timed:
            row["vs_plain"] = row["step_s"] / plain
            if not args.no_memory and not row["adapt"].endswith("xla"):
                memory = run_child(
                    __file__,
                    args,
                    child="memory",
                    backbone=backbone,
                    mode=row["mode"],
                    adapt=row["adapt"],
                )
                row.update(memory or {})
            print(row, flush=True)
            rows.append(row)
    columns = ["backbone", "mode", "adapt", "step_s", "vs_plain", "step_s_min"]
    columns += ["first_steps_s", "step_rss_mb", "peak_rss_mb"]
    if any("gpu_peak_mb" in r for r in rows):
        columns.append("gpu_peak_mb")
    notes = (
        f"crop {args.crop}x{args.crop}, T={args.tasks} tasks x (S={args.support} "
        f"support + Q={args.query} query), inner_steps={args.inner_steps}; "
        "adapt = weights updated in the inner loop (all, or the head only); "
        "plain = one MSE step on T*(S+Q) images. step_s: median over "
        f"{args.rounds} interleaved rounds (one step of every variant per round, "
        f"same process) after {args.warmup} warm-up steps; first_steps_s: the "
        "warm-up (tracing and graph optimisation). Memory: a fresh process per "
        "variant; peak_rss_mb its peak resident memory, step_rss_mb the growth "
        "from the built model to that peak. 'xla': the same step compiled "
        "with `jit_compile=True`; vs_plain is against the plain step without "
        "XLA."
    )
    print(
        write_results(
            args.name, rows, columns, "One meta-step: cost per backbone", notes
        )
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__, child))
