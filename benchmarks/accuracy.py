"""Does ranking pretraining help? The RankIQA ablation on the shared data.

On `--data-dir` (the shared data folder: `pristine/` and `biq2021-dev/`),
for a single-level head (P5 only) and a multi-level head (P2..P5):
  (a) fine-tune from scratch on BIQ2021-dev;
  (b) rank-pretrain on `pristine/` (validation sources BSDS500/test, Kodak24,
      McMaster), then fine-tune exactly as in (a).
Fine-tuning has the same budget (epochs, steps, learning rates) and the same
seeds in (a) and (b); (b) additionally pays for the ranking stage, whose
cost is reported. Each fine-tuning runs on `--splits` seeded 80/20 content
splits (BIQ2021 photos are their own content); the table gives the median
validation SRCC/PLCC of the model selected on that validation split (PLCC
after the 4-parameter logistic mapping) and the per-split values.

Every run is a `tfiqa train` subprocess with `configs/shared_data_biq2021.yaml`
plus `--set` overrides; run folders live under `--out` and an interrupted
benchmark resumes where it stopped. Budgets are arguments and are recorded
with the results.

Example:
```
.venv/bin/python benchmarks/accuracy.py --data-dir ../shared/data \
    --crop 128 --finetune-epochs 5 --rank-epochs 3 --rank-steps 150
```
"""

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BASE_CONFIG = os.path.join(ROOT, "configs", "shared_data_biq2021.yaml")
HEADS = {"single": ["P5"], "multi": ["P2", "P3", "P4", "P5"]}


def train(workdir, overrides, data_dir, log):
    """Runs `tfiqa train` (resuming if the folder exists); returns metrics.json."""
    metrics_path = os.path.join(workdir, "metrics.json")
    command = [
        sys.executable,
        "-m",
        "tfiqa.cli",
        "train",
        "--config",
        BASE_CONFIG,
        "--data-dir",
        data_dir,
        "--workdir",
        workdir,
    ]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    start = time.time()
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "train.log"), "a") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"tfiqa train failed ({workdir}); see its train.log")
    with open(metrics_path) as f:
        metrics = json.load(f)
    log(f"  done in {time.time() - start:.0f}s: {workdir}")
    return metrics


def per_type_pair_accuracy(rank_dir, crop, batches=2, seed=5):
    """Pair accuracy of the ranker per distortion type on its validation sources.

    Cached in `<rank_dir>/per_type.json`. A type below 0.5 is ranked
    backwards: the model scores its more distorted copies higher.
    """
    cache = os.path.join(rank_dir, "per_type.json")
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    import keras

    import tfiqa.models  # noqa: F401  (registers IQAModel for loading)
    from tfiqa.data.ranking import ranking_dataset
    from tfiqa.data.splits import load_splits
    from tfiqa.models.scoring import predict
    from tfiqa.training.losses import ranking_hinge_terms

    with open(os.path.join(rank_dir, "metrics.json")) as f:
        types = json.load(f)["stages"]["rank"]["types"]
    model = keras.saving.load_model(
        os.path.join(rank_dir, "model.keras"), compile=False
    )
    val = load_splits(os.path.join(rank_dir, "splits", "pristine.json"))[0]["val"]
    result = {}
    for name in types:
        correct = pairs = 0.0
        for images, labels in ranking_dataset(val, [name], crop, 4, seed).take(batches):
            scores = predict(model, images.numpy())
            _, n, c = ranking_hinge_terms(scores, labels["group"], labels["level"], 0.0)
            correct, pairs = correct + float(c), pairs + float(n)
        result[name] = correct / pairs
    with open(cache, "w") as f:
        json.dump(result, f, indent=2)
    return result


