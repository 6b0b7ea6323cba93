"""What makes pretrained VGG16 training fit 2 CPU cores: train-step cost.

One `IQAModel` (vgg16, `weights: hed`, P2..P5 mean+std head), timed side by
side in one process, interleaved round by round (this machine is shared, so
only the ratios hold):
  full       every weight trains (`stages.finetune.freeze_backbone: none`)
  top_block  layers up to P3 frozen, block 5 and the head train (`P3`)
  frozen     the backbone frozen, features computed every step (`all`)
  cached     the head alone on cached pooled features (`cache_views`)
each at `--crop` px and `--batch` images, in float32 and, with `--bf16`,
under `mixed_bfloat16` for the first three. Writes
`benchmarks/results/transfer_speed.{json,md}`: median seconds per step and
images per second, and the speed-up over `full` float32.

Example:
```
.venv/bin/python benchmarks/transfer_speed.py --crop 224 --batch 16 --rounds 4
```
"""

import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, time_interleaved, write_results  # noqa: E402

FREEZE = {"full": "none", "top_block": "P3", "frozen": "all"}


def image_step(policy, freeze, crop, batch):
    """A compiled MSE train step of a fresh model; returns step()."""
    import keras
    import tensorflow as tf

    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy
    from tfiqa.training.transfer import freeze_backbone

    keras.mixed_precision.set_global_policy(policy)
    model = IQAModel(
        backbone="vgg16",
        weights="hed",
        pooling=("avg", "std"),
        head_units=(256,),
        scoring_policy=ScoringPolicy(crop_size=crop),
    )
    freeze_backbone(model, freeze)
    optimizer = keras.optimizers.Adam(1e-4)
    variables = model.trainable_variables
    optimizer.build(variables)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (batch, crop, crop, 3)), tf.uint8)
    mos = tf.constant(rng.uniform(0, 1, batch), tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(images, training=True) - mos))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    keras.mixed_precision.set_global_policy("float32")
    return step


def cached_step(batch, width):
    import keras
    import tensorflow as tf

    from tfiqa.models.head import MultiLevelHead

    head = MultiLevelHead(pooling=("avg", "std"), head_units=(256,))
    dense = keras.Sequential(head.hidden + [head.score])
    rng = np.random.default_rng(0)
    pooled = tf.constant(rng.normal(size=(batch, width)), tf.float32)
    mos = tf.constant(rng.uniform(0, 1, batch), tf.float32)
    dense(pooled)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(dense.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            pred = tf.sigmoid(tf.reshape(dense(pooled, training=True), [-1]))
            loss = tf.reduce_mean(tf.square(pred - mos))
        grads = tape.gradient(loss, dense.trainable_variables)
        optimizer.apply(grads, dense.trainable_variables)
        return loss

    return step


def run(args):
    steps = {}
    policies = ["float32"] + (["mixed_bfloat16"] if args.bf16 else [])
    for policy in policies:
        for name, freeze in FREEZE.items():
            steps[(name, policy)] = image_step(policy, freeze, args.crop, args.batch)
    # VGG16 P2..P5 channels 256 + 512 + 512 + 512, mean and std each.
    steps[("cached", "float32")] = cached_step(args.batch, 2 * 1792)
    calls = {key: lambda step=step: step().numpy() for key, step in steps.items()}
    times = time_interleaved(calls, args.rounds, warmup=1)  # traces first
    base = statistics.median(times[("full", "float32")])
    rows = []
    for (name, policy), values in times.items():
        median = statistics.median(values)
        rows.append(
            {
                "variant": name,
                "policy": policy,
                "s_per_step": round(median, 4),
                "images_per_s": round(args.batch / median, 1),
                "speed_up_vs_full_fp32": round(base / median, 1),
            }
        )
    load = os.getloadavg()[0]
    notes = (
        f"Crop {args.crop} px, batch {args.batch}, median of {args.rounds} "
        f"interleaved steps after one warm-up. Load average at the end: "
        f"{load:.1f} on {os.cpu_count()} cores (shared machine: ratios hold, "
        "absolute times do not). `cached` is the head alone on pooled features "
        "(the backbone pass is paid once per image and view, when the cache is "
        "filled)."
    )
    print(
        write_results(
            "transfer_speed",
            rows,
            [
                "variant",
                "policy",
                "s_per_step",
                "images_per_s",
                "speed_up_vs_full_fp32",
            ],
            "Train-step cost of pretrained VGG16 options",
            notes,
        )
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
