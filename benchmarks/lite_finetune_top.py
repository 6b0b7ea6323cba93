"""Does fine-tuning EfficientNet-Lite0's last stage beat its frozen features?

The frozen recipe (`lite_recipe.py`, arm `lite0:full/ridge/dev+more`) is a
ridge regression on the pooled P2..P5 maps of the whole photo. Here the last
stage (block 15, which outputs P5) trains as well, under the same protocol
(the same splits, training photos and validation choices):

1. Every photo's stage-6 output (16 x 16 x 192 for a 512 px photo) is cached
   once as float16 under `--out/maps/` (the three photos that are not
   512 x 512 are resized to it first, so that batches share one shape).
   With `--data dev` only biq2021-dev photos are needed (and used).
2. Per split and seed: the frozen ridge is fitted as in `lite_recipe.py`;
   the model (block 15 from the ImageNet weights, BatchNorm in inference
   mode, avg+std pooling of P5 beside the frozen pooled P2..P4 from the
   feature cache, the same standardisation, a Dense initialised with the
   ridge's weights) then trains for `--epochs` epochs with Adam on MSE plus
   the ridge penalty; epoch 0 is the ridge itself, and the epoch with the
   best validation SRCC is tested.

Writes `results/<name>.{json,md}` (arms `frozen` and `finetune_last_stage`,
paired difference to `frozen`).

Example:
```
.venv/bin/python benchmarks/lite_finetune_top.py --data-dir ../shared/data
```
"""

import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from arms import arm_result, summarize_arms  # noqa: E402
from common import script  # noqa: E402
from lite_recipe import (  # noqa: E402
    ALPHAS,
    FeatureTable,
    dev_splits,
    fit_ridge,
    read_photos,
    split_id,
    standardiser,
    usable_more,
)

SIDE = 512
TOP_BLOCK = "blocks_15"


def networks():
    """(bottom: image -> stage-6 map, top: stage-6 map -> P5) of ImageNet Lite0."""
    import keras

    from tfiqa.models.efficientnet_lite import efficientnet_lite

    full = efficientnet_lite("efficientnet_lite0", "imagenet")
    bottom = keras.Model(full.input, full.get_layer("stage6_out").output)
    start = full.get_layer(f"{TOP_BLOCK}_expand_conv").input
    top = keras.Model(start, full.get_layer("stage7_out").output)
    return bottom, top


def cached_maps(records, out, log_every=200):
    """float16 (N, 16, 16, 192) stage-6 maps of `records`' whole photos."""
    import tensorflow as tf

    from tfiqa.data.image_io import load_image
    from tfiqa.files import atomic_path
    from tfiqa.models.efficientnet_lite import INPUT_MEAN, INPUT_STD

    folder = os.path.join(out, "maps")
    os.makedirs(folder, exist_ok=True)
    bottom = None
    maps, start = [], time.time()
    for index, record in enumerate(records):
        with open(record["image_path"], "rb") as f:
            name = hashlib.sha1(f.read()).hexdigest() + ".npy"
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            if bottom is None:
                bottom = tf.function(networks()[0], reduce_retracing=True)
            image = load_image(record["image_path"])
            if image.shape[:2] != (SIDE, SIDE):
                image = tf.image.resize(image, (SIDE, SIDE), antialias=True).numpy()
            x = (np.float32(image)[None] - INPUT_MEAN) / INPUT_STD
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, np.asarray(bottom(x))[0].astype(np.float16))
            if log_every and (index + 1) % log_every == 0:
                rate = (index + 1) / (time.time() - start)
                print(f"maps {index + 1}/{len(records)} ({rate:.1f}/s)", flush=True)
        maps.append(np.load(path))
    return np.stack(maps)


def pooled_avg_std(maps):
    import keras

    mean = keras.ops.mean(maps, axis=(1, 2))
    centred = maps - mean[:, None, None, :]
    std = keras.ops.sqrt(keras.ops.mean(keras.ops.square(centred), axis=(1, 2)) + 1e-6)
    return keras.ops.concatenate([mean, std], axis=-1)


