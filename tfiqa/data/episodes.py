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

Reference: Zhu, Li, Wang, Wang, Wu, "MetaIQA: Deep Meta-learning for
No-Reference Image Quality Assessment", CVPR 2020.
"""

import collections

import tensorflow as tf

from tfiqa.data.ranking import (
    DEFAULT_CACHE_MB,
    _check_levels,
    check_paths,
    crop_source,
    distort_one,
    to_uint8,
)
from tfiqa.distortions import resolve_types
from tfiqa.distortions.base import sub_seed
from tfiqa.distortions.measures import level_label, pseudo_mos
from tfiqa.errors import ConfigError, DataError

LABELS = ("pseudo_mos", "level")


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
    levels = _check_levels(levels)
    support_size, query_size, meta_batch_size = _check_sizes(
        support_size, query_size, meta_batch_size
    )
    crop_size = int(crop_size)
    paths = check_paths(image_paths, crop_size)
    crop_fn = crop_source(paths, crop_size, cache_mb)
    level_table = tf.constant(levels, tf.int32)
    per_task = support_size + query_size

    def make_sample(index):
        type_index = _task_of(index, per_task, meta_batch_size, len(types), seed)
        key = sub_seed(_key(seed, index), 7)
        path_index = tf.random.stateless_uniform([], key, 0, len(paths), tf.int32)
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
    paths, scores, starts, counts = [], [], [], []
    for group in groups.values():
        starts.append(len(paths))
        counts.append(len(group))
        paths.extend(r["image_path"] for r in group)
        scores.extend(float(r["mos"]) for r in group)
    paths = check_paths(paths, crop_size)
    crop_fn = crop_source(paths, crop_size, cache_mb)
    score_table = tf.constant(scores, tf.float32)
    start_table = tf.constant(starts, tf.int32)
    count_table = tf.constant(counts, tf.int32)
    per_task = support_size + query_size

    def make_sample(index):
        task = _task_of(index, per_task, meta_batch_size, len(groups), seed)
        key = sub_seed(_key(seed, index), 7)
        offset = tf.random.stateless_uniform(
            [], key, 0, tf.gather(count_table, task), tf.int32
        )
        row = tf.gather(start_table, task) + offset
        crop = crop_fn(row, sub_seed(key, 1))
        return to_uint8(crop), tf.gather(score_table, row)

    ds = tf.data.Dataset.counter().map(
        make_sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return _episode_batches(ds, support_size, query_size, meta_batch_size)
