"""Does the meta-learned prior help? MetaIQA ablations on the shared data.

Part 1 (`meta_accuracy`): validation SRCC on BIQ2021-dev after fine-tuning
from (a) scratch, (b) the ranking prior, (c) the meta prior, (d) ranking
then meta. Priors are trained once on `pristine/` (validation sources
BSDS500/test, Kodak24, McMaster); fine-tuning has the same budget and seeds
for every prior and runs on `--splits` seeded 80/20 splits (median
reported, model selected on each split's validation part; no test split).
The zero-shot SRCC of each prior on the same validation images (no MOS ever
seen) tells whether it learned anything about authentic distortions.

Part 2 (`meta_lodo`): the leave-one-distortion-out table on synthetic tasks
from `pristine/` (`tfiqa lodo`): meta prior vs ranking prior vs scratch, SRCC
on each held-out type with k = 0, 10, 50 labelled examples.

Every run is a `tfiqa` subprocess (configs/metaiqa_biq2021.yaml and
configs/metaiqa_lodo.yaml plus `--set` overrides); run folders live under
`--out` and an interrupted benchmark resumes. Budgets are arguments and are
recorded with the results.

Example:
```
.venv/bin/python benchmarks/meta_accuracy.py --data-dir ../shared/data \
    --crop 64 --finetune-epochs 3 --prior-steps 100 --lodo-types jpeg,darken
```
"""

import csv
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)

BIQ_CONFIG = os.path.join(ROOT, "configs", "metaiqa_biq2021.yaml")
LODO_CONFIG = os.path.join(ROOT, "configs", "metaiqa_lodo.yaml")
INITS = ("scratch", "rank", "meta", "rank+meta")


def tfiqa(command, config, workdir, overrides, data_dir, log, extra=()):
    """Runs `tfiqa <command>` (resuming in `workdir`); returns the seconds."""
    cmd = [sys.executable, "-m", "tfiqa.cli", command, "--config", config]
    cmd += ["--data-dir", data_dir, "--workdir", workdir, *extra]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    os.makedirs(workdir, exist_ok=True)
    start = time.time()
    with open(os.path.join(workdir, f"{command}.log"), "a") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"tfiqa {command} failed ({workdir}); see {command}.log")
    seconds = time.time() - start
    log(f"  done in {seconds:.0f}s: {workdir}")
    return seconds


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.json")) as f:
        return json.load(f)


