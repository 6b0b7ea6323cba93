"""Distortion throughput and the ranking trainer's appetite, in crops per second.

1. Per type: random 224x224 crops of in-memory pristine images, one level
   per crop (cycling 1..5), mapped in parallel (AUTOTUNE) and batched by 16,
   so the figure is the distortion's own cost.
2. The default ranking pipeline (`ranking_dataset`: the fast KADID types,
   groups of pristine + 5 levels, the quickstart's `stages.rank.groups_per_batch`
   groups per batch, images from disk) at the quickstart's crop size and at
   224: what the rank stage's trainer waits on.
3. The rank stage's consumption: the `DistributedLoop` train step of
   `RankingTrainer` (tfiqa.training) on one pre-materialised ranking batch
   repeated, so no data work is timed, for the quickstart model at its crop
   and for mobilenet_v3_small and resnet18 at 224. `ratio` = pipeline
   crops/s / trainer crops/s at the same crop (>= 2: the trainer never waits).
4. The quickstart model trained on the live pipeline, to check (3).

Usage:
    .venv/bin/python benchmarks/distortions.py --data-dir ../shared/data
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402


def _pristine_paths(data_dir, tmp):
    from tfiqa.data.pristine import generate_pristine, list_images

    folder = os.path.join(data_dir, "pristine", "Kodak24") if data_dir else ""
    if folder and os.path.isdir(folder):
        return list_images(folder), "Kodak24"
    generate_pristine(tmp, count=8, size=384, seed=0)
    return list_images(tmp), "generated 384x384"


def _rate(ds, crops_per_batch, seconds, warmup=2):
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        count += crops_per_batch
    return count / (time.perf_counter() - start)


def type_dataset(images, name, crop, batch=16):
    import tensorflow as tf

    from tfiqa.data.ranking import distort_one, random_crop
    from tfiqa.distortions.ops import to_uint8
    from tfiqa.distortions.registry import sub_seed

    stack = tf.constant(images)  # (n, H, W, 3) uint8

    def make(index):
        key = tf.cast(tf.stack([tf.constant(0, tf.int64), index]), tf.int32)
        image = stack[tf.cast(index % len(images), tf.int32)]
        level = tf.cast(index % 5, tf.int32) + 1
        patch = random_crop(image, crop, key)
        zero = tf.constant(0, tf.int32)
        return to_uint8(distort_one(patch, zero, level, sub_seed(key, 1), [name]))

    ds = tf.data.Dataset.counter().map(make, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def _uptime_load():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def train_rate(model_config, dataset, per_batch, steps, crop):
    """Crops/s of the rank stage's train step (`DistributedLoop` running
    `RankingTrainer.compute_terms`) fed by `dataset`."""
    import tensorflow as tf

    from tfiqa.models import build_model
    from tfiqa.training.loop import DistributedLoop, make_optimizer
    from tfiqa.training.ranking_trainer import RankingTrainer

    model = build_model(model_config, crop_size=crop)
    trainer = RankingTrainer(model, margin=0.05)
    optimizer = make_optimizer(1e-4, name="rank_optimizer")
    loop = DistributedLoop(
        tf.distribute.get_strategy(),
        model,
        trainer.compute_terms,
        [(optimizer, model.trainable_variables)],
        stage="rank",
        verbose=-1,
    )
    # Epoch 1 traces and warms up; epoch 2 is timed.
    result = loop.fit(lambda epoch: dataset, epochs=2, steps_per_epoch=steps)
    return steps * per_batch / result["history"][1]["time"]


def run(args):
    import copy

    import numpy as np
    import tensorflow as tf

    from tfiqa.config import builtin_config_path, load_config
    from tfiqa.data.image_io import load_image
    from tfiqa.data.ranking import ranking_dataset
    from tfiqa.distortions import DISTORTIONS, distortion_set, fast_types

    quick = load_config(builtin_config_path("quickstart"))
    quick_crop = quick.data.crop_size
    groups = quick.stages.rank.groups_per_batch
    per_batch = groups * 6
    n_fast = len(fast_types("kadid"))
    loads = [_uptime_load()]
    rows = []

    def add(row, crop, rate, note="", ratio=""):
        rows.append(
            {
                "row": row,
                "crop": crop,
                "crops_per_s": rate,
                "ratio": ratio,
                "note": note,
            }
        )
        print(f"{row:45s} {crop:4d} {rate:8.1f} crops/s {ratio}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        paths, source = _pristine_paths(args.data_dir, tmp)
        if not args.skip_types:
            # Same-size images for an in-memory stack: centre crops of 384.
            images = []
            for p in paths[:8]:
                im = load_image(p)
                h, w = im.shape[:2]
                s = min(h, w, 384)
                images.append(
                    im[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
                )
            side = min(im.shape[0] for im in images)
            images = np.stack([im[:side, :side] for im in images])
            names = [t for t in args.types.split(",") if t] or distortion_set("kadid")
            for name in names:
                rate = _rate(type_dataset(images, name, args.crop), 16, args.seconds)
                python_only = DISTORTIONS.get(name).python_only
                add(name, args.crop, rate, "python_only" if python_only else "")
            loads.append(_uptime_load())

        pipeline = {}
        for crop in (quick_crop, 224):
            ds = ranking_dataset(paths, None, crop, groups_per_batch=groups, seed=0)
            pipeline[crop] = _rate(ds, per_batch, max(args.seconds * 3, 10.0))
            add(
                f"ranking_dataset ({n_fast} fast types)",
                crop,
                pipeline[crop],
                f"{groups} groups x 6, {source}",
            )
        loads.append(_uptime_load())

        mnv3 = copy.deepcopy(quick.model)
        resnet = copy.deepcopy(quick.model)
        resnet.backbone = "resnet18"
        resnet.head_units = [512]
        models = [
            ("quickstart model (mobilenet_v3_small)", quick.model, quick_crop),
            ("mobilenet_v3_small train step", mnv3, 224),
            ("resnet18 train step", resnet, 224),
        ]
        for label, model_config, crop in models:
            ds = ranking_dataset(paths, None, crop, groups_per_batch=groups, seed=1)
            batch = next(iter(ds))
            repeated = tf.data.Dataset.from_tensors(batch).repeat()
            rate = train_rate(model_config, repeated, per_batch, args.steps, crop)
            add(
                label,
                crop,
                rate,
                f"batch {per_batch}, weights none, pre-materialised",
                f"{pipeline[crop] / rate:.2f}",
            )
            loads.append(_uptime_load())
        ds = ranking_dataset(paths, None, quick_crop, groups_per_batch=groups, seed=2)
        steps = quick.stages.rank.schedule.steps_per_epoch
        live = train_rate(quick.model, ds, per_batch, steps, quick_crop)
        add(
            "quickstart model fed by ranking_dataset",
            quick_crop,
            live,
            f"one quickstart epoch ({steps} steps) incl. iterator start",
        )
        loads.append(_uptime_load())

    notes = (
        f"Per-type rows: {args.crop}x{args.crop} crops of in-memory images "
        "(distortion cost only). ranking_dataset rows: the default pipeline "
        f"({n_fast} fast KADID types, {groups} groups of pristine + 5 levels per "
        f"batch, {source} decoded once and kept in memory). Trainer rows: "
        "`DistributedLoop` + `RankingTrainer` train step (default strategy, "
        "Adam) on one repeated batch; `ratio` = ranking_dataset crops/s at the "
        "same crop / trainer crops/s. The 2 CPU cores are shared with other "
        "jobs; load averages (1/5/15 min) during the run: " + "; ".join(loads) + "."
    )
    text = write_results(
        "distortions",
        rows,
        ["row", "crop", "crops_per_s", "ratio", "note"],
        "Distortion throughput and rank-stage consumption (crops/s, CPU)",
        notes,
    )
    print(text)


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
