"""`run_experiment`: the stages of one config, in order, on one `IQAModel`.

Work directory layout:
```
config.yaml           the resolved config
model.keras           the final scoring model (after the last stage)
metrics.json          per-stage validation metrics, history, seeds, test
checkpoints/<stage>/  epoch checkpoints (model, optimizers, counters),
                      final.weights.h5 + done.json once the stage is done,
                      best.weights.h5 + best.json (finetune model selection)
logs/<stage>/         TensorBoard event files
splits/               splits.json (MOS data), pristine.json (ranking sources),
                      <stage>.json: the ids each stage trained, validated
                      and tested on (see `tfiqa.protocols.audit`)
data/                 generated images (quickstart) when no folder is given
```
Running again with the same work directory resumes: finished stages are
skipped (their final weights are loaded) and the current stage restarts
from its last epoch checkpoint.

Content the fine-tuning stage validates or tests on is kept out of the
earlier stages: with a pseudo-MOS set synthesised from the pristine images,
its validation sources move from the pristine training sources to the
pristine validation sources and its test sources leave both; meta
tasks read from the fine-tuning dataset's own folder drop those references.
Types in `meta.holdout` are held out of every stage (ranking, meta tasks and
fine-tuning training/validation records; the test split keeps them). At the
end the run checks its `splits/<stage>.json` files for leaks.
"""

import dataclasses
import json
import logging
import math
import os
import time

import numpy as np

from tfiqa.config import save_config
from tfiqa.errors import ConfigError, DataError, LeakError
from tfiqa.files import atomic_path, write_json_atomic, write_text_atomic
from tfiqa.protocols.audit import source_id
from tfiqa.training.stage_splits import (
    check_run,
    keep_out_of_priors,
    reserved_ids,
    write_data_splits,
    write_meta_split,
)
from tfiqa.training.stage_utils import dataset_seed as _dataset_seed
from tfiqa.training.stage_utils import fit_summary as _fit_summary
from tfiqa.training.stage_utils import is_number as _is_number
from tfiqa.training.stage_utils import last_val as _last_val
from tfiqa.training.stage_utils import recalibrate_bn, save_weights_atomic

logger = logging.getLogger("tfiqa.training")

MAX_SYNTHETIC_SIDE = 256


@dataclasses.dataclass
class StageContext:
    """What every stage needs: config, strategy, model and where to write."""

    config: object
    workdir: str
    strategy: object
    model: object
    chief: bool
    # The chief writes into `workdir`; other workers into their own scratch
    # folder so that files never collide.
    write_root: str
    verbose: int
    seed: int
    pristine: dict = dataclasses.field(default_factory=dict)
    mos_splits: dict = dataclasses.field(default_factory=dict)
    # Folders the pristine images and the fine-tuning records come from.
    pristine_dir: str = ""
    mos_dir: str = ""
    precise_bn: object = None

    def stage_dir(self, stage, chief_copy=False):
        root = self.workdir if chief_copy else self.write_root
        return os.path.join(root, "checkpoints", stage)

    def log(self, message):
        if self.chief and self.verbose >= 0:
            print(message, flush=True)


# -- data preparation ------------------------------------------------------


def _split_pristine(config, paths, seed):
    root = config.resolve_path(config.data.pristine_dir)
    if config.data.pristine_val_dirs and root:
        val_roots = [
            os.path.abspath(os.path.join(root, d)) + os.sep
            for d in config.data.pristine_val_dirs
        ]
        for d in val_roots:
            if not os.path.isdir(d):
                raise ConfigError(
                    f"data.pristine_val_dirs: {d} is not a folder under "
                    f"data.pristine_dir. Received: {config.data.pristine_val_dirs}"
                )
        val = [p for p in paths if any(p.startswith(d) for d in val_roots)]
        train = [p for p in paths if p not in set(val)]
    else:
        ratio = float(config.data.pristine_val_ratio)
        if not 0.0 < ratio < 1.0:
            raise ConfigError(
                "data.pristine_val_ratio must be in (0, 1). "
                f"Received: {config.data.pristine_val_ratio}"
            )
        order = np.random.default_rng(seed).permutation(len(paths))
        n_val = min(len(paths) - 1, max(1, round(ratio * len(paths))))
        val = sorted(paths[i] for i in order[:n_val])
        train = sorted(paths[i] for i in order[n_val:])
    if not train or not val:
        raise DataError(
            "Ranking needs pristine images for both training and validation. "
            f"Received: {len(train)} train, {len(val)} validation images"
        )
    return {"train": train, "val": val}


