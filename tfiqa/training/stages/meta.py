"""The `meta` stage: meta-learn a quality prior over distortion tasks.

Tasks are distortion types. With `meta.task_source: synthetic` they come
from the distortion engine applied to pristine images (the same pristine
train/val split as the `rank` stage, `splits/pristine.json`), labelled with
a full-reference pseudo-MOS or the level; with a reader kind that has real
MOS and distortion labels ("tid2013", "kadid10k") they come from that
dataset, split by reference content. Types listed in `meta.holdout` are
never trained on.

Validation (end of every epoch) uses held-out *sources*: for each fixed
validation task, adapt the meta-parameters to its support set, then measure
MSE and SRCC on its query set (`val_srcc`; `val_srcc_0shot` without
adaptation). Held-out *types*, if any, are validated the same way
(`val_holdout_srcc`). These are meta-validation numbers on the task
distribution, never on the target dataset's test split; the stage keeps the
meta-parameters of its last epoch and leaves them in `model`.
"""

import logging
import os

import numpy as np

from tfiqa.errors import ConfigError, DataError

logger = logging.getLogger("tfiqa.training")

STAGE = "meta"
LABELS = ("pseudo_mos", "level")
SYNTHETIC = "synthetic"


def dataset_seed(seed, epoch):
    """Seed of the meta stage's training episodes in `epoch`."""
    return int(seed) * 100_003 + 3 * 10_007 + int(epoch)


def check_meta_config(meta):
    for key in ("epochs", "steps_per_epoch", "support_size", "query_size"):
        if int(getattr(meta, key)) < 1:
            raise ConfigError(
                f"meta.{key} must be >= 1. Received: {key}={getattr(meta, key)}"
            )
    if int(meta.meta_batch_size) < 1:
        raise ConfigError(
            f"meta.meta_batch_size must be >= 1. Received: {meta.meta_batch_size}"
        )
    if meta.label not in LABELS:
        raise ConfigError(
            f"meta.label must be one of {list(LABELS)}. Received: {meta.label!r}"
        )
    if int(meta.val_steps) < 0:
        raise ConfigError(f"meta.val_steps must be >= 0. Received: {meta.val_steps}")


class MetaTasks:
    """Training and validation episodes of the meta stage.

    Attributes:
        train_fn: callable epoch -> tf.data.Dataset of global meta-batches.
        val: list of numpy episodes (training types, held-out sources).
        holdout: list of numpy episodes (held-out types), maybe empty.
        types, holdout_types: lists of distortion type names.
        calibration: list of image batches for BatchNorm recalibration.
        info: dict describing the sources (for metrics.json).
        split: {"source", "train", "val"} reference ids of tasks read from
            a dataset; None for synthetic tasks (the pristine split).
    """

    def __init__(
        self,
        train_fn,
        val,
        holdout,
        types,
        holdout_types,
        calibration,
        info,
        split=None,
    ):
        self.split = split
        self.train_fn = train_fn
        self.val = val
        self.holdout = holdout
        self.types = types
        self.holdout_types = holdout_types
        self.calibration = calibration
        self.info = info


def _materialize(dataset, count):
    episodes = []
    for episode in dataset.take(count):
        episodes.append({k: v.numpy() for k, v in episode.items()})
    return episodes


def _calibration_batches(train_fn, count, seed_epoch=-1):
    """Image batches for BatchNorm statistics: the support sets of a few
    training meta-batches, flattened (T * S images each)."""
    if count <= 0:
        return []
    batches = []
    for episode in train_fn(seed_epoch).take(count):
        images = episode["support_images"]
        shape = images.shape
        batches.append(np.reshape(images.numpy(), (-1, *shape[2:])))
    return batches


def split_types(meta, available):
    """(training types, held-out types) from the config and what exists."""
    holdout = list(meta.holdout)
    unknown = [t for t in holdout if t not in available]
    if unknown:
        raise ConfigError(
            f"meta.holdout names types that are not task types: {unknown}. "
            f"Task types: {available}. Received: {holdout}"
        )
    types = [t for t in available if t not in holdout]
    if not types:
        raise ConfigError(
            "meta: no training task types are left after meta.holdout. "
            f"Received: types={available}, holdout={holdout}"
        )
    return types, holdout


