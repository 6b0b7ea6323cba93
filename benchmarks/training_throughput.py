"""Training throughput (images/s) per backbone: tfiqa's loop vs a plain fit.

For each backbone, fresh child processes time:
- "finetune": one step of tfiqa's distributed loop (`DistributedLoop`) on an
  `IQAModel` with the multi-level head (P2..P5), MSE, two optimizers
  (backbone and head learning rates).
- "rank": the same loop with the all-pairs ranking loss on a structured
  batch (4 groups of 8 levels = 32 images).
- "keras_fit": a plain backbone (Keras applications, or tfiqa's ResNet-18
  network, which Keras does not ship) + global average pooling + Dense(1),
  trained with `model.fit` - what a user would get without tfiqa.
Batches are in memory (`Dataset.from_tensors(...).repeat()`), so these
figures are the training step alone. The input pipelines are measured
separately ("pipeline_mos": decode + random crop + flip of JPEGs;
"pipeline_rank": decode + crop + on-the-fly distortion of ranking groups)
to show whether they can keep up with the step.

Example:
```
.venv/bin/python benchmarks/training_throughput.py \
    --backbones mobilenet_v3_small,resnet18,resnet50 --crop 224 --batch 32
```
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import child_result, run_child, script, write_results  # noqa: E402


def _plain_model(backbone, crop):
    import keras

    from tfiqa.models import build_backbone

    apps = {
        "mobilenet_v3_small": lambda: keras.applications.MobileNetV3Small(
            input_shape=(crop, crop, 3), include_top=False, weights=None
        ),
        "mobilenet_v3_large": lambda: keras.applications.MobileNetV3Large(
            input_shape=(crop, crop, 3), include_top=False, weights=None
        ),
        "resnet50": lambda: keras.applications.ResNet50(
            input_shape=(crop, crop, 3), include_top=False, weights=None
        ),
        "vgg16": lambda: keras.applications.VGG16(
            input_shape=(crop, crop, 3), include_top=False, weights=None
        ),
    }
    inputs = keras.Input((crop, crop, 3))
    if backbone in apps:
        features = apps[backbone]()(inputs)
        source = "keras.applications"
    else:
        features = build_backbone(backbone, "none")(inputs)["P5"]
        source = "tfiqa backbone (P5)"
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(1)(pooled)
    return keras.Model(inputs, outputs), source


def child(args):
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    c, b = args.crop, args.batch
    images = tf.constant(rng.integers(0, 256, (b, c, c, 3), np.uint8))
    mos = tf.constant(rng.uniform(size=(b,)), tf.float32)
    note = ""
    if args.mode == "keras_fit":
        model, note = _plain_model(args.backbone, c)
        model.compile(keras.optimizers.Adam(1e-4), "mse")
        data = tf.data.Dataset.from_tensors((tf.cast(images, tf.float32), mos)).repeat()
        model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
        elapsed = time.perf_counter() - start
    else:
        from tfiqa.config import ModelConfig
        from tfiqa.models import build_model
        from tfiqa.training.finetune_trainer import FinetuneTrainer
        from tfiqa.training.loop import DistributedLoop, make_optimizer
        from tfiqa.training.ranking_trainer import RankingTrainer

        strategy = tf.distribute.get_strategy()
        model = build_model(
            ModelConfig(backbone=args.backbone, weights="none"), crop_size=c
        )
        if args.mode == "rank":
            trainer = RankingTrainer(model, margin=0.05)
            levels = 8
            labels = {
                "group": tf.constant(
                    np.repeat(np.arange(b // levels), levels), tf.int32
                ),
                "level": tf.constant(np.tile(np.arange(levels), b // levels), tf.int32),
            }
            data = tf.data.Dataset.from_tensors((images, labels)).repeat()
            groups = [(make_optimizer(1e-4), model.trainable_variables)]
            weights = None
        else:
            trainer = FinetuneTrainer(model)
            data = tf.data.Dataset.from_tensors((images, mos)).repeat()
            backbone = {id(v) for v in model.backbone_variables}
            head = [v for v in model.trainable_variables if id(v) not in backbone]
            groups = [
                (make_optimizer(1e-4), list(model.backbone_variables)),
                (make_optimizer(1e-3), head),
            ]
            weights = trainer.loss_weights
        loop = DistributedLoop(
            strategy,
            model,
            trainer.compute_terms,
            groups,
            stage=args.mode,
            verbose=-1,
            loss_weights=weights,
        )
        loop._train_fn = loop._make_train_fn()
        loop.train_epoch(data, 0, 1, args.warmup)
        start = time.perf_counter()
        loop.train_epoch(data, 0, 1, args.steps)
        elapsed = time.perf_counter() - start
        note = "IQAModel P2-P5 head"
    child_result(
        {
            "backbone": args.backbone,
            "mode": args.mode,
            "images_per_s": args.steps * b / elapsed,
            "step_ms": 1000 * elapsed / args.steps,
            "note": note,
        }
    )


def pipelines(args):
    """Images/s of the MOS and ranking input pipelines at the benchmark crop."""
    import numpy as np
    from PIL import Image

    from tfiqa.data.pipeline import mos_dataset
    from tfiqa.data.ranking import ranking_dataset

    rows = []
    folder = tempfile.mkdtemp(prefix="tfiqa-bench-")
    paths = []
    if args.data_dir:
        from tfiqa.data.readers import read_dataset

        records = read_dataset("csv", os.path.join(args.data_dir, "biq2021-dev"))
        records = records[: args.pipeline_images]
        source = "biq2021-dev JPEGs (~512x512)"
        from tfiqa.data.pristine import list_images

        paths = list_images(os.path.join(args.data_dir, "pristine", "BSDS500"))[:64]
    else:
        rng = np.random.default_rng(0)
        records = []
        for i in range(args.pipeline_images):
            path = os.path.join(folder, f"img_{i}.jpg")
            pixels = rng.integers(0, 256, (384, 512, 3), np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
            records.append({"image_path": path, "mos": 0.5})
        paths = [r["image_path"] for r in records]
        source = "generated 512x384 JPEGs"
    ds = mos_dataset(records, args.crop, args.batch, training=True, seed=0).repeat()
    rows.append(_time_dataset(ds, "pipeline_mos", args, source))
    ds = ranking_dataset(paths, None, args.crop, groups_per_batch=4, seed=0)
    rows.append(
        _time_dataset(ds, "pipeline_rank", args, "4 groups x 6, fast KADID types")
    )
    return rows


def _time_dataset(ds, mode, args, note):
    iterator = iter(ds)
    for _ in range(2):
        next(iterator)
    count = 0
    start = time.perf_counter()
    for _ in range(args.pipeline_batches):
        images = next(iterator)[0]
        count += int(images.shape[0])
    elapsed = time.perf_counter() - start
    return {
        "backbone": "-",
        "mode": mode,
        "images_per_s": count / elapsed,
        "step_ms": 1000 * elapsed / args.pipeline_batches,
        "note": note,
    }


def run(args):
    rows = []
    for backbone in args.backbones.split(","):
        for mode in args.modes.split(","):
            row = run_child(__file__, args, backbone=backbone, mode=mode)
            if row is None:
                raise SystemExit(f"{backbone}/{mode} failed")
            print(row, flush=True)
            rows.append(row)
    for backbone in args.backbones.split(","):
        by_mode = {r["mode"]: r for r in rows if r["backbone"] == backbone}
        plain = by_mode.get("keras_fit")
        for row in by_mode.values():
            if plain:
                row["vs_keras_fit"] = row["images_per_s"] / plain["images_per_s"]
    if not args.no_pipelines:
        for row in pipelines(args):
            print(row, flush=True)
            rows.append(row)

    notes = (
        f"Crop {args.crop}, batch {args.batch}, {args.warmup} warm-up + "
        f"{args.steps} timed steps per cell, random weights, float32. "
        "Each cell runs in a fresh process. " + args.notes
    )
    text = write_results(
        "training_throughput",
        rows,
        ["backbone", "mode", "images_per_s", "step_ms", "vs_keras_fit", "note"],
        "Training throughput (images/s)",
        notes=notes,
    )
    print(text)


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__, child))
