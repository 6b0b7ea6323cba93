"""The frozen EfficientNet-Lite recipe, chosen under the biq2021-dev protocol.

Every arm reads pooled features from the cache `lite_features.py` filled
(mean and std of the P2..P5 maps of a frozen ImageNet backbone) and is
scored on the test part of `--splits` content-disjoint splits of
biq2021-dev made as in `transfer.py` (65% train / 15% validation / 20%
test, seed 0; near-duplicate groups never cross parts), with `--seeds`
training seeds each; everything is chosen on the validation part (the
ridge penalty, the MLP's epoch).

Training data: the split's biq2021-dev train part, plus (`+more`) every
biq2021-more photo that is not a near-duplicate of a validation or test
photo (near-duplicates grouped across both folders, thumbnail correlation
>= `--duplicate-similarity`).

An arm is `features/head/data`:
  features  `<backbone>:<view>[@<levels>][+...]`, e.g. `lite0:full`
            (the whole photo at its own size, pooled P2..P5), `lite0:1` (one
            224 px centre crop), `lite0:full+lite0:1` (both views,
            concatenated), `lite0:full@P5` or `lite0:full@P4P5` (only those
            levels' pooled features: the multi-level ablation);
  head      `ridge` (standardised features, ridge penalty chosen on
            validation; deterministic, so its seeds repeat one fit),
            `qridgeB` (the same with the int8 noise of the features also
            penalised, weight B: see `int8_feature_noise`) or
            `mlp` (input standardisation, one hidden layer of `--mlp-units`
            with BatchNorm, ReLU and dropout, sigmoid output, Adam on MSE,
            `--mlp-epochs` epochs, the best validation epoch kept);
  data      `dev` or `dev+more`, optionally `@F` to keep a fraction F of
            the training photos (the training-set-size curve).

Writes `results/<name>.{json,md}` through `arms.summarize_arms` (median over
splits of seed means, bootstrap 95% intervals, paired difference to
`--baseline`). Per-run rows are kept in `--out/lite_recipe_rows.json`,
shared by every table: an arm run for one table is not run again for the
next, and an interrupted run resumes.

Example:
```
.venv/bin/python benchmarks/lite_recipe.py --data-dir ../shared/data \
    --arms lite0:full/ridge/dev,lite0:full/ridge/dev+more --baseline ...
```
"""

import hashlib
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from arms import summarize_arms  # noqa: E402
from common import script  # noqa: E402
from lite_features import FOLDERS, LEVELS, lite_model, parse_view  # noqa: E402

from tfiqa.models.linear_heads import fit_ridge, standardiser  # noqa: E402

ALPHAS = np.logspace(-1, 5, 19)
BACKBONE_NAMES = {
    "lite0": "efficientnet_lite0",
    "lite1": "efficientnet_lite1",
    "lite2": "efficientnet_lite2",
}


def read_photos(data_dir, min_similarity, out=None):
    """(dev records, more records), near-duplicates grouped across both.

    The grouping reads every photo; with `out` it is kept in
    `out/groups_<similarity>_detail<detail>.json` (image path -> group) for
    later runs: the name carries the whole rule, so a file made by another
    rule is never read.
    """
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.readers.duplicates import (
        DEFAULT_MIN_DETAIL,
        group_near_duplicates,
    )
    from tfiqa.files import write_json_atomic

    parts = [
        read_dataset("csv", os.path.join(data_dir, folder), file="mos.csv")
        for folder in FOLDERS
    ]
    tagged = [
        {**r, "ref_id": f"{i}:{r['ref_id']}"} for i, p in enumerate(parts) for r in p
    ]
    saved = out and os.path.join(
        out, f"groups_{min_similarity}_detail{DEFAULT_MIN_DETAIL}.json"
    )
    if saved and os.path.isfile(saved):
        with open(saved) as f:
            groups = json.load(f)
        grouped = [{**r, "ref_id": groups[r["image_path"]]} for r in tagged]
    else:
        grouped = group_near_duplicates(tagged, min_similarity)
        if saved:
            write_json_atomic(saved, {r["image_path"]: r["ref_id"] for r in grouped})
    return grouped[: len(parts[0])], grouped[len(parts[0]) :]


