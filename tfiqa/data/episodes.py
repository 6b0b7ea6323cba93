"""Task episodes for meta-learning (MetaIQA): one task per distortion type.

An episode element holds T = `meta_batch_size` tasks, each with S support
and Q query crops of one distortion type and their quality labels in [0, 1]
(higher is better):

    support_images (T, S, c, c, 3) uint8   support_labels (T, S) float32
    query_images   (T, Q, c, c, 3) uint8   query_labels   (T, Q) float32

`task_episodes` makes tasks from pristine images with the synthetic
distortion engine. Real MOS does not exist for these crops, so the label is
either

- "pseudo_mos": MS-SSIM of the distorted crop against its pristine crop,
  mapped to [0, 1] by `tfiqa.distortions.measures.pseudo_mos`, or
- "level": `1 - level / 6` (rank information only).

`records_episodes` makes tasks from a dataset with real MOS and distortion
labels (TID2013, KADID-10k records), grouped by `distortion`.

Within one element the T tasks are distinct types when there are at least T
types (otherwise drawn with replacement). Everything is drawn from
stateless RNGs keyed by (seed, element index).

Support and query never share source content: each task splits its sources
(pristine images, or the reference contents `ref_id` of its records) into
a support part and a disjoint query part, in proportion S : Q (at least one
source each), and draws every crop from its own part. A task whose records
all come from one reference splits its images instead (disjoint by image,
not by content). A task with a single source (one pristine image, one
record) cannot be split: support and query then share it, with a warning.

Reference: Zhu, Li, Wang, Wang, Wu, "MetaIQA: Deep Meta-learning for
No-Reference Image Quality Assessment", CVPR 2020.
"""

import collections
import logging

import numpy as np
import tensorflow as tf

from tfiqa.data.ranking import (
    DEFAULT_CACHE_MB,
    check_levels,
    check_paths,
    crop_source,
    distort_one,
)
from tfiqa.distortions import resolve_types
from tfiqa.distortions.measures import level_label, pseudo_mos
from tfiqa.distortions.ops import to_uint8
from tfiqa.distortions.registry import sub_seed
from tfiqa.errors import ConfigError, DataError

LABELS = ("pseudo_mos", "level")

logger = logging.getLogger("tfiqa.data")


def _key(seed, index):
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    return tf.cast(tf.math.floormod(key, 2**31 - 1), tf.int32)


def _check_sizes(support_size, query_size, meta_batch_size):
    for name, value in (
        ("support_size", support_size),
        ("query_size", query_size),
        ("meta_batch_size", meta_batch_size),
    ):
        if int(value) < 1:
            raise ConfigError(f"{name} must be >= 1. Received: {name}={value}")
    return int(support_size), int(query_size), int(meta_batch_size)


def _task_of(sample_index, samples_per_task, meta_batch_size, n_tasks, seed):
    """The task (type/group) index of a sample: tasks of one element are a
    random permutation's first T entries when T <= n_tasks."""
    task = sample_index // samples_per_task
    element = task // meta_batch_size
    slot = tf.cast(task % meta_batch_size, tf.int32)
    key = _key(seed, element)
    if meta_batch_size <= n_tasks:
        order = tf.argsort(tf.random.stateless_uniform([n_tasks], key))
        return tf.cast(tf.gather(order, slot), tf.int32)
    return tf.random.stateless_uniform(
        [], sub_seed(key, slot + 1), 0, n_tasks, tf.int32
    )