def zero_shot_srcc(model_path, data_dir, splits_file, split, crop):
    """SRCC on a split's validation images of a model never shown MOS.

    Applied to the rank-pretrained model, it says whether ranking synthetic
    distortions alone taught anything about BIQ2021's authentic ones.
    """
    import keras

    import tfiqa.models  # noqa: F401  (registers IQAModel for loading)
    from tfiqa.data.pipeline import mos_dataset
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import load_splits, select
    from tfiqa.metrics import srcc
    from tfiqa.models.scoring import predict

    model = keras.saving.load_model(model_path, compile=False)
    records = read_dataset("csv", os.path.join(data_dir, "biq2021-dev"))
    val = select(records, load_splits(splits_file)[split])["val"]
    predictions, targets = [], []
    for images, mos in mos_dataset(val, crop, 64, training=False):
        predictions.extend(predict(model, images))
        targets.extend(mos.numpy())
    return float(srcc(predictions, targets))


def main():
    from benchmarks.common import benchmark_parser

    parser = benchmark_parser(
        __doc__,
        data_dir=None,
        out="accuracy",
        backbone="mobilenet_v3_small",
        crop=128,
        batch=32,
        splits=3,
        seed=0,
        finetune_epochs=5,
        finetune_steps=0,  # 0: one pass
        finetune_lr=3e-4,
        head_lr=1e-3,
        patience=3,
    )
    parser.add_argument("--heads", default="single,multi")
    parser.add_argument("--rank-epochs", type=int, default=3)
    parser.add_argument("--rank-steps", type=int, default=150)
    parser.add_argument("--rank-groups", type=int, default=4)
    parser.add_argument("--rank-lr", type=float, default=1e-3)
    parser.add_argument("--rank-margin", type=float, default=0.05)
    parser.add_argument("--rank-val-steps", type=int, default=10)
    parser.add_argument(
        "--rank-types", default="", help="Comma list (default: all fast KADID types)"
    )
    parser.add_argument(
        "--tag", default="", help="Prefix of the run folders (compare variants)"
    )
    parser.add_argument("--notes", default="")
    args = parser.parse_args()
    data_dir = os.path.abspath(args.data_dir)
    out = os.path.abspath(args.out)

    def log(message):
        print(message, flush=True)

    common = [
        f"model.backbone={args.backbone}",
        "model.weights=none",
        f"data.crop_size={args.crop}",
        f"data.batch_size={args.batch}",
        f"data.num_splits={args.splits}",
        f"trainer.seed={args.seed}",
        "trainer.verbose=0",
    ]
    finetune = [
        f"finetune.epochs={args.finetune_epochs}",
        f"finetune.steps_per_epoch={args.finetune_steps}",
        f"finetune.learning_rate={args.finetune_lr}",
        f"finetune.head_learning_rate={args.head_lr}",
        f"finetune.patience={args.patience}",
        "trainer.stages=[finetune]",
    ]
    rank = [
        f"ranking.epochs={args.rank_epochs}",
        f"ranking.steps_per_epoch={args.rank_steps}",
        f"ranking.groups_per_batch={args.rank_groups}",
        f"ranking.learning_rate={args.rank_lr}",
        f"ranking.margin={args.rank_margin}",
        f"ranking.val_steps={args.rank_val_steps}",
        "trainer.stages=[rank]",
    ]
    if args.rank_types:
        rank.append(f"ranking.types=[{args.rank_types}]")
    prefix = f"{args.tag}_" if args.tag else ""
    rows, runs = [], []
    for head in args.heads.split(","):
        levels = "[" + ",".join(HEADS[head]) + "]"
        model = [f"model.levels={levels}"]
        log(f"[{head}] rank pretraining")
        rank_dir = os.path.join(out, f"{prefix}{head}_rank")
        rank_metrics = train(rank_dir, common + model + rank, data_dir, log)
        rank_stage = rank_metrics["stages"]["rank"]
        rank_weights = os.path.join(rank_dir, "checkpoints", "rank", "final.weights.h5")
        per_type = per_type_pair_accuracy(rank_dir, args.crop)
        backwards = sorted((v, k) for k, v in per_type.items() if v < 0.5)
        log(f"  ranked backwards: {', '.join(f'{k} {v:.2f}' for v, k in backwards)}")
        results = {"scratch": [], "rank": []}
        zero_shot = []
        for split in range(args.splits):
            for init in ("scratch", "rank"):
                log(f"[{head}] split {split}: fine-tune from {init}")
                extra = [f"data.split_index={split}"]
                if init == "rank":
                    extra.append(f"trainer.init_from={rank_weights}")
                name = f"{head}_{init}_split{split}"
                if init == "rank":
                    name = prefix + name
                workdir = os.path.join(out, name)
                metrics = train(
                    workdir, common + model + finetune + extra, data_dir, log
                )
                stage = metrics["stages"]["finetune"]
                entry = {
                    "head": head,
                    "init": init,
                    "split": split,
                    "srcc": stage["val"].get("srcc"),
                    "plcc": stage["val"].get("plcc"),
                    "best_epoch": stage.get("best_epoch"),
                    "epochs_done": stage.get("epochs_done"),
                    "time_s": stage.get("wall_s"),
                    "history": stage.get("history"),
                }
                if init == "rank":
                    entry["zero_shot_srcc"] = zero_shot_srcc(
                        os.path.join(rank_dir, "model.keras"),
                        data_dir,
                        os.path.join(workdir, "splits", "splits.json"),
                        split,
                        args.crop,
                    )
                    zero_shot.append(entry["zero_shot_srcc"])
                results[init].append(entry)
                runs.append(entry)
                log(f"    val SRCC {entry['srcc']:.3f} PLCC {entry['plcc']:.3f}")
        for init in ("scratch", "rank"):
            entries = results[init]
            srccs = [e["srcc"] for e in entries]
            plccs = [e["plcc"] for e in entries]
            rows.append(
                {
                    "head": f"{head} ({'+'.join(HEADS[head])})",
                    "init": "from scratch" if init == "scratch" else "rank-pretrained",
                    "val_srcc_median": statistics.median(srccs),
                    "val_plcc_median": statistics.median(plccs),
                    "srcc_per_split": " / ".join(f"{v:.3f}" for v in srccs),
                    "best_epochs": " / ".join(str(e["best_epoch"]) for e in entries),
                    "finetune_s_median": statistics.median(
                        e["time_s"] for e in entries
                    ),
                    "rank_val_pair_acc": rank_stage["val"].get("pair_accuracy")
                    if init == "rank"
                    else "",
                    "rank_val_srcc": rank_stage["val"].get("srcc")
                    if init == "rank"
                    else "",
                    "rank_s": rank_stage.get("wall_s") if init == "rank" else "",
                    "rank_zero_shot_srcc": statistics.median(zero_shot)
                    if init == "rank"
                    else "",
                    "rank_backwards_types": ", ".join(k for _, k in backwards)
                    if init == "rank"
                    else "",
                }
            )

    from benchmarks.common import write_results

    budget = {k: v for k, v in vars(args).items() if k not in ("notes",)}
    notes = (
        "Budget: "
        + ", ".join(f"{k}={v}" for k, v in budget.items())
        + ". Validation = the model selected (best epoch by val SRCC) on its "
        "own validation split; no test split is used. " + args.notes
    )
    text = write_results(
        f"accuracy{'_' + args.tag if args.tag else ''}",
        rows,
        [
            "head",
            "init",
            "val_srcc_median",
            "val_plcc_median",
            "srcc_per_split",
            "best_epochs",
            "finetune_s_median",
            "rank_val_pair_acc",
            "rank_val_srcc",
            "rank_s",
            "rank_zero_shot_srcc",
            "rank_backwards_types",
        ],
        "Ranking pretraining ablation on BIQ2021-dev (validation, median of splits)",
        notes=notes,
    )
    with open(os.path.join(out, f"{prefix}runs.json"), "w") as f:
        json.dump({"budget": budget, "runs": runs}, f, indent=2)
    print(text)


if __name__ == "__main__":
    main()