def dev_splits(dev, count):
    """Content-disjoint splits made as in `transfer.py`, as record lists."""
    from tfiqa.data.splits import make_splits, select

    return [
        select(dev, split)
        for split in make_splits(dev, n=count, val_ratio=0.15, test_ratio=0.2, seed=0)
    ]


def split_id(split):
    """A fingerprint of a split's test part: saved rows of other splits
    (another split rule, another grouping) are never taken for this one."""
    paths = "\n".join(sorted(r["image_path"] for r in split["test"]))
    return hashlib.sha1(paths.encode()).hexdigest()[:12]


def usable_more(more, split):
    """biq2021-more photos whose group has no validation or test photo."""
    held = {r["ref_id"] for part in ("val", "test") for r in split[part]}
    return [r for r in more if r["ref_id"] not in held]


class FeatureTable:
    """Pooled features of every labelled photo, per `backbone:view`."""

    def __init__(self, out, crop_size):
        self.out, self.crop_size, self.caches = out, crop_size, {}
        self.memo = {}  # (backbone:view, path) -> pooled vector

    def _cache(self, backbone, levels):
        """The cache of `backbone`'s pooled features in the layout of a head
        on `levels`; every layout reads the same cached files (their folder
        is named by the backbone, not the head)."""
        from tfiqa.training.transfer import PooledFeatureCache

        key = (backbone, levels)
        if key not in self.caches:
            model = lite_model(BACKBONE_NAMES[backbone], self.crop_size, levels)
            self.caches[key] = PooledFeatureCache(
                model, os.path.join(self.out, "cache"), self.crop_size
            )
        return self.caches[key]

    def get(self, spec, records):
        """(N, width) features of `records` for `lite0:full+lite0:1`-style specs."""
        blocks = []
        for part in spec.split("+"):
            features, _, levels = part.partition("@")
            backbone, view = features.split(":")
            levels = tuple(re.findall(r"P\d", levels)) or tuple(LEVELS)
            paths = [r["image_path"] for r in records]
            missing = [p for p in paths if (part, p) not in self.memo]
            if missing:
                pooled = self._cache(backbone, levels).features(
                    missing, parse_view(view), log_every=0
                )
                for path, vector in zip(missing, pooled.mean(axis=1), strict=True):
                    self.memo[(part, path)] = vector  # mean over the view's crops
            blocks.append(np.stack([self.memo[(part, p)] for p in paths]))
        return np.concatenate(blocks, axis=1)


def int8_feature_noise(out, more, dev, count=300, calibration=100):
    """Second moment (width, width) of int8 - float pooled Lite0 features.

    A full-integer int8 TFLite of the feature network (whole 512 px photo ->
    pooled P2..P5) is calibrated on `calibration` biq2021-more photos and
    run on the next ones; the difference to the float features is the
    noise that int8 adds to every head input. Only biq2021-more photos with
    no near-duplicate in biq2021-dev are used, so no split's validation or
    test photo informs it. Cached in `out/int8_noise_<photos>.npz`, named by
    the photos it used (another grouping picks other photos, another file).
    """
    dev_groups = {r["ref_id"] for r in dev}
    pool = [r for r in more if r["ref_id"] not in dev_groups]
    pool = [r for r in pool if photo_size(r["image_path"]) == (512, 512)]
    pool = pool[:count]
    names = "\n".join(os.path.basename(r["image_path"]) for r in pool)
    key = hashlib.sha1(f"{calibration}\n{names}".encode()).hexdigest()[:12]
    path = os.path.join(out, f"int8_noise_{key}.npz")
    if not os.path.isfile(path):
        _measure_int8_noise(path, out, pool, calibration)
    with np.load(path) as saved:
        return saved["noise"]