def synthetic_tasks(config, pristine, seed):
    """Tasks from the distortion engine on pristine train/val sources."""
    from tfiqa.data.episodes import task_episodes
    from tfiqa.distortions import resolve_types

    meta = config.meta
    available = resolve_types(meta.distortion_set, meta.types or None)
    types, holdout = split_types(meta, available)
    crop = config.data.crop_size
    val_query = meta.val_query_size or meta.query_size

    def episodes(paths, task_types, query_size, episode_seed):
        return task_episodes(
            paths,
            task_types,
            crop,
            meta.support_size,
            query_size,
            meta.meta_batch_size,
            meta.label,
            episode_seed,
        )

    def train_fn(epoch):
        return episodes(
            pristine["train"], types, meta.query_size, dataset_seed(seed, epoch)
        )

    val_seed = int(seed) + 7_919
    val_count = max(1, int(meta.val_steps))
    val = _materialize(episodes(pristine["val"], types, val_query, val_seed), val_count)
    held = []
    if holdout:
        held = _materialize(
            episodes(pristine["val"], holdout, val_query, val_seed + 1), val_count
        )
    info = {
        "source": SYNTHETIC,
        "sources": {"train": len(pristine["train"]), "val": len(pristine["val"])},
        "label": meta.label,
    }
    return MetaTasks(
        train_fn,
        val,
        held,
        types,
        holdout,
        _calibration_batches(train_fn, int(meta.bn_recalibration_batches)),
        info,
    )


def records_tasks(config, seed, reserved=None):
    """Tasks from a dataset with real MOS and distortion labels.

    `reserved` ({"source", "ids"} from the run's fine-tuning split): when the
    tasks come from that same folder, those references are left out.
    """
    from tfiqa.data.episodes import records_episodes
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import split_records
    from tfiqa.protocols.audit import source_key

    meta = config.meta
    folder = config.resolve_path(meta.task_dir)
    if not folder:
        raise ConfigError(
            f"meta.task_source={meta.task_source!r} needs meta.task_dir, the "
            "dataset folder (relative to data.root). Received: task_dir=''"
        )
    records = read_dataset(meta.task_source, folder, **dict(meta.task_reader_options))
    records = [r for r in records if r.get("distortion")]
    excluded = 0
    if reserved and source_key(folder) == reserved["source"]:
        kept = [r for r in records if str(r["ref_id"]) not in reserved["ids"]]
        excluded, records = len(records) - len(kept), kept
    if not records:
        raise DataError(
            f"meta: {meta.task_source} records in {folder} carry no distortion "
            "labels, so they cannot form tasks. Received: 0 labelled records"
        )
    available = sorted({r["distortion"] for r in records})
    if meta.types:
        missing = [t for t in meta.types if t not in available]
        if missing:
            raise ConfigError(
                f"meta.types names types absent from {meta.task_source}: "
                f"{missing}. Available: {available}. Received: {meta.types}"
            )
        available = list(meta.types)
    types, holdout = split_types(meta, available)
    parts = split_records(records, meta.val_ratio, 0.0, seed)
    crop = config.data.crop_size
    val_query = meta.val_query_size or meta.query_size

    def episodes(part, task_types, query_size, episode_seed):
        chosen = [r for r in part if r["distortion"] in set(task_types)]
        return records_episodes(
            chosen,
            crop,
            meta.support_size,
            query_size,
            meta.meta_batch_size,
            seed=episode_seed,
        )

    def train_fn(epoch):
        return episodes(
            parts["train"], types, meta.query_size, dataset_seed(seed, epoch)
        )

    val_seed = int(seed) + 7_919
    val_count = max(1, int(meta.val_steps))
    val = _materialize(episodes(parts["val"], types, val_query, val_seed), val_count)
    held = []
    if holdout:
        held = _materialize(
            episodes(parts["val"], holdout, val_query, val_seed + 1), val_count
        )
    info = {
        "source": meta.task_source,
        "records": {"train": len(parts["train"]), "val": len(parts["val"])},
        "excluded_finetune_records": excluded,
        "split_seed": seed,
    }
    split = {
        "source": folder,
        "train": sorted({str(r["ref_id"]) for r in parts["train"]}),
        "val": sorted({str(r["ref_id"]) for r in parts["val"]}),
    }
    return MetaTasks(
        train_fn,
        val,
        held,
        types,
        holdout,
        _calibration_batches(train_fn, int(meta.bn_recalibration_batches)),
        info,
        split,
    )


def pristine_split(config, strategy, workdir, model=None):
    """The pristine train/val split shared with the `rank` stage."""
    from tfiqa.training.run import StageContext, prepare_pristine
    from tfiqa.training.strategy import is_chief, worker_write_root

    chief = is_chief(strategy)
    write_root = worker_write_root(strategy, workdir)
    ctx = StageContext(
        config=config,
        workdir=workdir,
        strategy=strategy,
        model=model,
        chief=chief,
        write_root=write_root,
        verbose=config.trainer.verbose,
        seed=int(config.trainer.seed),
    )
    return prepare_pristine(ctx)


def build_tasks(config, strategy, workdir, pristine=None, reserved=None):
    """`MetaTasks` from the config.

    Args:
        pristine: the run's pristine split (default: made from the config).
        reserved: fine-tuning content to leave out (see `records_tasks`).
    """
    seed = int(config.trainer.seed)
    if config.meta.task_source == SYNTHETIC:
        pristine = pristine or pristine_split(config, strategy, workdir)
        return synthetic_tasks(config, pristine, seed)
    return records_tasks(config, seed, reserved)