def zero_shot_srcc(model_path, data_dir, splits_file, split, crop):
    """SRCC of a prior's scores on a split's validation images (center crops)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfiqa.models  # noqa: F401  (registers IQAModel)
    from tfiqa.data.pipeline import mos_dataset
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import load_splits, select
    from tfiqa.metrics import srcc

    model = keras.saving.load_model(model_path, compile=False)
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    records = read_dataset("csv", os.path.join(data_dir, "biq2021-dev"), file="mos.csv")
    val = select(records, load_splits(splits_file)[split])["val"]
    scores, targets = [], []
    for images, mos in mos_dataset(val, crop, 64, training=False):
        scores.append(np.reshape(predict(images).numpy(), [-1]))
        targets.append(mos.numpy())
    return float(srcc(np.concatenate(scores), np.concatenate(targets)))


def biq_part(args, data_dir, out, log):
    common = [
        f"model.backbone={args.backbone}",
        "model.weights=none",
        f"data.crop_size={args.crop}",
        f"data.batch_size={args.batch}",
        f"data.num_splits={args.splits}",
        f"trainer.seed={args.seed}",
        "trainer.verbose=0",
    ]
    rank = [
        f"ranking.epochs={args.prior_epochs}",
        f"ranking.steps_per_epoch={args.prior_steps}",
        f"ranking.groups_per_batch={args.rank_groups}",
        f"ranking.learning_rate={args.prior_lr}",
        "ranking.val_steps=5",
    ]
    meta = [
        f"meta.epochs={args.prior_epochs}",
        f"meta.steps_per_epoch={args.prior_steps}",
        f"meta.meta_batch_size={args.meta_batch}",
        f"meta.support_size={args.support}",
        f"meta.query_size={args.query}",
        f"meta.inner_learning_rate={args.inner_lr}",
        f"meta.order={args.order}",
        f"meta.adapt={args.adapt}",
        f"meta.learning_rate={args.prior_lr}",
        "meta.val_steps=4",
    ]
    finetune = [
        f"finetune.epochs={args.finetune_epochs}",
        f"finetune.steps_per_epoch={args.finetune_steps}",
        f"finetune.learning_rate={args.finetune_lr}",
        f"finetune.head_learning_rate={args.head_lr}",
        f"finetune.patience={args.patience}",
        "trainer.stages=[finetune]",
    ]
    priors, prior_info = {}, {}

    def weights(workdir, stage):
        return os.path.join(workdir, "checkpoints", stage, "final.weights.h5")

    log("[priors] ranking")
    rank_dir = os.path.join(out, "prior_rank")
    seconds = tfiqa(
        "train",
        BIQ_CONFIG,
        rank_dir,
        common + rank + ["trainer.stages=[rank]"],
        data_dir,
        log,
    )
    priors["rank"] = rank_dir
    prior_info["rank"] = {"s": seconds, **read_metrics(rank_dir)["stages"]["rank"]}
    log("[priors] meta")
    meta_dir = os.path.join(out, "prior_meta")
    seconds = tfiqa(
        "train",
        BIQ_CONFIG,
        meta_dir,
        common + meta + ["trainer.stages=[meta]"],
        data_dir,
        log,
    )
    priors["meta"] = meta_dir
    prior_info["meta"] = {"s": seconds, **read_metrics(meta_dir)["stages"]["meta"]}
    log("[priors] ranking then meta")
    both_dir = os.path.join(out, "prior_rank_meta")
    seconds = tfiqa(
        "train",
        BIQ_CONFIG,
        both_dir,
        common
        + meta
        + ["trainer.stages=[meta]", f"trainer.init_from={weights(rank_dir, 'rank')}"],
        data_dir,
        log,
    )
    priors["rank+meta"] = both_dir
    prior_info["rank+meta"] = {
        "s": seconds,
        **read_metrics(both_dir)["stages"]["meta"],
    }
    init_weights = {
        "rank": weights(rank_dir, "rank"),
        "meta": weights(meta_dir, "meta"),
        "rank+meta": weights(both_dir, "meta"),
    }

    results = {init: [] for init in INITS}
    runs = []
    for split in range(args.splits):
        for init in INITS:
            log(f"[biq2021] split {split}: fine-tune from {init}")
            extra = [f"data.split_index={split}"]
            if init != "scratch":
                extra.append(f"trainer.init_from={init_weights[init]}")
            workdir = os.path.join(out, f"finetune_{init.replace('+', '_')}_{split}")
            tfiqa(
                "train", BIQ_CONFIG, workdir, common + finetune + extra, data_dir, log
            )
            stage = read_metrics(workdir)["stages"]["finetune"]
            entry = {
                "init": init,
                "split": split,
                "srcc": stage["val"].get("srcc"),
                "plcc": stage["val"].get("plcc"),
                "best_epoch": stage.get("best_epoch"),
                "time_s": stage.get("wall_s"),
            }
            if init != "scratch":
                entry["zero_shot_srcc"] = zero_shot_srcc(
                    os.path.join(priors[init], "model.keras"),
                    data_dir,
                    os.path.join(workdir, "splits", "splits.json"),
                    split,
                    args.crop,
                )
            results[init].append(entry)
            runs.append(entry)
            log(f"    val SRCC {entry['srcc']:.3f} PLCC {entry['plcc']:.3f}")

    rows = []
    for init in INITS:
        entries = results[init]
        srccs = [e["srcc"] for e in entries]
        info = prior_info.get(init, {})
        val = info.get("val", {})
        row = {
            "init": init,
            "val_srcc_median": statistics.median(srccs),
            "val_plcc_median": statistics.median(e["plcc"] for e in entries),
            "srcc_per_split": " / ".join(f"{v:.3f}" for v in srccs),
            "best_epochs": " / ".join(str(e["best_epoch"]) for e in entries),
            "zero_shot_srcc_median": statistics.median(
                e["zero_shot_srcc"] for e in entries
            )
            if init != "scratch"
            else "",
            "prior_s": info.get("s", ""),
            "prior_val_srcc": val.get("srcc", ""),
            "prior_val_srcc_0shot": val.get("srcc_0shot", ""),
        }
        rows.append(row)
    return rows, runs, prior_info


def lodo_part(args, data_dir, out, log):
    overrides = [
        f"model.backbone={args.backbone}",
        f"data.crop_size={args.lodo_crop}",
        f"trainer.seed={args.seed}",
        "trainer.verbose=-1",
        f"meta.epochs={args.lodo_epochs}",
        f"meta.steps_per_epoch={args.lodo_steps}",
        f"meta.inner_learning_rate={args.inner_lr}",
        f"meta.order={args.order}",
        f"meta.adapt={args.adapt}",
        f"meta.lodo_test_size={args.lodo_test_size}",
        f"ranking.epochs={args.lodo_epochs}",
        f"ranking.steps_per_epoch={args.lodo_steps}",
    ]
    extra = ["--priors", "meta,rank,scratch", "--shots", args.lodo_shots]
    extra += ["--repeats", str(args.lodo_repeats)]
    if args.lodo_types:
        extra += ["--types", args.lodo_types]
    workdir = os.path.join(out, "lodo")
    log("[lodo] sweep")
    seconds = tfiqa("lodo", LODO_CONFIG, workdir, overrides, data_dir, log, extra)
    with open(os.path.join(workdir, "lodo.csv")) as f:
        raw = list(csv.DictReader(f))
    shots = sorted({int(r["k"]) for r in raw})
    priors = list(dict.fromkeys(r["prior"] for r in raw))
    by_key = {(r["type"], r["prior"], int(r["k"])): float(r["srcc"]) for r in raw}
    types = list(dict.fromkeys(r["type"] for r in raw))
    rows = []
    for t in [*types, "mean"]:
        row = {"held_out": t}
        for p in priors:
            for k in shots:
                if t == "mean":
                    vals = [by_key[(u, p, k)] for u in types]
                    vals = [v for v in vals if v == v]
                    row[f"{p} k={k}"] = statistics.mean(vals) if vals else float("nan")
                else:
                    row[f"{p} k={k}"] = by_key[(t, p, k)]
        rows.append(row)
    columns = ["held_out"] + [f"{p} k={k}" for p in priors for k in shots]
    return rows, columns, seconds


def main():
    from benchmarks.common import benchmark_parser

    parser = benchmark_parser(
        __doc__,
        data_dir=None,
        out="meta_accuracy",
        backbone="mobilenet_v3_small",
        crop=64,
        batch=32,
        splits=3,
        seed=0,
        finetune_epochs=3,
        finetune_steps=0,  # 0: one pass
        finetune_lr=3e-4,
        head_lr=1e-3,
        patience=3,
    )
    parser.add_argument("--parts", default="biq,lodo")
    parser.add_argument("--prior-epochs", type=int, default=2)
    parser.add_argument("--prior-steps", type=int, default=100)
    parser.add_argument("--prior-lr", type=float, default=1e-3)
    parser.add_argument("--rank-groups", type=int, default=4)
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--support", type=int, default=8)
    parser.add_argument("--query", type=int, default=4)
    parser.add_argument("--inner-lr", type=float, default=0.1)
    parser.add_argument("--order", default="second")
    parser.add_argument("--adapt", default="head")
    parser.add_argument("--lodo-crop", type=int, default=64)
    parser.add_argument("--lodo-epochs", type=int, default=2)
    parser.add_argument("--lodo-steps", type=int, default=40)
    parser.add_argument("--lodo-types", default="gaussian_blur,white_noise,jpeg,darken")
    parser.add_argument("--lodo-shots", default="0,10,50")
    parser.add_argument("--lodo-test-size", type=int, default=100)
    parser.add_argument("--lodo-repeats", type=int, default=3)
    parser.add_argument("--notes", default="")
    args = parser.parse_args()
    data_dir = os.path.abspath(args.data_dir)
    out = os.path.abspath(args.out)
    parts = args.parts.split(",")
    from benchmarks.common import write_results

    def log(message):
        print(message, flush=True)

    budget = ", ".join(
        f"{k}={v}" for k, v in vars(args).items() if k not in ("notes", "data_dir")
    )
    if "biq" in parts:
        rows, runs, prior_info = biq_part(args, data_dir, out, log)
        notes = (
            f"Budget: {budget}. Fine-tuning: same budget, seeds and splits for "
            "every prior; validation = the model selected (best epoch by val "
            "SRCC) on its own split; no test split is used. zero_shot_srcc: "
            "the prior's scores on the same validation images before any "
            "fine-tuning. prior_val_srcc(_0shot): the meta stage's own "
            "validation on held-out pristine sources (per-task query SRCC after "
            "(without) adapting to the support set). " + args.notes
        )
        print(
            write_results(
                "meta_accuracy",
                rows,
                [
                    "init",
                    "val_srcc_median",
                    "val_plcc_median",
                    "srcc_per_split",
                    "best_epochs",
                    "zero_shot_srcc_median",
                    "prior_s",
                    "prior_val_srcc",
                    "prior_val_srcc_0shot",
                ],
                "Fine-tuning on BIQ2021-dev from each prior (validation, median "
                f"of {args.splits} splits)",
                notes=notes,
            )
        )
        with open(os.path.join(out, "runs.json"), "w") as f:
            json.dump({"budget": vars(args), "runs": runs}, f, indent=2)
    if "lodo" in parts:
        rows, columns, seconds = lodo_part(args, data_dir, out, log)
        notes = (
            f"Budget: {budget}. Sweep time {seconds:.0f}s. SRCC on "
            f"{args.lodo_test_size} crops of each held-out type from validation "
            "sources (pseudo-MOS labels); k > 0 adapts each prior with the "
            "meta inner loop (SGD at the inner learning rate) on k labelled "
            f"crops from training sources, mean of {args.lodo_repeats} draws. "
            + args.notes
        )
        print(
            write_results(
                "meta_lodo",
                rows,
                columns,
                "Leave-one-distortion-out SRCC (synthetic tasks from pristine/)",
                notes=notes,
            )
        )


if __name__ == "__main__":
    main()