def photo_size(path):
    """(width, height) from the file's header, without decoding it."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def _measure_int8_noise(path, out, pool, calibration):
    import tempfile

    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from tfiqa.data.image_io import load_image
    from tfiqa.export import tflite
    from tfiqa.export.saved_model import save_signatures
    from tfiqa.files import atomic_path

    model = lite_model(BACKBONE_NAMES["lite0"], 512)
    images = keras.Input((None, None, 3))
    network = keras.Model(images, model.head.pool(model.backbone(images)))

    @tf.function(
        input_signature=[tf.TensorSpec([None, 512, 512, 3], tf.float32, name="image")]
    )
    def features(image):
        return {tflite.OUTPUT_NAME: network(image, training=False)}

    source = tempfile.mkdtemp()
    save_signatures(network, source, {tflite.SIGNATURE: features})
    crops = np.stack([load_image(r["image_path"]) for r in pool[:calibration]])
    content, _ = tflite.convert(source, "int8", crops)
    interpreter = Interpreter(model_content=content, num_threads=2)
    interpreter.allocate_tensors()
    given = interpreter.get_input_details()[0]["index"]
    taken = interpreter.get_output_details()[0]["index"]
    held = pool[calibration:]
    quantised = []
    for record in held:
        image = load_image(record["image_path"]).astype(np.float32)[None]
        interpreter.set_tensor(given, image)
        interpreter.invoke()
        quantised.append(interpreter.get_tensor(taken)[0])
    table = FeatureTable(out, 224)
    noise = np.asarray(quantised) - table.get("lite0:full", held)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, noise=noise, photos=np.array([r["image_path"] for r in held]))


def ridge_arm(z, y, seed, noise=None, beta=0.0):
    """Ridge with the penalty chosen on validation SRCC.

    With `noise` (int8 - float feature differences, standardised like `z`)
    the penalty adds `beta * n * E[e e^T]`: the weights avoid directions in
    which int8 moves the features, so the int8 model's scores stay close to
    the float model's at (measured) no cost in accuracy.
    """
    del seed  # deterministic
    from tfiqa.metrics import srcc

    extra = 0.0
    if noise is not None and beta:
        extra = beta * len(z["train"]) * (noise.T @ noise) / len(noise)
    best = None
    for alpha in ALPHAS:
        w, b = fit_ridge(z["train"], y["train"], alpha, extra)
        score = srcc(z["val"] @ w + b, y["val"])
        if best is None or score > best[0]:
            best = (score, alpha, w, b)
    score, alpha, w, b = best
    out = {"test": z["test"] @ w + b, "val_srcc": score, "alpha": float(alpha)}
    if noise is not None:  # the int8 error these weights would give
        error = np.abs(noise @ w)
        out.update(
            int8_error_max=float(error.max()),
            int8_error_p95=float(np.percentile(error, 95)),
        )
    return out


def mlp_arm(z, y, seed, units, epochs, dropout=0.25, batch_size=32, lr=1e-3):
    """One-hidden-layer MLP on standardised features, best validation epoch."""
    import keras

    from tfiqa.metrics import srcc

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((z["train"].shape[1],)),
            keras.layers.Dense(units),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(lr), "mse")
    best = (-2.0, 0, None)
    for epoch in range(1, epochs + 1):
        model.fit(
            z["train"],
            y["train"],
            batch_size=batch_size,
            epochs=1,
            verbose=0,
            shuffle=True,
        )
        score = srcc(model.predict(z["val"], verbose=0)[:, 0], y["val"])
        if score > best[0]:
            best = (score, epoch, model.get_weights())
    model.set_weights(best[2])
    return {
        "test": model.predict(z["test"], verbose=0)[:, 0],
        "val_srcc": best[0],
        "best_epoch": best[1],
    }


def run_one(arm, table, split, more, seed, params, noise=None):
    """Fits arm `features/head/data` on one split and seed; returns its row."""
    from tfiqa.metrics import evaluate_predictions

    features, head, data = arm.split("/")
    data, _, fraction = data.partition("@")
    train = list(split["train"])
    if data == "dev+more":
        train += usable_more(more, split)
    elif data != "dev":
        raise ValueError(f"data must be dev or dev+more. Received: {data!r}")
    if fraction:
        rng = np.random.default_rng(1000 + seed)
        keep = rng.permutation(len(train))[: int(round(float(fraction) * len(train)))]
        train = [train[i] for i in sorted(keep)]
    parts = {"train": train, "val": split["val"], "test": split["test"]}
    x = {p: table.get(features, parts[p]) for p in parts}
    y = {p: np.float32([r["mos"] for r in parts[p]]) for p in parts}
    mean, std = standardiser(x["train"])
    z = {p: (x[p] - mean) / std for p in x}
    start = time.time()
    if head == "ridge":
        fit = ridge_arm(z, y, seed)
    elif head.startswith("qridge"):
        fit = ridge_arm(z, y, seed, noise / std, float(head[len("qridge") :]))
    elif head == "mlp":
        fit = mlp_arm(z, y, seed, params.mlp_units, params.mlp_epochs)
    else:
        raise ValueError(f"head must be ridge or mlp. Received: {head!r}")
    metrics = evaluate_predictions(fit.pop("test"), y["test"])
    return {
        "arm": arm,
        "seed": seed,
        "srcc": float(metrics["srcc"]),
        "plcc": float(metrics["plcc"]),
        "n_test": len(y["test"]),
        "n_train": len(train),
        "width": int(x["train"].shape[1]),
        **{k: v for k, v in fit.items()},
        # Arms on the same data have equal budgets; data arms differ by design.
        "budget": {"train_photos": len(train), "seconds": time.time() - start},
    }


def _saved_rows(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)


def run(args):
    data_dir = os.path.abspath(args.data_dir)
    seeds = [int(s) for s in str(args.seeds).split(",")]
    arms = [a for a in args.arms.split(",") if a]
    out = os.path.abspath(args.out)
    dev, more = read_photos(data_dir, args.duplicate_similarity, out)
    splits = dev_splits(dev, args.splits)
    table = FeatureTable(out, args.crop_size)
    rows_path = os.path.join(out, "lite_recipe_rows.json")
    rows = _saved_rows(rows_path)
    done = {(r["arm"], r.get("split_id"), r["seed"]) for r in rows}
    from tfiqa.files import write_json_atomic

    ids = [split_id(split) for split in splits]
    noise = None
    if any("/qridge" in arm for arm in arms):
        noise = int8_feature_noise(out, more, dev)
    for arm in arms:
        for index, split in enumerate(splits):
            for seed in seeds:
                if (arm, ids[index], seed) in done:
                    continue
                arm_noise = noise if "/qridge" in arm else None
                row = run_one(arm, table, split, more, seed, args, arm_noise)
                row["split"], row["split_id"] = f"split{index}", ids[index]
                rows = _saved_rows(rows_path) + [row]  # other runs may have added
                write_json_atomic(rows_path, rows)
                print(
                    f"{arm} split{index} seed{seed}: test SRCC {row['srcc']:.3f} "
                    f"(val {row['val_srcc']:.3f}, {row['n_train']} train)",
                    flush=True,
                )
    dropped = [len(more) - len(usable_more(more, s)) for s in splits]
    twins = sum(1 for r in dev if r["ref_id"] in {m["ref_id"] for m in more})
    notes = (
        f"Test parts of biq2021-dev only ({len(splits)} splits, seeds {seeds}); "
        "every choice on validation. biq2021-more photos dropped per split as "
        f"near-duplicates of validation/test photos: {dropped} "
        f"({twins} biq2021-dev photos have a twin in biq2021-more at thumbnail "
        f"correlation >= {args.duplicate_similarity}). Ridge arms on all their "
        "data are deterministic: their seeds repeat one fit (with `@F` the seed "
        "draws the subsample). Budgets differ by design "
        "across data arms (that is what they compare); `seconds` is the fit "
        "only, feature extraction excluded (results/lite_features.md). "
        f"Command: benchmarks/lite_recipe.py --arms {args.arms} --splits "
        f"{args.splits} --seeds {args.seeds} --baseline {args.baseline}"
    )
    summarize_arms(
        [r for r in rows if r["arm"] in arms and r.get("split_id") in ids],
        args.name,
        baseline=args.baseline or None,
        title=args.title,
        notes=notes,
        min_splits=args.splits,
        min_seeds=len(seeds),
    )


if __name__ == "__main__":
    script(__file__)
