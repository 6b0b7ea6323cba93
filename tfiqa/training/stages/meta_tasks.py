"""The meta stage's tasks: episodes of distortion types, from the distortion
engine on pristine images or from a dataset with distortion labels."""

import numpy as np

from tfiqa.errors import ConfigError, DataError
from tfiqa.training.stages.context import StageContext
from tfiqa.training.stages.spec import stage_seed

SYNTHETIC = "synthetic"
# Seed of the validation episodes (+1: the held-out types' episodes).
VAL_SEED_OFFSET = 7_919


def episode_seed(seed, epoch):
    """Seed of the meta stage's training episodes in `epoch`."""
    return stage_seed(seed, "meta", epoch)


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
            f"stages.meta.holdout names types that are not task types: {unknown}. "
            f"Task types: {available}. Received: {holdout}"
        )
    types = [t for t in available if t not in holdout]
    if not types:
        raise ConfigError(
            "meta: no training task types are left after stages.meta.holdout. "
            f"Received: types={available}, holdout={holdout}"
        )
    return types, holdout


def _assemble(meta, episodes, parts, types, holdout, seed, info, split=None):
    """`MetaTasks` from an episode builder `episodes(part, types, query, seed)`
    and {"train", "val"} parts: training episodes drawn anew each epoch,
    fixed validation episodes (training types, then held-out types)."""

    def train_fn(epoch):
        return episodes(
            parts["train"], types, meta.query_size, episode_seed(seed, epoch)
        )

    val_seed = int(seed) + VAL_SEED_OFFSET
    val_count = max(1, int(meta.schedule.val_steps))
    val_query = meta.val_query_size or meta.query_size
    val = _materialize(episodes(parts["val"], types, val_query, val_seed), val_count)
    held = []
    if holdout:
        held = _materialize(
            episodes(parts["val"], holdout, val_query, val_seed + 1), val_count
        )
    calibration = _calibration_batches(train_fn, int(meta.bn_recalibration_batches))
    return MetaTasks(train_fn, val, held, types, holdout, calibration, info, split)


def synthetic_tasks(config, pristine, seed):
    """Tasks from the distortion engine on pristine train/val sources."""
    from tfiqa.data.episodes import task_episodes
    from tfiqa.distortions import resolve_types

    meta = config.stages.meta
    available = resolve_types(meta.distortion_set, meta.types or None)
    types, holdout = split_types(meta, available)

    def episodes(paths, task_types, query_size, episode_seed):
        return task_episodes(
            paths,
            task_types,
            config.data.crop_size,
            meta.support_size,
            query_size,
            meta.meta_batch_size,
            meta.label,
            episode_seed,
        )

    info = {
        "source": SYNTHETIC,
        "sources": {"train": len(pristine["train"]), "val": len(pristine["val"])},
        "label": meta.label,
    }
    return _assemble(meta, episodes, pristine, types, holdout, seed, info)


def _task_records(config, folder, reserved):
    """Labelled records of `stages.meta.task_source` without the reserved content;
    returns (records, number excluded)."""
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.split_record import source_key

    meta = config.stages.meta
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
    return records, excluded


def records_tasks(config, seed, reserved=None):
    """Tasks from a dataset with real MOS and distortion labels.

    `reserved` ({"source", "ids"} from the run's fine-tuning split): when the
    tasks come from that same folder, those references are left out.
    """
    from tfiqa.data.episodes import records_episodes
    from tfiqa.data.splits import split_records

    meta = config.stages.meta
    folder = config.resolve_path(meta.task_dir)
    if not folder:
        raise ConfigError(
            f"stages.meta.task_source={meta.task_source!r} needs "
            "stages.meta.task_dir, the dataset folder (relative to data.root). "
            "Received: task_dir=''"
        )
    records, excluded = _task_records(config, folder, reserved)
    available = sorted({r["distortion"] for r in records})
    if meta.types:
        missing = [t for t in meta.types if t not in available]
        if missing:
            raise ConfigError(
                f"stages.meta.types names types absent from {meta.task_source}: "
                f"{missing}. Available: {available}. Received: {meta.types}"
            )
        available = list(meta.types)
    types, holdout = split_types(meta, available)
    parts = split_records(records, meta.val_ratio, 0.0, seed)

    def episodes(part, task_types, query_size, episode_seed):
        chosen = [r for r in part if r["distortion"] in set(task_types)]
        return records_episodes(
            chosen,
            config.data.crop_size,
            meta.support_size,
            query_size,
            meta.meta_batch_size,
            seed=episode_seed,
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
    return _assemble(meta, episodes, parts, types, holdout, seed, info, split)


def pristine_split(config, strategy, workdir, model=None):
    """The pristine train/val split shared with the `rank` stage."""
    from tfiqa.training.stages.data import prepare_pristine

    ctx = StageContext.for_run(config, workdir, strategy, model=model)
    return prepare_pristine(ctx)


def build_tasks(config, strategy, workdir, pristine=None, reserved=None):
    """`MetaTasks` from the config.

    Args:
        pristine: the run's pristine split (default: made from the config).
        reserved: fine-tuning content to leave out (see `records_tasks`).
    """
    seed = int(config.runtime.seed)
    if config.stages.meta.task_source == SYNTHETIC:
        pristine = pristine or pristine_split(config, strategy, workdir)
        return synthetic_tasks(config, pristine, seed)
    return records_tasks(config, seed, reserved)
