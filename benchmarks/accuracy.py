"""Does ranking pretraining help, and how should it hand over to fine-tuning?

The RankIQA ablation on the shared data (`--data-dir`: `pristine/` and
`biq2021-dev/`), measured under the protocol of `benchmarks/README.md`:
every arm is fine-tuned on `--splits` seeded content-disjoint splits of
BIQ2021-dev with `--seeds` seeds each, selected on the split's validation
part and scored once on its **test** part; `benchmarks/arms.py` gives the
median, bootstrap 95% intervals, paired differences to `scratch` and the
protocol checks. Arms (`--arms`):

- `scratch`: fine-tuning from random weights;
- `rank`: rank-pretrain on `pristine/` (one ranker per seed), then
  fine-tune exactly as `scratch`;
- `rank_reinit`: as `rank`, with a fresh score layer at fine-tune start
  (`stages.finetune.reinit_score`);
- `rank_logit`: the ranker trained on the head's logits with a margin in
  logit units (`stages.rank.logit_margin`), then fine-tuned as `rank_reinit`.

Each arm's budget (ranking + fine-tuning steps, images seen, seconds) is
recorded; the prior arms pay for ranking, so `scratch` has a smaller budget
unless `--scratch-extra-steps` gives it the difference.

Every run is a `tfiqa train` subprocess with `configs/shared_data_biq2021.yaml`
plus `--set` overrides; run folders live under `--out` and an interrupted
benchmark resumes where it stopped.

Example:
```
.venv/bin/python benchmarks/accuracy.py --data-dir ../shared/data \
    --crop 128 --finetune-epochs 5 --rank-epochs 3 --rank-steps 150
```
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, final_weights, read_metrics, run_tfiqa, script  # noqa: E402

BASE_CONFIG = os.path.join(ROOT, "configs", "shared_data_biq2021.yaml")
HEADS = {"single": ["P5"], "multi": ["P2", "P3", "P4", "P5"]}


def train(workdir, overrides, data_dir):
    """Runs `tfiqa train` (resuming if the folder exists); returns metrics.json."""
    run_tfiqa("train", BASE_CONFIG, workdir, overrides, data_dir)
    return read_metrics(workdir)


ARMS = ("scratch", "rank", "rank_reinit", "rank_logit")


def ranker_of(arm):
    """The ranking prior an arm starts from."""
    return "rank_logit" if arm == "rank_logit" else "rank"


def run(args):
    data_dir = os.path.abspath(args.data_dir)
    out = os.path.abspath(args.out)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"--arms must be among {list(ARMS)}. Received: {unknown}")

    def log(message):
        print(message, flush=True)

    common = [
        f"model.backbone={args.backbone}",
        "model.weights=none",
        f"model.levels=[{args.levels}]",
        f"data.crop_size={args.crop}",
        f"data.batch_size={args.batch}",
        f"data.num_splits={args.splits}",
        f"data.val_ratio={args.val_ratio}",
        f"data.test_ratio={args.test_ratio}",
        "data.split_seed=0",  # the same content splits for every seed
        "runtime.verbose=0",
    ]
    rank = [
        f"stages.rank.schedule.epochs={args.rank_epochs}",
        f"stages.rank.schedule.steps_per_epoch={args.rank_steps}",
        f"stages.rank.groups_per_batch={args.rank_groups}",
        f"stages.rank.optimizer.learning_rate={args.rank_lr}",
        f"stages.rank.margin={args.rank_margin}",
        f"stages.rank.schedule.val_steps={args.rank_val_steps}",
        "stages.order=[rank]",
    ]
    if args.rank_types:
        rank.append(f"stages.rank.types=[{args.rank_types}]")
    rank_steps = args.rank_epochs * args.rank_steps
    rank_images = rank_steps * args.rank_groups * 6  # pristine + 5 levels
    results = []
    for seed in range(args.seeds):
        rankers = {}
        for variant in sorted({ranker_of(a) for a in arms if a != "scratch"}):
            extra = [f"runtime.seed={seed}"]
            if variant == "rank_logit":
                extra.append(f"stages.rank.logit_margin={args.rank_logit_margin}")
            folder = os.path.join(out, f"{variant}_seed{seed}")
            log(f"[seed {seed}] {variant} pretraining")
            metrics = train(folder, common + rank + extra, data_dir)
            rankers[variant] = (
                final_weights(folder, "rank"),
                metrics["stages"]["rank"].get("wall_s", 0.0),
            )
        for split in range(args.splits):
            for arm in arms:
                results.append(
                    run_arm(args, arm, split, seed, common, rankers, data_dir, out, log)
                )
                results[-1]["budget"]["steps"] += rank_steps if arm != "scratch" else 0
                results[-1]["budget"]["images_seen"] += (
                    rank_images if arm != "scratch" else 0
                )

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from arms import summarize_arms

    budget = {k: v for k, v in vars(args).items() if k != "notes"}
    summary = summarize_arms(
        results,
        args.name,
        baseline="scratch" if "scratch" in arms else None,
        title="Ranking pretraining ablation on BIQ2021-dev (test splits)",
        notes="Arguments: "
        + ", ".join(f"{k}={v}" for k, v in budget.items())
        + ". "
        + args.notes,
    )
    with open(os.path.join(out, "runs.json"), "w") as f:
        json.dump({"arguments": budget, "runs": results}, f, indent=2)
    print(json.dumps(summary["checks"]))


def run_arm(args, arm, split, seed, common, rankers, data_dir, out, log):
    """Fine-tunes one arm on one split with one seed; returns its result."""
    steps = args.finetune_steps + (args.scratch_extra_steps if arm == "scratch" else 0)
    extra = [
        f"stages.finetune.schedule.epochs={args.finetune_epochs}",
        f"stages.finetune.schedule.steps_per_epoch={steps}",
        f"stages.finetune.optimizer.learning_rate={args.finetune_lr}",
        f"stages.finetune.optimizer.head_learning_rate={args.head_lr}",
        f"stages.finetune.schedule.patience={args.patience}",
        "stages.order=[finetune]",
        f"data.split_index={split}",
        f"runtime.seed={seed}",
    ]
    rank_seconds = 0.0
    if arm != "scratch":
        weights, rank_seconds = rankers[ranker_of(arm)]
        extra.append(f"runtime.init_from={weights}")
    if arm in ("rank_reinit", "rank_logit"):
        extra.append("stages.finetune.reinit_score=true")
    log(f"[seed {seed}] split {split}: {arm}")
    workdir = os.path.join(out, f"{arm}_split{split}_seed{seed}")
    metrics = train(workdir, common + extra, data_dir)
    stage = metrics["stages"]["finetune"]
    test = metrics.get("test") or {}
    done = stage.get("epochs_done") or args.finetune_epochs
    log(f"    test SRCC {test.get('srcc')} PLCC {test.get('plcc')}")
    return {
        "arm": arm,
        "split": split,
        "seed": seed,
        "srcc": test.get("srcc"),
        "plcc": test.get("plcc"),
        "best_epoch": stage.get("best_epoch"),
        "budget": {
            # Early stopping can end an arm sooner; the planned steps count.
            "steps": args.finetune_epochs * steps,
            "images_seen": args.finetune_epochs * steps * args.batch,
            "seconds": float(stage.get("wall_s") or 0.0) + float(rank_seconds),
        },
        "epochs_done": done,
    }


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
