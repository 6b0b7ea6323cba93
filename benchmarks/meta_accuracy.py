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
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    ROOT,
    final_weights,
    read_metrics,
    run_tfiqa,
    script,
    write_results,
)

BIQ_CONFIG = os.path.join(ROOT, "configs", "metaiqa_biq2021.yaml")
LODO_CONFIG = os.path.join(ROOT, "configs", "metaiqa_lodo.yaml")
INITS = ("scratch", "rank", "meta", "rank+meta")


def zero_shot_srcc(model_path, data_dir, splits_file, split, crop):
    """SRCC of a prior's scores on a split's validation images (center crops)."""
    import numpy as np
    import tensorflow as tf

    from tfiqa.data.pipeline import mos_dataset
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import load_splits, select
    from tfiqa.inference.backends.keras import load_keras_model
    from tfiqa.metrics import srcc

    model = load_keras_model(model_path)
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
        f"runtime.seed={args.seed}",
        "runtime.verbose=0",
    ]
    rank = [
        f"stages.rank.schedule.epochs={args.prior_epochs}",
        f"stages.rank.schedule.steps_per_epoch={args.prior_steps}",
        f"stages.rank.groups_per_batch={args.rank_groups}",
        f"stages.rank.optimizer.learning_rate={args.prior_lr}",
        "stages.rank.schedule.val_steps=5",
    ]
    meta = [
        f"stages.meta.schedule.epochs={args.prior_epochs}",
        f"stages.meta.schedule.steps_per_epoch={args.prior_steps}",
        f"stages.meta.meta_batch_size={args.meta_batch}",
        f"stages.meta.support_size={args.support}",
        f"stages.meta.query_size={args.query}",
        f"stages.meta.inner_learning_rate={args.inner_lr}",
        f"stages.meta.order={args.order}",
        f"stages.meta.adapt={args.adapt}",
        f"stages.meta.optimizer.learning_rate={args.prior_lr}",
        "stages.meta.schedule.val_steps=4",
    ]
    finetune = [
        f"stages.finetune.schedule.epochs={args.finetune_epochs}",
        f"stages.finetune.schedule.steps_per_epoch={args.finetune_steps}",
        f"stages.finetune.optimizer.learning_rate={args.finetune_lr}",
        f"stages.finetune.optimizer.head_learning_rate={args.head_lr}",
        f"stages.finetune.schedule.patience={args.patience}",
        "stages.order=[finetune]",
    ]
    rank_dir = os.path.join(out, "prior_rank")
    stages = ["stages.order=[meta]"]
    prior_runs = (  # name, folder, settings, the stage whose weights it gives
        ("rank", rank_dir, rank + ["stages.order=[rank]"], "rank"),
        ("meta", os.path.join(out, "prior_meta"), meta + stages, "meta"),
        (
            "rank+meta",
            os.path.join(out, "prior_rank_meta"),
            meta + stages + [f"runtime.init_from={final_weights(rank_dir, 'rank')}"],
            "meta",
        ),
    )
    priors, prior_info, init_weights = {}, {}, {}
    for name, folder, settings, stage in prior_runs:
        log(f"[priors] {name}")
        seconds = run_tfiqa("train", BIQ_CONFIG, folder, common + settings, data_dir)
        priors[name] = folder
        prior_info[name] = {
            "s": seconds,
            **read_metrics(folder)["stages"][stage],
        }
        init_weights[name] = final_weights(folder, stage)

    results = {init: [] for init in INITS}
    runs = []
    for split in range(args.splits):
        for init in INITS:
            log(f"[biq2021] split {split}: fine-tune from {init}")
            extra = [f"data.split_index={split}"]
            if init != "scratch":
                extra.append(f"runtime.init_from={init_weights[init]}")
            workdir = os.path.join(out, f"finetune_{init.replace('+', '_')}_{split}")
            run_tfiqa("train", BIQ_CONFIG, workdir, common + finetune + extra, data_dir)
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
        f"runtime.seed={args.seed}",
        "runtime.verbose=-1",
        f"stages.meta.schedule.epochs={args.lodo_epochs}",
        f"stages.meta.schedule.steps_per_epoch={args.lodo_steps}",
        f"stages.meta.inner_learning_rate={args.inner_lr}",
        f"stages.meta.order={args.order}",
        f"stages.meta.adapt={args.adapt}",
        f"protocols.lodo.test_size={args.lodo_test_size}",
        f"stages.rank.schedule.epochs={args.lodo_epochs}",
        f"stages.rank.schedule.steps_per_epoch={args.lodo_steps}",
    ]
    extra = ["--priors", "meta,rank,scratch", "--shots", args.lodo_shots]
    extra += ["--repeats", str(args.lodo_repeats)]
    if args.lodo_types:
        extra += ["--types", args.lodo_types]
    workdir = os.path.join(out, "lodo")
    log("[lodo] sweep")
    seconds = run_tfiqa("lodo", LODO_CONFIG, workdir, overrides, data_dir, extra)
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


def run(args):
    data_dir = os.path.abspath(args.data_dir)
    out = os.path.abspath(args.out)
    parts = args.parts.split(",")

    def log(message):
        print(message, flush=True)

    budget = ", ".join(
        f"{k}={v}"
        for k, v in vars(args).items()
        if k not in ("notes", "data_dir", "results_dir")
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
    sys.exit(script(__file__, __doc__))
