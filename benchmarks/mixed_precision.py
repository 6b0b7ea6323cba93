"""Train-step speed and sanity of `mixed_bfloat16` vs float32 on this CPU.

Per backbone, two `IQAModel`s with the same initial weights are built, one
under the float32 policy and one under `mixed_bfloat16`
(`runtime.mixed_precision: mixed_bfloat16`), and trained with tfiqa's
`DistributedLoop` (MSE, Adam) on the same batches, one step of each in turn
(interleaved, so machine load hits both alike). Reported: median step time
and speed-up; the rank agreement (SRCC) of the two models' scores before
training (bfloat16 forward error); and the loss after the last step of
each (training stays healthy). The CPU must have bf16 instructions
(AVX512-BF16 or AMX) for bfloat16 to be fast; without them it is emulated.

Usage:
    .venv/bin/python benchmarks/mixed_precision.py --crop 128 --batch 16
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


def build_loops(backbone, crop, data):
    """{policy: (model, DistributedLoop)} with equal initial weights."""
    import keras
    import tensorflow as tf

    from tfiqa.config import ModelConfig
    from tfiqa.models import build_model
    from tfiqa.training.loop import DistributedLoop, make_optimizer
    from tfiqa.training.losses import mse_terms
    from tfiqa.training.strategy import set_mixed_precision

    loops, weights = {}, None
    previous = keras.mixed_precision.global_policy().name
    try:
        for policy in POLICIES:
            set_mixed_precision(policy)
            keras.utils.set_random_seed(0)
            model = build_model(
                ModelConfig(backbone=backbone, weights="none"), crop_size=crop
            )
            if weights is None:
                weights = model.get_weights()
            model.set_weights(weights)

            def compute_terms(batch, training, model=model):
                images, mos = batch
                return {"loss": mse_terms(model(images, training=training), mos)}

            loop = DistributedLoop(
                tf.distribute.get_strategy(),
                model,
                compute_terms,
                [
                    (
                        make_optimizer(1e-4, mixed_precision=policy),
                        model.trainable_variables,
                    )
                ],
                stage=policy,
                verbose=-1,
            )
            loop._train_fn = loop._make_train_fn()
            loop._iterator = iter(data)
            loops[policy] = (model, loop)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return loops


def measure(backbone, args):
    import numpy as np
    import tensorflow as tf

    from tfiqa.metrics import srcc

    rng = np.random.default_rng(0)
    c, b = args.crop, args.batch
    images = rng.integers(0, 256, (4 * b, c, c, 3)).astype("uint8")
    # A learnable target: the mean brightness of the image.
    mos = (images.reshape(4 * b, -1).mean(axis=1) / 255.0).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, mos)).batch(b).repeat()
    loops = build_loops(backbone, c, data)
    probe = tf.constant(images)
    before = {
        p: np.asarray(model(probe, training=False), "float32")
        for p, (model, _) in loops.items()
    }
    times, losses = {p: [] for p in POLICIES}, {}
    for step in range(args.warmup + args.steps):
        for policy, (_, loop) in loops.items():
            start = time.perf_counter()
            terms = loop._train_fn(loop._iterator)
            loss_sum, count = terms["loss"]
            losses[policy] = float(loss_sum) / float(count)
            if step >= args.warmup:
                times[policy].append(time.perf_counter() - start)
    ms = {p: 1000 * statistics.median(t) for p, t in times.items()}
    return {
        "backbone": backbone,
        "float32 step ms": round(ms["float32"], 1),
        "bf16 step ms": round(ms["mixed_bfloat16"], 1),
        "bf16 speed-up": round(ms["float32"] / ms["mixed_bfloat16"], 2),
        # Random-init scores sit in a narrow band: their order is the test.
        "SRCC bf16 vs float32 at init": round(
            srcc(before["mixed_bfloat16"], before["float32"]), 4
        ),
        "float32 final loss": float(f"{losses['float32']:.4g}"),
        "bf16 final loss": float(f"{losses['mixed_bfloat16']:.4g}"),
    }


def run(args):
    rows = []
    for backbone in args.backbones.split(","):
        print(f"Timing {backbone} ...", file=sys.stderr)
        rows.append(measure(backbone, args))
        print(rows[-1], file=sys.stderr)
    notes = (
        f"Crop {args.crop}, batch {args.batch}, random initial weights (the same "
        f"for both), {args.steps} timed steps after {args.warmup} warm-up steps, "
        "interleaved; median step time. Target: mean image brightness. CPU bf16 "
        f"flags: {', '.join(cpu_flags()) or 'none'}. No GPU was lent to this "
        "session: mixed_float16 on a GPU is not measured here."
    )
    text = write_results(
        "mixed_precision", rows, list(rows[0]), "mixed_bfloat16 vs float32", notes
    )
    print(text)


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
