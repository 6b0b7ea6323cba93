"""The seed methods on offline pretrained features: five arms, test split.

Every arm starts from the same pretrained VGG16 (`model.weights: hed`) and
ends with the same fine-tuning: `configs/hed_vgg16_biq2021.yaml` (backbone
frozen, multi-level mean+std head trained on cached pooled features), on one
centre crop per photo for training and scoring (`--views`), so that each
prior costs one feature pass. The arms differ in the prior the fine-tuning
starts from:

  finetune     no prior (the transfer baseline)
  finetune_single  the same with the single-level head (P5): does a prior
               change what the last block alone knows?
  rank         ranking prior on distorted `pristine/` photos, multi-level head
  rank_single  the same prior, single-level head (P5)
  meta         MetaIQA prior (bi-level MAML on distortion-specific tasks)
  rank_meta    ranking prior, then the MetaIQA prior on top of it
  probe        ridge regression on frozen features (`benchmarks/transfer.py`'s
               rows; copied when present)

Priors train the backbone above `--freeze` (lower blocks keep the pretrained
weights) with equal image budgets (`--prior-images`), once per seed, and are
shared by the five splits. Fine-tuning: 5 content-disjoint splits of
biq2021-dev (`benchmarks/out/transfer/splits/`) x seeds, model selection on
validation, one test score per run. Rows: `--out/arm_rows.json`; priors:
`--out/priors.json`; summary of every arm in the rows file, whichever
`--arms` this call ran (medians, bootstrap intervals, paired differences to
`finetune`): `benchmarks/results/transfer_arms.{json,md}`.

Example (parameters: `benchmarks/configs/transfer_priors.yaml`):
```
.venv/bin/python benchmarks/run.py transfer_priors --set data_dir=../shared/data
```
"""

import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from arms import summarize_arms  # noqa: E402
from common import script, write_results  # noqa: E402
from transfer import CONFIG, make_split_files, pending_runs, run_arm  # noqa: E402

PRIOR_STAGES = {"rank": ["rank"], "meta": ["meta"], "rank_meta": ["meta"]}
# The prior a prior starts from (its steps and images count for both).
PRIOR_INIT = {"rank_meta": "rank"}
RANK_GROUPS = 4
RANK_GROUP_IMAGES = 6  # a reference and its 5 distortion levels
META_TASKS, META_SUPPORT, META_QUERY = 2, 8, 4
# Prior each arm starts from, and its fine-tuning overrides.
ARMS = {
    "finetune": (None, []),
    "finetune_single": (None, ["model.levels=[P5]"]),
    "rank": ("rank", []),
    "rank_single": ("rank", ["model.levels=[P5]"]),
    "meta": ("meta", []),
    "rank_meta": ("rank_meta", []),
}