def prepare_pristine(ctx):
    """Pristine image paths split by source into train/val (written to splits/)."""
    from tfiqa.data.pristine import generate_pristine, list_images

    config = ctx.config
    folder = config.resolve_path(config.data.pristine_dir)
    generated = not folder
    if generated:
        folder = os.path.join(ctx.write_root, "data", "pristine")
        existing = list_images(folder) if os.path.isdir(folder) else []
        if len(existing) != config.data.pristine_count:
            generate_pristine(
                folder,
                count=config.data.pristine_count,
                size=config.data.pristine_size,
                seed=ctx.seed,
            )
    elif not os.path.isdir(folder):
        raise ConfigError(
            f"data.pristine_dir is not a folder. Received: {folder} "
            f"(data.root={config.data.root!r})"
        )
    paths = list_images(folder)
    split = _split_pristine(config, paths, ctx.seed)
    ctx.pristine_dir = folder
    if ctx.chief:
        from tfiqa.data.splits import save_splits

        save_splits(
            os.path.join(ctx.workdir, "splits", "pristine.json"),
            split,
            meta={
                "pristine_dir": folder,
                "generated": generated,
                "seed": ctx.seed,
                "val_dirs": list(config.data.pristine_val_dirs),
                "val_ratio": config.data.pristine_val_ratio,
            },
        )
    return split