def finetune(parts, maps, frozen, y, alpha, seed, args, template):
    """Trains the last stage + linear head; returns test predictions, val SRCC
    and the chosen epoch (0 = the ridge)."""
    import keras
    import tensorflow as tf

    from tfiqa.metrics import srcc

    keras.utils.set_random_seed(seed)
    top = keras.models.clone_model(template)
    top.set_weights(template.get_weights())
    for layer in top.layers:  # BatchNorm in inference mode, only convs train
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    mean, std = standardiser(frozen["train"])
    # The frozen features are [P2 avg, P2 std, ..., P5 avg, P5 std]: P5's
    # columns are the last `p5_width`, recomputed here by the training stage.
    low = frozen
    w, b = fit_ridge((frozen["train"] - mean) / std, y["train"], alpha)
    dense_w = tf.Variable(w[:, None].astype("f4"))
    dense_b = tf.Variable(np.float32([b]))
    mean_t, std_t = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
    kept = frozen["train"].shape[1] - args.p5_width

    def features(stage6_maps, low_features):
        p5 = pooled_avg_std(top(tf.cast(stage6_maps, tf.float32), training=False))
        x = tf.concat([low_features[:, :kept], p5], axis=-1)
        return (x - mean_t) / std_t

    def predict(part):
        out = []
        for s in range(0, len(parts[part]), 64):
            x = features(maps[part][s : s + 64], low[part][s : s + 64])
            out.append((x @ dense_w + dense_b).numpy()[:, 0])
        return np.concatenate(out)

    variables = top.trainable_variables + [dense_w, dense_b]
    optimizer = keras.optimizers.Adam(args.learning_rate)
    n = len(parts["train"])

    @tf.function(reduce_retracing=True)
    def step(batch_maps, batch_low, batch_y):
        with tf.GradientTape() as tape:
            pred = features(batch_maps, batch_low) @ dense_w + dense_b
            loss = tf.reduce_mean(tf.square(pred[:, 0] - batch_y))
            loss += alpha / n * tf.reduce_sum(tf.square(dense_w))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, variables), variables, strict=True)
        )
        return loss

    best = (srcc(predict("val"), y["val"]), 0, predict("test"))
    rng = np.random.default_rng(seed)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        for s in range(0, n - args.batch_size + 1, args.batch_size):
            idx = order[s : s + args.batch_size]
            step(maps["train"][idx], low["train"][idx], y["train"][idx])
        score = srcc(predict("val"), y["val"])
        print(f"  epoch {epoch}: val SRCC {score:.3f}", flush=True)
        if score > best[0]:
            best = (score, epoch, predict("test"))
    return best


def run(args):
    from tfiqa.files import write_json_atomic
    from tfiqa.metrics import srcc

    out = os.path.abspath(args.out)
    seeds = [int(s) for s in str(args.seeds).split(",")]
    dev, more = read_photos(
        os.path.abspath(args.data_dir), args.duplicate_similarity, out
    )
    table = FeatureTable(out, 224)
    if args.data == "dev":
        more = []  # the biq2021-dev train parts alone
    everything = dev + more
    all_maps = cached_maps(everything, out)
    index = {r["image_path"]: i for i, r in enumerate(everything)}
    all_frozen = table.get("lite0:full", everything)
    _, template = networks()
    args.p5_width = 2 * template.output.shape[-1]
    rows_path = os.path.join(out, f"{args.name}_rows.json")
    rows = []
    if os.path.isfile(rows_path):
        with open(rows_path) as f:
            rows = json.load(f)
    done = {(r["arm"], r.get("split_id"), r["seed"]) for r in rows}
    splits = dev_splits(dev, args.splits)
    ids = [split_id(split) for split in splits]
    for k, split in enumerate(splits):
        parts = {"train": split["train"] + usable_more(more, split)}
        parts.update(val=split["val"], test=split["test"])
        ids = {p: np.array([index[r["image_path"]] for r in parts[p]]) for p in parts}
        frozen = {p: all_frozen[ids[p]] for p in parts}
        y = {p: np.float32([r["mos"] for r in parts[p]]) for p in parts}
        mean, std = standardiser(frozen["train"])
        z = {p: (frozen[p] - mean) / std for p in parts}
        fits = [
            (srcc(z["val"] @ w + b, y["val"]), a, w, b)
            for a in ALPHAS
            for w, b in [fit_ridge(z["train"], y["train"], a)]
        ]
        val_score, alpha, w, b = max(fits, key=lambda f: f[0])
        for seed in seeds:
            if ("finetune_last_stage", ids[k], seed) in done:
                continue
            start = time.time()
            maps = {p: all_maps[ids[p]] for p in parts}
            score, epoch, test = finetune(
                parts, maps, frozen, y, alpha, seed, args, template
            )
            for arm, pred, val, chosen in (
                ("frozen", z["test"] @ w + b, val_score, 0),
                ("finetune_last_stage", test, score, epoch),
            ):
                rows.append(
                    arm_result(
                        arm,
                        f"split{k}",
                        seed,
                        pred,
                        y["test"],
                        val_srcc=float(val),
                        best_epoch=chosen,
                        split_id=ids[k],
                        alpha=float(alpha),
                        budget={
                            "train_photos": len(parts["train"]),
                            "seconds": time.time() - start,
                        },
                    )
                )
                print(
                    f"{arm} split{k} seed{seed}: test {rows[-1]['srcc']:.3f} "
                    f"(val {val:.3f}, epoch {chosen})",
                    flush=True,
                )
            write_json_atomic(rows_path, rows)
    summarize_arms(
        [r for r in rows if r.get("split_id") in ids],
        args.name,
        baseline="frozen",
        min_splits=args.splits,
        min_seeds=len(seeds),
        title="Fine-tuning Lite0's last stage vs frozen features (whole photo, "
        f"{args.data} training, test parts of biq2021-dev)",
        notes=f"Adam {args.learning_rate}, batch {args.batch_size}, up to "
        f"{args.epochs} epochs, epoch chosen on validation (0 = the frozen "
        "ridge, so the arm never validates below it). `frozen` rows repeat one "
        "deterministic fit per seed. Command: benchmarks/lite_finetune_top.py "
        f"--splits {args.splits} --seeds {args.seeds} --epochs {args.epochs} "
        f"--data {args.data}",
    )


if __name__ == "__main__":
    script(__file__)