def _source_index(index, per_task, support_size, n_sources, seed):
    """Local index in [0, n_sources) of the source of one sample.

    Each task (`index // per_task`) draws a random rotation of the sources;
    the first `round(n * S / (S + Q))` (at least 1, at most n - 1) sources
    of the rotation serve its support samples, the others its query
    samples, so support and query sources are disjoint when n >= 2.
    """
    n = tf.cast(n_sources, tf.int32)
    task_key = sub_seed(_key(seed, index // per_task), 11)
    sample_key = sub_seed(_key(seed, index), 13)
    fraction = support_size / per_task
    n_support = tf.cast(tf.round(tf.cast(n, tf.float32) * fraction), tf.int32)
    n_support = tf.clip_by_value(n_support, 1, tf.maximum(n - 1, 1))
    is_query = tf.cast(index % per_task, tf.int32) >= support_size
    first = tf.where(is_query, n_support, 0)
    size = tf.maximum(tf.where(is_query, n - n_support, n_support), 1)
    u = tf.random.stateless_uniform([], sample_key)
    j = first + tf.minimum(tf.cast(u * tf.cast(size, tf.float32), tf.int32), size - 1)
    rotation = tf.random.stateless_uniform([], task_key, 0, n, tf.int32)
    return (rotation + j) % n


def _warn_single_source(what, count):
    if count < 2:
        logger.warning("%s has a single source: its support and query share it.", what)


def _episode_batches(ds, support_size, query_size, meta_batch_size):
    """(image, label) samples -> episode dicts."""

    def split(images, labels):
        return {
            "support_images": images[:support_size],
            "support_labels": labels[:support_size],
            "query_images": images[support_size:],
            "query_labels": labels[support_size:],
        }

    ds = ds.batch(support_size + query_size, drop_remainder=True)
    ds = ds.map(split, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(meta_batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def task_episodes(
    image_paths,
    types,
    crop_size,
    support_size,
    query_size,
    meta_batch_size,
    label="pseudo_mos",
    seed=0,
    levels=(1, 2, 3, 4, 5),
    cache_mb=DEFAULT_CACHE_MB,
):
    """Endless episodes of synthetic tasks (see the module docstring).

    Args:
        image_paths: list of str. Pristine images (already split by source).
        types: list of str distortion names (one task each); empty/None = the
            fast KADID types.
        crop_size: int. Square crop side.
        support_size, query_size: ints S and Q per task.
        meta_batch_size: int T, tasks per element.
        label: "pseudo_mos" or "level".
        seed: int.
        levels: distortion levels sampled uniformly for each crop.
        cache_mb: int. Keep the decoded images in memory when they fit in
            this many MiB (see `tfiqa.data.ranking.crop_source`).

    Returns:
        tf.data.Dataset of dicts as in the module docstring.
    """
    if label not in LABELS:
        raise ConfigError(
            f"label must be one of {', '.join(LABELS)}. Received: label={label!r}"
        )
    types = resolve_types("kadid", types)
    levels = check_levels(levels)
    support_size, query_size, meta_batch_size = _check_sizes(
        support_size, query_size, meta_batch_size
    )
    crop_size = int(crop_size)
    paths = check_paths(image_paths, crop_size)
    # A seeded order, so that each task's support sources (a window of it)
    # are not neighbours in file-name order.
    paths = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
    _warn_single_source("The image list", len(paths))
    crop_fn = crop_source(paths, crop_size, cache_mb)
    level_table = tf.constant(levels, tf.int32)
    per_task = support_size + query_size

    def make_sample(index):
        type_index = _task_of(index, per_task, meta_batch_size, len(types), seed)
        key = sub_seed(_key(seed, index), 7)
        path_index = _source_index(index, per_task, support_size, len(paths), seed)
        level = tf.gather(
            level_table,
            tf.random.stateless_uniform([], sub_seed(key, 1), 0, len(levels), tf.int32),
        )
        crop = crop_fn(path_index, sub_seed(key, 2))
        distorted = distort_one(crop, type_index, level, sub_seed(key, 3), types)
        distorted = to_uint8(distorted)
        if label == "level":
            value = level_label(level)
        else:
            # Score what the model sees: the uint8-rounded crop.
            value = pseudo_mos(crop, tf.cast(distorted, tf.float32) / 255.0)
        return distorted, tf.cast(value, tf.float32)

    ds = tf.data.Dataset.counter().map(
        make_sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return _episode_batches(ds, support_size, query_size, meta_batch_size)


def group_by_distortion(records, distortions=None):
    """{distortion: [records]} for records with a non-empty `distortion`,
    optionally only the named ones (unknown names raise)."""
    groups = collections.defaultdict(list)
    for record in records:
        if record.get("distortion"):
            groups[record["distortion"]].append(record)
    if not groups:
        raise DataError(
            "records_episodes needs records with a 'distortion' label (TID2013, "
            "KADID-10k). Received: no record with a distortion"
        )
    if distortions:
        missing = [d for d in distortions if d not in groups]
        if missing:
            raise ConfigError(
                f"Distortions not in the records: {', '.join(missing)}. Valid: "
                f"{', '.join(sorted(groups))}. Received: {list(distortions)}"
            )
        return {d: groups[d] for d in distortions}
    return dict(sorted(groups.items()))


def records_episodes(
    records,
    crop_size,
    support_size,
    query_size,
    meta_batch_size,
    seed=0,
    distortions=None,
    cache_mb=DEFAULT_CACHE_MB,
):
    """Endless episodes of real-MOS tasks, one task per `distortion` label.

    Args:
        records: list of record dicts (`image_path`, `mos` in [0, 1],
            `distortion`); records without a distortion are ignored.
        crop_size: int. Square random crop side.
        support_size, query_size, meta_batch_size: ints S, Q, T.
        seed: int.
        distortions: optional list of distortion labels to use (e.g. all but
            a held-out one); default: every label present.
        cache_mb: int. Keep the decoded images in memory when they fit in
            this many MiB (see `tfiqa.data.ranking.crop_source`).

    Returns:
        tf.data.Dataset of dicts as in the module docstring, labels = MOS.
    """
    support_size, query_size, meta_batch_size = _check_sizes(
        support_size, query_size, meta_batch_size
    )
    crop_size = int(crop_size)
    groups = group_by_distortion(records, distortions)
    tables = _source_tables(groups, seed)
    paths = check_paths(tables["paths"], crop_size)
    crop_fn = crop_source(paths, crop_size, cache_mb)
    score_table = tf.constant(tables["scores"], tf.float32)
    first_source = tf.constant(tables["first_source"], tf.int32)
    n_sources = tf.constant(tables["n_sources"], tf.int32)
    row_start = tf.constant(tables["row_start"], tf.int32)
    row_count = tf.constant(tables["row_count"], tf.int32)
    per_task = support_size + query_size

    def make_sample(index):
        task = _task_of(index, per_task, meta_batch_size, len(groups), seed)
        key = sub_seed(_key(seed, index), 7)
        local = _source_index(
            index, per_task, support_size, tf.gather(n_sources, task), seed
        )
        source = tf.gather(first_source, task) + local
        offset = tf.random.stateless_uniform(
            [], key, 0, tf.gather(row_count, source), tf.int32
        )
        row = tf.gather(row_start, source) + offset
        crop = crop_fn(row, sub_seed(key, 1))
        return to_uint8(crop), tf.gather(score_table, row)

    ds = tf.data.Dataset.counter().map(
        make_sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return _episode_batches(ds, support_size, query_size, meta_batch_size)


def _source_tables(groups, seed):
    """Rows ordered by task, then source (`ref_id`, or the image when a task
    has a single reference), with each task's sources in a seeded order."""
    rng = np.random.default_rng(seed)
    tables = {k: [] for k in ("paths", "scores", "row_start", "row_count")}
    tables.update(first_source=[], n_sources=[])
    for name, group in groups.items():
        by_ref = collections.defaultdict(list)
        for record in group:
            by_ref[record.get("ref_id", record["image_path"])].append(record)
        sources = list(by_ref.values())
        if len(sources) < 2:
            sources = [[record] for record in group]  # split by image
        _warn_single_source(f"Task {name!r}", len(sources))
        tables["first_source"].append(len(tables["row_start"]))
        tables["n_sources"].append(len(sources))
        for k in rng.permutation(len(sources)):
            tables["row_start"].append(len(tables["paths"]))
            tables["row_count"].append(len(sources[k]))
            tables["paths"].extend(r["image_path"] for r in sources[k])
            tables["scores"].extend(float(r["mos"]) for r in sources[k])
    return tables