def build_trainer(config, model, strategy):
    """`MetaTrainer` and its optimizer groups, created in the strategy scope."""
    from tfiqa.training.meta_trainer import MetaTrainer, make_meta_optimizer_groups

    meta = config.meta
    with strategy.scope():
        trainer = MetaTrainer(
            model,
            inner_steps=meta.inner_steps,
            inner_learning_rate=meta.inner_learning_rate,
            order=meta.order,
            learn_inner_lr=meta.learn_inner_lr,
            adapt=meta.adapt,
            batchnorm=meta.batchnorm,
        )
        groups = make_meta_optimizer_groups(
            trainer,
            meta.learning_rate,
            meta.head_learning_rate,
            weight_decay=config.trainer.weight_decay,
            mixed_precision=config.trainer.mixed_precision,
        )
    return trainer, groups


def run_meta_stage(config, model, strategy, workdir, verbose=None, tasks=None):
    """Meta-trains `model` in place; returns the final validation metrics.

    Args:
        config: `ExperimentConfig`; reads `meta`, `data`, `trainer`.
        model: the scoring model (an `IQAModel`), built under `strategy`.
        strategy: `tf.distribute.Strategy`; the tasks of each meta-batch are
            split across its replicas.
        workdir: str. Checkpoints go to `<workdir>/checkpoints/meta`, logs to
            `<workdir>/logs/meta`; an existing checkpoint is resumed.
        verbose: int or None (default `config.trainer.verbose`).
        tasks: `MetaTasks` to use instead of building them from the config.

    Returns:
        dict of validation metrics of the final meta-parameters ("loss",
        "srcc", "loss_0shot", "srcc_0shot", "tasks", and "holdout_*" when
        types are held out), plus "fit" (epochs, history, resume info) and
        "tasks_info" (types and sources).
    """
    from tfiqa.training.adaptation import adaptation_spec, save_adaptation
    from tfiqa.training.meta_trainer import MetaLoop
    from tfiqa.training.strategy import is_chief

    meta = config.meta
    check_meta_config(meta)
    verbose = config.trainer.verbose if verbose is None else int(verbose)
    replicas = strategy.num_replicas_in_sync
    if meta.meta_batch_size % replicas:
        logger.warning(
            "meta.meta_batch_size=%d is not a multiple of the %d replicas; "
            "replicas get unequal numbers of tasks.",
            meta.meta_batch_size,
            replicas,
        )
    if tasks is None:
        tasks = build_tasks(config, strategy, workdir)
    trainer, groups = build_trainer(config, model, strategy)
    stage_index = (
        config.trainer.stages.index(STAGE) if STAGE in config.trainer.stages else 0
    )
    chief = is_chief(strategy)
    loop = MetaLoop(
        strategy,
        trainer,
        groups,
        stage=STAGE,
        stage_index=stage_index,
        checkpoint_dir=os.path.join(workdir, "checkpoints", STAGE),
        log_dir=os.path.join(workdir, "logs", STAGE) if chief else None,
        verbose=verbose,
    )
    if tasks.calibration:
        # Statistics for the starting weights (overwritten by a resumed
        # checkpoint, which holds statistics for its own weights).
        trainer.recalibrate_batchnorm(tasks.calibration)

    def validate(epoch):
        if tasks.calibration:
            trainer.recalibrate_batchnorm(tasks.calibration)
        logs = trainer.evaluate(tasks.val)
        if tasks.holdout:
            held = trainer.evaluate(tasks.holdout)
            logs.update({f"holdout_{k}": v for k, v in held.items()})
        return logs

    result = loop.fit(
        tasks.train_fn, meta.epochs, meta.steps_per_epoch, validate=validate
    )
    val = {}
    for logs in reversed(result["history"]):
        val = {
            k[4:]: v
            for k, v in logs.items()
            if k.startswith("val_") and k != "val_time"
        }
        if val:
            break
    if not val:  # resumed after the last epoch: validate the restored model
        val = trainer.evaluate(tasks.val)
        if tasks.holdout:
            held = trainer.evaluate(tasks.holdout)
            val.update({f"holdout_{k}": v for k, v in held.items()})
    history = [
        {k: v for k, v in h.items() if isinstance(v, (int, float))}
        for h in result["history"]
    ]
    if chief:
        # The recipe (and Meta-SGD rates) k-shot evaluations must reuse.
        save_adaptation(workdir, trainer.maml, adaptation_spec(meta))
    return {
        **val,
        "fit": {
            "epochs": meta.epochs,
            "epochs_done": result["initial_epoch"] + len(result["history"]),
            "initial_epoch": result["initial_epoch"],
            "resumed_from": result["resumed_from"],
            "history": history,
            "order": meta.order,
            "inner_steps": meta.inner_steps,
            "adapt": meta.adapt,
            "batchnorm": meta.batchnorm,
            "learn_inner_lr": meta.learn_inner_lr,
            "replicas": replicas,
        },
        "tasks_info": {
            "types": tasks.types,
            "holdout": tasks.holdout_types,
            **tasks.info,
        },
    }
