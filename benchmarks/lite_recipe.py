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
  features  `<backbone>:<view>[+<backbone>:<view>...]`, e.g. `lite0:full`
            (the whole photo at its own size), `lite0:1` (one 224 px centre
            crop), `lite0:full+lite0:1` (both views, concatenated);
  head      `ridge` (standardised features, ridge penalty chosen on
            validation; deterministic, so its seeds repeat one fit) or
            `mlp` (input standardisation, one hidden layer of `--mlp-units`
            with BatchNorm, ReLU and dropout, sigmoid output, Adam on MSE,
            `--mlp-epochs` epochs, the best validation epoch kept);
  data      `dev` or `dev+more`, optionally `@F` to keep a fraction F of
            the training photos (the training-set-size curve).

Writes `results/<name>.{json,md}` through `arms.summarize_arms` (median over
splits of seed means, bootstrap 95% intervals, paired difference to
`--baseline`) and keeps per-run rows in `--out/<name>_rows.json`.

Example:
```
.venv/bin/python benchmarks/lite_recipe.py --data-dir ../shared/data \
    --arms lite0:full/ridge/dev,lite0:full/ridge/dev+more --baseline ...
```
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from arms import summarize_arms  # noqa: E402
from common import script  # noqa: E402
from lite_features import FOLDERS, lite_model, parse_view  # noqa: E402

ALPHAS = np.logspace(-1, 5, 19)
BACKBONE_NAMES = {
    "lite0": "efficientnet_lite0",
    "lite1": "efficientnet_lite1",
    "lite2": "efficientnet_lite2",
}


def read_photos(data_dir, min_similarity, out=None):
    """(dev records, more records), near-duplicates grouped across both.

    The grouping reads every photo; with `out` it is kept in
    `out/groups_<similarity>.json` (image path -> group) for later runs.
    """
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.readers.duplicates import group_near_duplicates
    from tfiqa.files import write_json_atomic

    parts = [
        read_dataset("csv", os.path.join(data_dir, folder), file="mos.csv")
        for folder in FOLDERS
    ]
    tagged = [
        {**r, "ref_id": f"{i}:{r['ref_id']}"} for i, p in enumerate(parts) for r in p
    ]
    saved = out and os.path.join(out, f"groups_{min_similarity}.json")
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


def usable_more(more, split):
    """biq2021-more photos whose group has no validation or test photo."""
    held = {r["ref_id"] for part in ("val", "test") for r in split[part]}
    return [r for r in more if r["ref_id"] not in held]


class FeatureTable:
    """Pooled features of every labelled photo, per `backbone:view`."""

    def __init__(self, out, crop_size):
        self.out, self.crop_size, self.caches = out, crop_size, {}

    def _cache(self, backbone):
        from tfiqa.training.transfer import PooledFeatureCache

        if backbone not in self.caches:
            model = lite_model(BACKBONE_NAMES[backbone], self.crop_size)
            self.caches[backbone] = PooledFeatureCache(
                model, os.path.join(self.out, "cache"), self.crop_size
            )
        return self.caches[backbone]

    def get(self, spec, records):
        """(N, width) features of `records` for `lite0:full+lite0:1`-style specs."""
        blocks = []
        for part in spec.split("+"):
            backbone, view = part.split(":")
            pooled = self._cache(backbone).features(
                [r["image_path"] for r in records], parse_view(view), log_every=0
            )
            blocks.append(pooled.mean(axis=1))  # average over the view's crops
        return np.concatenate(blocks, axis=1)


def standardiser(x):
    mean, std = x.mean(0), x.std(0)
    return mean, np.where(std > 1e-6, std, 1.0)


def fit_ridge(x, y, alpha):
    """Weights, bias of ridge on standardised `x` (bias not penalised)."""
    y_mean = y.mean()
    w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ (y - y_mean))
    return w, y_mean


def ridge_arm(z, y, seed):
    """Ridge with the penalty chosen on validation SRCC."""
    del seed  # deterministic
    from tfiqa.metrics import srcc

    best = None
    for alpha in ALPHAS:
        w, b = fit_ridge(z["train"], y["train"], alpha)
        score = srcc(z["val"] @ w + b, y["val"])
        if best is None or score > best[0]:
            best = (score, alpha, w, b)
    score, alpha, w, b = best
    return {"test": z["test"] @ w + b, "val_srcc": score, "alpha": float(alpha)}


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


def run_one(arm, table, split, more, seed, params):
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
        "budget": {"train_photos_max": len(train), "seconds": time.time() - start},
    }


def run(args):
    data_dir = os.path.abspath(args.data_dir)
    seeds = [int(s) for s in str(args.seeds).split(",")]
    arms = [a for a in args.arms.split(",") if a]
    out = os.path.abspath(args.out)
    dev, more = read_photos(data_dir, args.duplicate_similarity, out)
    splits = dev_splits(dev, args.splits)
    table = FeatureTable(out, args.crop_size)
    rows_path = os.path.join(args.out, f"{args.name}_rows.json")
    rows = []
    if os.path.isfile(rows_path):
        with open(rows_path) as f:
            rows = [r for r in json.load(f) if r["arm"] in arms]
    done = {(r["arm"], r["split"], r["seed"]) for r in rows}
    from tfiqa.files import write_json_atomic

    for arm in arms:
        for index, split in enumerate(splits):
            for seed in seeds:
                if (arm, f"split{index}", seed) in done:
                    continue
                row = run_one(arm, table, split, more, seed, args)
                row["split"] = f"split{index}"
                rows.append(row)
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
        f"correlation >= {args.duplicate_similarity}). Ridge arms are "
        "deterministic: their seeds repeat one fit. Budgets differ by design "
        "across data arms (that is what they compare); `seconds` is the fit "
        "only, feature extraction excluded (results/lite_features.md). "
        f"Command: benchmarks/lite_recipe.py --arms {args.arms} --splits "
        f"{args.splits} --seeds {args.seeds} --baseline {args.baseline}"
    )
    summarize_arms(
        rows,
        args.name,
        baseline=args.baseline or None,
        title=args.title,
        notes=notes,
        min_splits=args.splits,
        min_seeds=len(seeds),
    )


if __name__ == "__main__":
    script(__file__)