def _center_square(image, side):
    h, w = image.shape[:2]
    side = min(side, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def synthesize_mos_set(pristine_paths, folder, types, levels, seed):
    """Writes distorted copies with MS-SSIM pseudo-MOS labels (`distorted` layout).

    Each pristine image (centre square of at most 256 px) is written as
    level 0 with label 1.0, then once per type and level with the pseudo-MOS
    of the distorted copy against it. The index `distortions.csv` is written
    last, so an interrupted run regenerates the set.

    Returns:
        The folder, readable with `read_dataset("distorted", folder)`.
    """
    import tensorflow as tf
    from PIL import Image

    from tfiqa.data.image_io import load_image
    from tfiqa.distortions import apply_distortion
    from tfiqa.distortions.measures import pseudo_mos

    index = os.path.join(folder, "distortions.csv")
    if os.path.isfile(index):
        return folder
    # Traced once per image size: MS-SSIM eagerly costs several times more.
    label_fn = tf.function(pseudo_mos, reduce_retracing=True)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rows = ["image,ref,distortion,level,pseudo_mos"]
    for i, path in enumerate(pristine_paths):
        ref = source_id(path)
        image = _center_square(load_image(path), MAX_SYNTHETIC_SIDE)
        reference = image.astype(np.float32) / 255.0
        name = f"images/{ref}.png"
        Image.fromarray(image).save(os.path.join(folder, name))
        rows.append(f"{name},{ref},,0,1.0")
        for t, dtype in enumerate(types):
            for level in levels:
                distorted = apply_distortion(
                    dtype, reference, int(level), seed=[seed, i * 1000 + t * 10 + level]
                )
                label = float(label_fn(reference, distorted))
                out = np.round(distorted.numpy() * 255.0).astype(np.uint8)
                name = f"images/{ref}_{dtype}_{level}.png"
                Image.fromarray(out).save(os.path.join(folder, name))
                rows.append(f"{name},{ref},{dtype},{level},{label:.6f}")
    write_text_atomic(index, "\n".join(rows) + "\n")
    return folder


def prepare_mos_data(ctx):
    """Train/val/test records for fine-tuning (splits written to splits/)."""
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import splits_for_config

    config = ctx.config
    data = config.data
    options = dict(data.reader_options)
    if data.skip_bad:
        options.setdefault("skip_bad", True)
    if data.dataset_dir:
        folder = config.resolve_path(data.dataset_dir)
    elif data.dataset == "distorted":
        from tfiqa.distortions import resolve_types

        types = resolve_types(
            config.ranking.distortion_set,
            data.synthetic_types or config.ranking.types or None,
        )
        pristine = ctx.pristine["train"] + ctx.pristine["val"]
        folder = synthesize_mos_set(
            pristine,
            os.path.join(ctx.write_root, "data", "distorted"),
            types,
            data.synthetic_levels,
            ctx.seed,
        )
    else:
        raise ConfigError(
            "The finetune stage needs MOS data: set data.dataset_dir (and "
            "data.dataset, a reader kind), or use data.dataset=distorted with "
            "no dataset_dir to synthesise pseudo-MOS labels. "
            f"Received: data.dataset={data.dataset!r}, data.dataset_dir=''"
        )
    records = read_dataset(data.dataset, folder, **options)
    parts = splits_for_config(
        records,
        data,
        seed=split_seed(config, ctx.seed),
        workdir=ctx.workdir if ctx.chief else None,
    )
    # Held-out types are not trained or validated on; the test keeps them.
    held_out = set(config.meta.holdout)
    for part in ("train", "val"):
        parts[part] = [r for r in parts[part] if r.get("distortion") not in held_out]
    synthesised = data.dataset == "distorted" and not data.dataset_dir
    ctx.mos_dir = ctx.pristine_dir if synthesised else folder
    if not parts["train"]:
        raise DataError(
            f"The training split is empty. Received: {len(records)} records, "
            f"val_ratio={data.val_ratio}, test_ratio={data.test_ratio}"
        )
    return parts


# -- stages ----------------------------------------------------------------


def split_seed(config, seed):
    """The seed of the fine-tuning content splits (`data.split_seed`)."""
    return seed if int(config.data.split_seed) < 0 else int(config.data.split_seed)


def rank_types(config):
    """The ranking stage's distortion types, without `meta.holdout`."""
    from tfiqa.distortions import resolve_types

    cfg = config.ranking
    types = resolve_types(cfg.distortion_set, cfg.types or None)
    kept = [t for t in types if t not in set(config.meta.holdout)]
    if not kept:
        raise ConfigError(
            "ranking: no distortion types are left after meta.holdout. "
            f"Received: types={types}, holdout={config.meta.holdout}"
        )
    return kept


def run_rank_stage(ctx, stage_index):
    """Ranking pretraining; returns the stage's result dict."""
    from tfiqa.data.ranking import ranking_dataset
    from tfiqa.training.loop import DistributedLoop, make_optimizer
    from tfiqa.training.ranking_trainer import RankingTrainer

    config = ctx.config
    cfg = config.ranking
    types = rank_types(config)
    replicas = ctx.strategy.num_replicas_in_sync
    if cfg.groups_per_batch % replicas:
        logger.warning(
            "ranking.groups_per_batch=%d is not a multiple of the %d replicas: "
            "pairs split across replicas are not trained on.",
            cfg.groups_per_batch,
            replicas,
        )
    crop = config.data.crop_size
    train_paths, val_paths = ctx.pristine["train"], ctx.pristine["val"]

    def dataset_fn(epoch):
        return ranking_dataset(
            train_paths,
            types,
            crop,
            cfg.groups_per_batch,
            seed=_dataset_seed(ctx, "rank", epoch),
            device_distortions=cfg.device_distortions,
        ).repeat()

    # A fixed validation set: the same crops and distortions every epoch.
    val_ds = ranking_dataset(
        val_paths, types, crop, cfg.groups_per_batch, seed=ctx.seed + 999_983
    ).repeat()
    val_batches = [
        (images.numpy(), {k: v.numpy() for k, v in labels.items()})
        for images, labels in val_ds.take(max(1, cfg.val_steps))
    ]
    trainer = RankingTrainer(ctx.model, cfg.margin, cfg.logit_margin)
    compute_terms, finish = trainer.compute_terms, lambda images, labels: images
    if cfg.device_distortions:
        from tfiqa.data.device_distortions import device_step

        finish, compute_terms = device_step(
            trainer.compute_terms, types, crop, cfg.groups_per_batch, replicas
        )

    # Training batches for BatchNorm statistics, drawn once (the ranking
    # pipeline distorts on the fly, which costs more than the forward passes).
    bn_batches = [
        (np.asarray(finish(images, labels)), None)
        for images, labels in dataset_fn(-1).take(config.trainer.precise_bn_batches)
    ]

    def validate(epoch):
        recalibrate_bn(ctx, bn_batches)
        return trainer.evaluate(val_batches)

    with ctx.strategy.scope():
        optimizer = make_optimizer(
            cfg.learning_rate,
            config.trainer.weight_decay,
            config.trainer.mixed_precision,
            name="rank_optimizer",
        )
    loop = DistributedLoop(
        ctx.strategy,
        ctx.model,
        compute_terms,
        [(optimizer, ctx.model.trainable_variables)],
        stage="rank",
        stage_index=stage_index,
        checkpoint_dir=ctx.stage_dir("rank", chief_copy=True),
        log_dir=os.path.join(ctx.workdir, "logs", "rank"),
        verbose=ctx.verbose,
    )
    result = loop.fit(
        dataset_fn,
        cfg.epochs,
        cfg.steps_per_epoch,
        validate=validate,
    )
    val = _last_val(result["history"])
    if not val:  # resumed after the last epoch: validate the restored model
        val = trainer.evaluate(val_batches)
    return {
        **_fit_summary(result, cfg.epochs),
        "val": val,
        "types": types,
        "batch_images": len(val_batches[0][0]),
        "sources": {"train": len(train_paths), "val": len(val_paths)},
    }


def run_finetune_stage(ctx, stage_index):
    from tfiqa.training.finetune_stage import run_finetune_stage

    return run_finetune_stage(ctx, stage_index)


def run_meta(ctx, stage_index):
    from tfiqa.training.meta_stage import build_tasks, run_meta_stage

    start = time.time()
    tasks = build_tasks(
        ctx.config, ctx.strategy, ctx.workdir, ctx.pristine, reserved_ids(ctx)
    )
    write_meta_split(ctx, tasks)
    metrics = run_meta_stage(
        ctx.config, ctx.model, ctx.strategy, ctx.workdir, tasks=tasks
    )
    return {
        "epochs": ctx.config.meta.epochs,
        "time_s": time.time() - start,
        "val": {k: v for k, v in (metrics or {}).items() if _is_number(v)},
        "details": metrics,
    }


# Stages whose replicas see parts of one global batch; meta-learning
# replicas each adapt to their own tasks, whose statistics must stay apart.
SYNC_BN_STAGES = ("rank", "finetune")


STAGE_RUNNERS = {
    "rank": run_rank_stage,
    "meta": run_meta,
    "finetune": run_finetune_stage,
}


# -- the run ---------------------------------------------------------------


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _check_config(config):
    for stage in config.trainer.stages:
        if config.trainer.stages.count(stage) > 1:
            raise ConfigError(
                f"trainer.stages lists '{stage}' twice. "
                f"Received: {config.trainer.stages}"
            )
    ranking = config.ranking
    if "rank" in config.trainer.stages and (
        ranking.epochs < 1 or ranking.steps_per_epoch < 1
    ):
        raise ConfigError(
            "ranking.epochs and ranking.steps_per_epoch must be >= 1. Received: "
            f"epochs={ranking.epochs}, steps_per_epoch={ranking.steps_per_epoch}"
        )
    if "finetune" in config.trainer.stages and config.finetune.epochs < 1:
        raise ConfigError(
            f"finetune.epochs must be >= 1. Received: {config.finetune.epochs}"
        )
    if config.data.eval_mode not in ("crops", "full"):
        raise ConfigError(
            "data.eval_mode must be 'crops' or 'full'. "
            f"Received: {config.data.eval_mode!r}"
        )
    data, stages = config.data, config.trainer.stages
    generated = not data.pristine_dir and (
        "rank" in stages
        or ("meta" in stages and config.meta.task_source == "synthetic")
        or (data.dataset == "distorted" and not data.dataset_dir)
    )
    if generated and data.pristine_size < data.crop_size:
        # Before minutes of image generation, not after.
        raise ConfigError(
            f"data.crop_size {data.crop_size} is larger than the generated images "
            f"(data.pristine_size {data.pristine_size}). Received: "
            f"crop_size={data.crop_size}"
        )


def run_experiment(config, workdir, verbose=None):
    """Runs `config.trainer.stages` in order and writes the work directory.

    Args:
        config: `ExperimentConfig`.
        workdir: str. Created if needed; an existing one is resumed.
        verbose: int or None. Overrides `config.trainer.verbose` (1 progress
            bars, 0 epoch lines, -1 silent).

    Returns:
        dict, the content of `metrics.json`.

    Example:
    ```python
    config = load_config("configs/resnet18_multilevel.yaml")
    metrics = run_experiment(config, "runs/resnet18")
    print(format_summary(metrics))
    ```
    """
    import keras

    from tfiqa.models import build_model
    from tfiqa.training.strategy import (
        get_strategy,
        is_chief,
        set_mixed_precision,
        worker_write_root,
    )

    _check_config(config)
    workdir = os.path.abspath(workdir)
    verbose = config.trainer.verbose if verbose is None else int(verbose)
    seed = int(config.trainer.seed)
    strategy = get_strategy(config.trainer)
    chief = is_chief(strategy)
    write_root = worker_write_root(strategy, workdir)
    os.makedirs(write_root, exist_ok=True)
    if chief:
        save_config(config, os.path.join(workdir, "config.yaml"))
    previous_policy = keras.mixed_precision.global_policy().name
    policy = set_mixed_precision(config.trainer.mixed_precision)
    try:
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = build_model(
                config.model,
                input_crop_size=config.data.crop_size,
                eval_crops=config.data.eval_crops,
            )
            if config.trainer.init_from:
                load_initial_weights(model, config.trainer.init_from)
        ctx = StageContext(
            config=config,
            workdir=workdir,
            strategy=strategy,
            model=model,
            chief=chief,
            write_root=write_root,
            verbose=verbose,
            seed=seed,
        )
        return _run_stages(ctx, policy)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def load_initial_weights(model, path):
    """Loads `trainer.init_from` (a `.keras` model or `.weights.h5`) into `model`."""
    if not os.path.isfile(path):
        raise ConfigError(f"trainer.init_from: file not found. Received: {path}")
    try:
        if path.endswith(".weights.h5"):
            model.load_weights(path)
        elif path.endswith(".keras"):
            import keras

            source = keras.saving.load_model(path, compile=False)
            model.set_weights(source.get_weights())
        else:
            raise ConfigError(
                "trainer.init_from must be a .keras or .weights.h5 file. "
                f"Received: {path}"
            )
    except ValueError as e:
        raise ConfigError(
            f"trainer.init_from: {path} does not fit this model's architecture "
            f"({e}). Received: model.backbone={model.backbone_name}, "
            f"levels={list(model.levels)}"
        ) from None


def prepare_data(ctx, stages):
    """Pristine and fine-tuning splits, fine-tuning content kept out of the
    earlier stages, and `splits/rank.json` / `splits/finetune.json`."""
    config = ctx.config
    synthetic_mos = config.data.dataset == "distorted" and not config.data.dataset_dir
    synthetic_meta = "meta" in stages and config.meta.task_source == "synthetic"
    if "rank" in stages or synthetic_meta or ("finetune" in stages and synthetic_mos):
        ctx.pristine = prepare_pristine(ctx)
    if "finetune" in stages:
        ctx.mos_splits = prepare_mos_data(ctx)
        keep_out_of_priors(ctx)
    write_data_splits(ctx, stages)


def run_seeds(ctx):
    """Every seed the run uses, by what it draws."""
    from tfiqa.training.meta_stage import dataset_seed

    seed = ctx.seed
    return {
        "trainer": seed,
        "model_init": seed,
        "splits": split_seed(ctx.config, seed) + int(ctx.config.data.split_index),
        "pristine_split": seed,
        "pristine_generation": seed,
        "rank_data": [_dataset_seed(ctx, "rank", 0), "+ epoch"],
        "rank_val_data": seed + 999_983,
        "meta_episodes": [dataset_seed(seed, 0), "+ epoch"],
        "meta_bn_calibration_episodes": dataset_seed(seed, -1),
        "meta_val_episodes": seed + 7_919,
        "meta_holdout_episodes": seed + 7_920,
        "meta_task_split": seed,
        "finetune_data": [_dataset_seed(ctx, "finetune", 0), "+ epoch"],
    }


def _run_stages(ctx, policy):
    from tfiqa.training.strategy import synchronize_batchnorm

    config, workdir = ctx.config, ctx.workdir
    stages = list(config.trainer.stages)
    metrics = {
        "workdir": workdir,
        "stages": {},
        "seeds": run_seeds(ctx),
        "strategy": type(ctx.strategy).__name__,
        "replicas": ctx.strategy.num_replicas_in_sync,
        "dtype_policy": policy,
        "resumed": [],
    }
    sync_batchnorm = (
        config.trainer.sync_batchnorm and ctx.strategy.num_replicas_in_sync > 1
    )
    metrics["sync_batchnorm"] = sync_batchnorm
    start = time.time()
    prepare_data(ctx, stages)

    pending_weights = None
    for index, stage in enumerate(stages):
        done_file = os.path.join(ctx.stage_dir(stage, chief_copy=True), "done.json")
        final_weights = os.path.join(
            ctx.stage_dir(stage, chief_copy=True), "final.weights.h5"
        )
        if os.path.isfile(done_file) and os.path.isfile(final_weights):
            with open(done_file) as f:
                metrics["stages"][stage] = {**json.load(f), "skipped": "already done"}
            pending_weights = final_weights
            ctx.log(f"[{stage}] already done in {workdir}; skipping")
            continue
        if pending_weights:
            ctx.model.load_weights(pending_weights)
            pending_weights = None
        ctx.log(f"[{stage}] stage {index + 1}/{len(stages)}")
        stage_start = time.time()
        synchronize_batchnorm(ctx.model, sync_batchnorm and stage in SYNC_BN_STAGES)
        result = STAGE_RUNNERS[stage](ctx, index)
        synchronize_batchnorm(ctx.model, False)
        result["wall_s"] = time.time() - stage_start
        if result.get("resumed_from"):
            metrics["resumed"].append(
                {
                    "stage": stage,
                    "epoch": result["initial_epoch"] + 1,
                    "checkpoint": result["resumed_from"],
                }
            )
        metrics["stages"][stage] = _jsonable(result)
        stage_dir = ctx.stage_dir(stage)
        os.makedirs(stage_dir, exist_ok=True)
        save_weights_atomic(ctx.model, os.path.join(stage_dir, "final.weights.h5"))
        write_json_atomic(os.path.join(stage_dir, "done.json"), _jsonable(result))
    if pending_weights:
        ctx.model.load_weights(pending_weights)
    finetune = metrics["stages"].get("finetune", {})
    metrics["test"] = finetune.get("test")
    metrics["total_wall_s"] = time.time() - start
    metrics["model"] = os.path.join(workdir, "model.keras")
    leak = None
    try:
        metrics["leak_check"] = check_run(ctx, stages)
    except LeakError as e:
        metrics["leak_check"] = {"passed": False, "error": str(e)}
        leak = e
    if ctx.chief:
        with atomic_path(metrics["model"]) as tmp:
            ctx.model.save(tmp)
        write_json_atomic(os.path.join(workdir, "metrics.json"), _jsonable(metrics))
    if leak is not None:
        raise leak
    return _jsonable(metrics)


def _format_metrics(values, keys=("pair_accuracy", "srcc", "plcc")):
    shown = [k for k in keys if k in values] or sorted(values)[:3]
    parts = []
    for k in shown:
        v = values.get(k)
        parts.append(f"{k}={v:.3f}" if isinstance(v, (int, float)) else f"{k}={v}")
    return " ".join(parts)


def format_summary(metrics):
    """The end-of-run table: stage, epochs, time, validation metrics."""
    rows = [("stage", "epochs", "time", "validation")]
    for stage, result in metrics["stages"].items():
        epochs = result.get("epochs")
        done = result.get("epochs_done", epochs)
        epochs_text = f"{done}/{epochs}" if epochs is not None else "-"
        if result.get("stopped_early"):
            epochs_text += " (early stop)"
        if result.get("skipped"):
            epochs_text += " (earlier run)"
        time_s = result.get("wall_s", result.get("time_s"))
        time_text = f"{time_s:.1f}s" if isinstance(time_s, (int, float)) else "-"
        val = _format_metrics(result.get("val") or {})
        if stage == "finetune" and result.get("best_epoch"):
            val += f" (best epoch {result['best_epoch']})"
        rows.append((stage, epochs_text, time_text, val))
    test = metrics.get("test")
    if test:
        rows.append(("test", "-", "-", _format_metrics(test, ("srcc", "plcc"))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:3])) + "  " + r[3]
        for r in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