def prior_settings(name, args, seed):
    """Overrides of the recipe config that train prior `name`."""
    crop = args.prior_crop
    common = [
        f"data.root={os.path.abspath(args.data_dir)}",
        "data.pristine_dir=pristine",
        "data.pristine_val_dirs=[BSDS500/test, Kodak24, McMaster]",
        f"data.crop_size={crop}",
        f"runtime.seed={seed}",
        f"stages.order={PRIOR_STAGES[name]}",
        f"runtime.mixed_precision={args.precision}",
        "runtime.verbose=1",
    ]
    per_step = prior_step_images(name)
    prior_steps = max(1, args.prior_images // per_step // 2)
    if name == "rank":
        return common + [
            f"stages.rank.groups_per_batch={RANK_GROUPS}",
            f"stages.rank.freeze_backbone={args.freeze}",
            "stages.rank.optimizer.learning_rate=1.0e-4",
            "stages.rank.schedule.epochs=2",
            f"stages.rank.schedule.steps_per_epoch={prior_steps}",
            "stages.rank.schedule.val_steps=4",
        ]
    tasks, support, query = META_TASKS, META_SUPPORT, META_QUERY
    meta = [
        "stages.meta.task_source=synthetic",
        "stages.meta.label=pseudo_mos",
        f"stages.meta.meta_batch_size={tasks}",
        f"stages.meta.support_size={support}",
        f"stages.meta.query_size={query}",
        "stages.meta.val_query_size=16",
        "stages.meta.inner_steps=1",
        "stages.meta.inner_learning_rate=0.01",
        "stages.meta.order=second",
        "stages.meta.adapt=head",
        "stages.meta.optimizer.learning_rate=1.0e-4",
        "stages.meta.optimizer.head_learning_rate=1.0e-3",
        f"stages.meta.freeze_backbone={args.freeze}",
        "stages.meta.schedule.epochs=2",
        f"stages.meta.schedule.steps_per_epoch={prior_steps}",
        "stages.meta.schedule.val_steps=2",
    ]
    if name == "rank_meta":
        meta.append(f"runtime.init_from={prior_weights('rank', args, seed)}")
    return common + meta


def prior_step_images(name):
    """Images one training step of prior `name` reads."""
    if name == "rank":
        return RANK_GROUPS * RANK_GROUP_IMAGES
    return META_TASKS * (META_SUPPORT + META_QUERY)


def prior_budget(name, args, seed):
    """{"steps", "images_seen"} prior `name` (seed `seed`) actually trained:
    the epochs its run's metrics.json says were done (an early stop counts
    what ran, not the plan) times its config's steps per epoch, plus the
    prior it started from."""
    from tfiqa.config import load_config
    from tfiqa.errors import DataError

    run = prior_dir(name, args, seed)
    path = os.path.join(run, "metrics.json")
    if not os.path.isfile(path):
        raise DataError(f"Prior run has no metrics.json. Received: {path}")
    with open(path) as f:
        stages = json.load(f)["stages"]
    config = load_config(os.path.join(run, "config.yaml"))
    steps = 0
    for stage in PRIOR_STAGES[name]:
        section = config.stages.rank if stage == "rank" else config.stages.meta
        steps += int(stages[stage]["epochs_done"]) * int(
            section.schedule.steps_per_epoch
        )
    budget = {"steps": steps, "images_seen": steps * prior_step_images(name)}
    if name in PRIOR_INIT:
        earlier = prior_budget(PRIOR_INIT[name], args, seed)
        budget = {k: budget[k] + earlier[k] for k in budget}
    return budget


def arm_budget(row, prior_budgets, batch_size):
    """The whole budget of one arm run: its fine-tuning steps and images
    actually run plus, for an arm with a prior, the prior's (a prior is
    trained once per seed and shared by the splits; each run that starts
    from it counts all of it, as a run without sharing would pay)."""
    finetune = int(row["epochs_done"]) * int(row["budget"]["steps_per_epoch"])
    budget = {"steps": finetune, "images_seen": finetune * batch_size}
    if row.get("prior"):
        prior = prior_budgets[(row["prior"], row["seed"])]
        budget = {k: budget[k] + prior[k] for k in budget}
    budget["seconds"] = row["budget"]["seconds"]
    return budget


def prior_dir(name, args, seed):
    return os.path.join(os.path.abspath(args.out), "priors", f"{name}_seed{seed}")


def prior_weights(name, args, seed):
    stage = PRIOR_STAGES[name][-1]
    return os.path.join(
        prior_dir(name, args, seed), "checkpoints", stage, "final.weights.h5"
    )


def arm_weights(prior, overrides, args, seed):
    """Initial weights of an arm: the prior's, or for a head of other levels
    the prior's backbone under a freshly initialised head."""
    weights = prior_weights(prior, args, seed)
    if not overrides:
        return weights
    import keras

    from tfiqa.config import load_config
    from tfiqa.models import build_model

    tag = hashlib.sha1(repr(overrides).encode()).hexdigest()[:8]
    path = weights.replace(".weights.h5", f"_{tag}.weights.h5")
    if not os.path.isfile(path):
        config = load_config(CONFIG)
        prior_model = build_model(config.model, crop_size=config.data.crop_size)
        prior_model.load_weights(weights)
        keras.utils.set_random_seed(seed)
        arm = build_model(
            load_config(CONFIG, overrides).model,
            crop_size=config.data.crop_size,
        )
        arm.backbone.set_weights(prior_model.backbone.get_weights())
        arm.save_weights(path)
    return path


def train_prior(name, args, seed):
    """Trains (or finds) prior `name` for `seed`; returns its summary."""
    from tfiqa.config import load_config
    from tfiqa.training.experiment import run_experiment

    config = load_config(CONFIG, prior_settings(name, args, seed))
    start = time.time()
    metrics = run_experiment(config, prior_dir(name, args, seed))
    stage = PRIOR_STAGES[name][-1]
    result = metrics["stages"][stage]
    return {
        "prior": name,
        "seed": seed,
        "weights": prior_weights(name, args, seed),
        **prior_budget(name, args, seed),
        "val": result.get("val", {}),
        "seconds": time.time() - start,
    }


def run(args):
    from tfiqa.files import write_json_atomic

    out = os.path.abspath(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in args.arms.split(",") if n]
    _, split_files = make_split_files(os.path.abspath(args.data_dir), out, args.splits)
    priors_path = os.path.join(out, "priors.json")
    rows_path = os.path.join(out, "arm_rows.json")
    priors = _load(priors_path)
    rows = _load(rows_path)
    needed = [ARMS[n][0] for n in names if ARMS[n][0]]
    order = [p for p in ("rank", "meta", "rank_meta") if p in needed]
    if "rank_meta" in order and "rank" not in order:
        order.insert(0, "rank")
    for seed in seeds:
        for name in order:
            if any(p["prior"] == name and p["seed"] == seed for p in priors):
                continue
            priors.append(train_prior(name, args, seed))
            print(json.dumps(priors[-1]), flush=True)
            write_json_atomic(priors_path, priors)
    done = {(r["arm"], r["split"], r["seed"]) for r in rows}
    views = [
        f"stages.finetune.cache_views={args.views}",
        f"model.scoring.crops={args.views}",
    ]
    for name in names:
        prior, overrides = ARMS[name]
        for split_file, seed in pending_runs(name, split_files, seeds, done):
            init = (
                [f"runtime.init_from={arm_weights(prior, overrides, args, seed)}"]
                if prior
                else []
            )
            row = run_arm(
                name,
                CONFIG,
                views + overrides + init,
                os.path.abspath(args.data_dir),
                out,
                split_file,
                seed,
            )
            row["prior"] = prior
            print(json.dumps(row), flush=True)
            rows.append(row)
            write_json_atomic(rows_path, rows)
    summarize(args, out)


def summarize(args, out):
    """Writes `transfer_arms` from every arm and prior on file in `out`, not
    only those this call ran: `--arms` picks what to run, and a run of one arm
    must not shrink the table to that arm."""
    priors = _load(os.path.join(out, "priors.json"))
    rows = _load(os.path.join(out, "arm_rows.json"))
    if not rows:
        raise ValueError(f"No arm runs to summarise in {out}/arm_rows.json")
    seeds = sorted({r["seed"] for r in rows})
    from tfiqa.config import load_config

    batch_size = load_config(CONFIG).data.batch_size
    budgets = {
        (p, seed): prior_budget(p, args, seed)
        for p, seed in {(r["prior"], r["seed"]) for r in rows if r.get("prior")}
    }
    rows = [{**r, "budget": arm_budget(r, budgets, batch_size)} for r in rows]
    probe = [r for r in _load(os.path.join(out, "rows.json")) if r["arm"] == "probe"]
    probe = [r for r in probe if r["seed"] in seeds]
    order = [p for p in PRIOR_STAGES if any(q["prior"] == p for q in priors)]
    prior_costs = {
        p: {
            "steps": [b["steps"] for (q, _), b in sorted(budgets.items()) if q == p],
            "seconds": [round(q["seconds"]) for q in priors if q["prior"] == p],
        }
        for p in order
    }
    if priors:
        prior_drift(priors)
    arms = {r["arm"] for r in rows}
    return summarize_arms(
        rows,
        "transfer_arms",
        baseline="finetune" if "finetune" in arms else None,
        title="Seed methods on offline pretrained VGG16 features, BIQ2021-dev test",
        notes=(
            f"{args.splits} content-disjoint splits x seeds {seeds}; every arm "
            f"fine-tunes the frozen-backbone recipe on {args.views} centre "
            f"view(s) per photo. Priors (one per seed, shared by the splits) "
            f"train above {args.freeze} on {args.prior_crop} px crops of "
            f"distorted pristine photos, {args.prior_images} images each "
            f"({args.precision}); their steps and seconds: {prior_costs}. Each "
            "arm's budget counts its fine-tuning and its prior's steps and "
            "images as they ran. " + _probe_note(probe)
        ),
    )


def prior_drift(priors):
    """How far each prior moved the pretrained backbone, per VGG16 block:
    ||W_prior - W_pretrained|| / ||W_pretrained|| over the block's kernels."""
    import numpy as np

    from tfiqa.config import load_config
    from tfiqa.models import build_model

    config = load_config(CONFIG)
    start = build_model(config.model, crop_size=config.data.crop_size)
    pretrained = {w.path: np.asarray(w) for w in start.backbone.weights}
    rows = []
    for prior in priors:
        start.load_weights(prior["weights"])
        change, norm = {}, {}
        for w in start.backbone.weights:
            block = w.path.split("/")[0].split("_")[0]
            if not block.startswith("block") or "kernel" not in w.path:
                continue
            change[block] = change.get(block, 0.0) + float(
                np.sum((np.asarray(w) - pretrained[w.path]) ** 2)
            )
            norm[block] = norm.get(block, 0.0) + float(np.sum(pretrained[w.path] ** 2))
        row = {"prior": prior["prior"], "seed": prior["seed"]}
        row.update({b: (change[b] / norm[b]) ** 0.5 for b in sorted(change)})
        row.update({f"val_{k}": v for k, v in prior["val"].items()})
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_results(
        "transfer_prior_drift",
        rows,
        columns,
        "How far each prior moved the pretrained VGG16, per block",
        notes=(
            "Relative L2 change of the block's convolution kernels from the "
            "pretrained (`hed`) weights to the prior's; val_*: the prior's own "
            "validation on distorted photos of pristine/ (ranking: pair "
            "accuracy and SRCC of level vs score; meta: SRCC and loss after "
            "adaptation, and 0-shot)."
        ),
    )
    return rows


def _probe_note(probe):
    if not probe:
        return ""
    import numpy as np

    by_split = {}
    for r in probe:
        by_split[r["split"]] = r["srcc"]
    return (
        "Linear probe (ridge on P2..P5 of one centre crop, "
        "`transfer_probe.md`): median test SRCC "
        f"{np.median(list(by_split.values())):.3f}."
    )


def _load(path):
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return []


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
