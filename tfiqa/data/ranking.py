"""Ranking batches for pretraining from the order of synthetic distortion levels.

A batch holds `groups_per_batch` groups. A group is one (source image,
distortion type): the pristine crop (level 0) and the same crop distorted at
every level, all cut at one position, so that within a group a lower level
always means better quality. The efficient all-pairs ranking loss scores
the whole batch in one pass and compares every ordered pair of a group.

Layout of a batch with G groups and levels (1, ..., 5), N = G * 6:

    images (N, c, c, 3) uint8:  g0/L0 g0/L1 ... g0/L5  g1/L0 ... gG-1/L5
    group  (N,) int32:          0     0     ... 0      1     ... G-1
    level  (N,) int32:          0     1     ... 5      0     ... 5

Everything random (source image, type, crop position, noise) is drawn from
stateless RNGs keyed by (seed, element index): the same seed gives the same
batches whatever the parallelism.

Reference: Liu, van de Weijer, Bagdanov, "RankIQA: Learning from Rankings
for No-reference Image Quality Assessment", ICCV 2017.
"""

import collections
import os

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import attr_value_pb2

from tfiqa.data.image_io import load_image
from tfiqa.data.pipeline import check_records
from tfiqa.distortions import DISTORTIONS, LEVELS, cpu_only, resolve_types
from tfiqa.distortions.ops import to_uint8
from tfiqa.distortions.registry import sub_seed
from tfiqa.errors import ConfigError, DataError


def check_paths(image_paths, crop_size):
    """Absolute paths of images that exist, decode and hold a crop; raises
    ImageError naming the first bad one."""
    if int(crop_size) < 1:
        raise ConfigError(f"crop_size must be >= 1. Received: crop_size={crop_size}")
    paths = [os.path.abspath(str(p)) for p in image_paths]
    if not paths:
        raise DataError("No pristine images given. Received: 0 image paths")
    check_records([{"image_path": p} for p in paths], crop_size)
    return paths


def _decode(path):
    path = path.decode("utf-8") if isinstance(path, bytes) else str(path)
    return load_image(path)


def load_op(path):
    """Graph op: path string -> uint8 (H, W, 3) via `load_image`."""
    image = tf.numpy_function(_decode, [path], tf.uint8, stateful=False)
    return tf.ensure_shape(image, [None, None, 3])


def crop_offsets(height, width, crop_size, seed):
    """Stateless-random top-left corner of a square crop: (top, left)."""
    top = tf.random.stateless_uniform([], seed, 0, height - crop_size + 1, tf.int32)
    left = tf.random.stateless_uniform(
        [], sub_seed(seed, 1), 0, width - crop_size + 1, tf.int32
    )
    return top, left


def random_crop(image, crop_size, seed):
    """A square crop at a stateless-random position; float32 in [0, 1]."""
    shape = tf.shape(image)
    top, left = crop_offsets(shape[0], shape[1], crop_size, seed)
    crop = image[top : top + crop_size, left : left + crop_size]
    crop = tf.ensure_shape(crop, [crop_size, crop_size, 3])
    return tf.cast(crop, tf.float32) / 255.0


# Decoded image sets kept between calls (a stage builds one dataset per
# epoch from the same files): {key: (flat, offsets, heights, widths)}.
_DECODED = collections.OrderedDict()
_DECODED_KEEP = 4
DEFAULT_CACHE_MB = 256


def _decoded_size(path):
    """Bytes of the decoded RGB image, from the header only."""
    with Image.open(path) as img:
        w, h = img.size
    return w * h * 3


def _decode_all(paths):
    """All images decoded into one flat uint8 array with row-major offsets,
    memoised by (path, mtime, size) so later epochs skip decoding."""
    key = tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)
    if key in _DECODED:
        _DECODED.move_to_end(key)
        return _DECODED[key]
    images = [load_image(p) for p in paths]
    sizes = [im.size for im in images]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    entry = (
        np.concatenate([im.reshape(-1) for im in images]),
        offsets,
        np.array([im.shape[0] for im in images], np.int32),
        np.array([im.shape[1] for im in images], np.int32),
    )
    _DECODED[key] = entry
    while len(_DECODED) > _DECODED_KEEP:
        _DECODED.popitem(last=False)
    return entry


def crop_source(paths, crop_size, cache_mb=DEFAULT_CACHE_MB):
    """A graph function `(path_index, seed) -> float32 crop (c, c, 3)` in [0, 1].

    When the decoded images fit in `cache_mb` MiB they are decoded once, here,
    and kept in memory: a crop is then a slice of one tensor (only its rows
    are copied) instead of a PNG/JPEG decode per crop. Otherwise every crop
    decodes its file. Both give the same crop for the same (index, seed).
    """
    cache = cache_mb is not None and cache_mb > 0
    if cache:
        cache = sum(_decoded_size(p) for p in paths) <= cache_mb * 2**20
    if not cache:
        path_table = tf.constant(paths)

        def from_file(path_index, seed):
            image = load_op(tf.gather(path_table, path_index))
            return random_crop(image, crop_size, seed)

        return from_file

    flat, offsets, heights, widths = (tf.constant(a) for a in _decode_all(paths))

    def from_memory(path_index, seed):
        height = tf.gather(heights, path_index)
        width = tf.gather(widths, path_index)
        top, left = crop_offsets(height, width, crop_size, seed)
        row = tf.cast(width, tf.int64) * 3
        start = tf.gather(offsets, path_index) + tf.cast(top, tf.int64) * row
        rows = tf.slice(flat, [start], [crop_size * row])
        rows = tf.reshape(rows, [crop_size, width, 3])  # (c, W, 3)
        crop = tf.ensure_shape(rows[:, left : left + crop_size], [crop_size] * 2 + [3])
        return tf.cast(crop, tf.float32) / 255.0

    return from_memory


def lazy_switch_case(index, branch_fns):
    """`tf.switch_case` whose branches are instantiated when first taken.

    By default TensorFlow lowers a `Case` op into the enclosing function, so
    every branch (here: every distortion type at every level) is built into
    one graph each time a tf.data iterator starts, several seconds per type
    on two cores. Left as a function call, a branch costs nothing until a
    batch first needs it.
    """
    out = tf.switch_case(index, branch_fns)
    op = out.op
    while op.type == "Identity":
        op = op.inputs[0].op
    if op.type in ("Case", "StatelessCase"):
        op._set_attr("_lower_using_switch_merge", attr_value_pb2.AttrValue(b=False))
    return out


def distort_one(image, type_index, level, seed, types):
    """Applies `types[type_index]` at a tensor `level` (1..5) to float (H, W, 3).

    A two-level `tf.switch_case` (type, then level), so every type keeps its
    static per-level parameters.
    """

    def type_branch(name):
        fn = DISTORTIONS.get(name).fn

        def run():
            branches = [
                (lambda lv=lv: tf.clip_by_value(fn(image, lv, seed), 0.0, 1.0))
                for lv in LEVELS
            ]
            return tf.switch_case(level - 1, branches)

        return run

    return tf.switch_case(type_index, [type_branch(n) for n in types])


def distort_levels(image, type_index, seed, types, levels, skip=()):
    """Applies `types[type_index]` at every level of `levels` to one image:
    float (H, W, 3) -> (len(levels), H, W, 3), one seed for all levels.
    Types in `skip` return `image` at every level (their graph holds no op
    of theirs: used where their kernels cannot run)."""

    def type_branch(name):
        fn = DISTORTIONS.get(name).fn
        if name in skip:
            return lambda: tf.stack([image] * len(levels))

        def run():
            return tf.stack(
                [tf.clip_by_value(fn(image, lv, seed), 0.0, 1.0) for lv in levels]
            )

        return run

    return lazy_switch_case(type_index, [type_branch(n) for n in types])


# Traced `distort_levels` functions, shared by every dataset built with the
# same types, levels and crop size (a stage builds one per epoch): tracing
# all the types takes tens of seconds on two cores, and is done once.
_LEVEL_FNS = {}


def levels_function(types, levels, crop_size):
    """A tf.function `(crop float (c, c, 3), type_index, seed) -> (L, c, c, 3)`
    running `distort_levels`, traced once per (types, levels, crop_size)."""
    key = (tuple(types), tuple(levels), int(crop_size))
    if key not in _LEVEL_FNS:
        shape = [int(crop_size), int(crop_size), 3]

        @tf.function(
            input_signature=[
                tf.TensorSpec(shape, tf.float32),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([2], tf.int32),
            ]
        )
        def run(crop, type_index, seed):
            return distort_levels(crop, type_index, seed, key[0], key[1])

        _LEVEL_FNS[key] = run
    return _LEVEL_FNS[key]


def check_levels(levels):
    """Distinct distortion levels in 1..5, sorted; ConfigError otherwise."""
    levels = tuple(int(lv) for lv in levels)
    if (
        not levels
        or any(lv not in LEVELS for lv in levels)
        or len(set(levels)) < len(levels)
    ):
        raise ConfigError(
            f"levels must be distinct ints in 1..5. Received: levels={levels}"
        )
    return tuple(sorted(levels))


def ranking_dataset(
    image_paths,
    types,
    crop_size,
    groups_per_batch,
    seed,
    levels=(1, 2, 3, 4, 5),
    include_pristine=True,
    deterministic=True,
    cache_mb=DEFAULT_CACHE_MB,
    device_distortions=False,
):
    """Endless dataset of ranking batches (see the module docstring).

    Args:
        image_paths: list of str. Pristine images (already split by source).
        types: list of str distortion names; empty/None = the fast KADID types.
        crop_size: int. Square crop side; images must be at least this big.
        groups_per_batch: int. Groups G per batch.
        seed: int. Makes the stream reproducible.
        levels: ints in 1..5 included in every group.
        include_pristine: bool. Add the undistorted crop as level 0.
        deterministic: bool. False lets groups arrive in the order they are
            finished (faster under load); each group's content still depends
            on the seed only, but which groups share a batch may vary.
        cache_mb: int. Decode the images once and keep them in memory when
            they fit in this many MiB (0 or None: decode every crop's file).
        device_distortions: bool. Distort only the types that need CPU-only
            kernels (`cpu_only`: JPEG, JPEG2000) here; groups of the other
            types hold the pristine crop at every level, and the labels add
            "type_index" and "seed" (G,) for `tfiqa.data.device_distortions`
            to distort them inside the train step, with the same result.

    Returns:
        tf.data.Dataset of (images uint8 (N, c, c, 3), {"group": int32 (N,),
        "level": int32 (N,)}), N = G * (len(levels) + include_pristine).

    Example:
    ```python
    train, val = split_sources(list_images("pristine/"), 0.2, seed=0)
    ds = ranking_dataset(train, None, 224, groups_per_batch=4, seed=0)
    images, labels = next(iter(ds))
    ```
    """
    types = resolve_types("kadid", types)
    levels = check_levels(levels)
    if int(groups_per_batch) < 1:
        raise ConfigError(
            "groups_per_batch must be >= 1. Received: "
            f"groups_per_batch={groups_per_batch}"
        )
    crop_size = int(crop_size)
    groups_per_batch = int(groups_per_batch)
    paths = check_paths(image_paths, crop_size)
    group_levels = ((0,) if include_pristine else ()) + levels
    crop_fn = crop_source(paths, crop_size, cache_mb)
    make_group = group_function(
        crop_fn,
        len(paths),
        crop_size,
        types,
        levels,
        seed,
        include_pristine=include_pristine,
        device_distortions=device_distortions,
    )
    ds = tf.data.Dataset.counter()
    ds = ds.map(
        make_group,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=bool(deterministic),
    )
    ds = ds.batch(groups_per_batch, drop_remainder=True)
    ds = ds.map(
        flatten_function(crop_size, groups_per_batch, group_levels, device_distortions),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def group_function(
    crop_fn,
    n_paths,
    crop_size,
    types,
    levels,
    seed,
    include_pristine,
    device_distortions,
):
    """`index -> (uint8 (per_group, c, c, 3), type_index, distort seed)`: one
    group, drawn from stateless RNGs keyed by (seed, index), cropped by
    `crop_fn` (a `crop_source` over `n_paths` images)."""
    distort_fn = levels_function(types, levels, crop_size)
    n_types = len(types)
    on_cpu = tf.constant([cpu_only(t) for t in types])

    def make_group(index):
        key = tf.stack([tf.constant(seed, tf.int64), index])
        key = tf.cast(tf.math.floormod(key, 2**31 - 1), tf.int32)
        path_index = tf.random.stateless_uniform([], key, 0, n_paths, tf.int32)
        type_index = tf.random.stateless_uniform(
            [], sub_seed(key, 1), 0, n_types, tf.int32
        )
        crop = crop_fn(path_index, sub_seed(key, 2))
        distort_seed = sub_seed(key, 3)

        def distort():
            out = distort_fn(crop, type_index, distort_seed)
            return tf.ensure_shape(out, [len(levels), crop_size, crop_size, 3])

        if device_distortions:
            distorted = tf.cond(
                tf.gather(on_cpu, type_index),
                distort,
                lambda: tf.stack([crop] * len(levels)),
            )
        else:
            distorted = distort()
        if include_pristine:
            distorted = tf.concat([crop[None], distorted], axis=0)
        # (per_group, c, c, 3)
        return to_uint8(distorted), type_index, distort_seed

    return make_group


def flatten_function(crop_size, groups_per_batch, group_levels, device_distortions):
    """`(groups, type_index, seed) -> (images (N, c, c, 3), labels)`: a batch of
    groups laid out as in the module docstring."""
    per_group = len(group_levels)

    def flatten(groups, type_index, distort_seed):
        images = tf.reshape(groups, [-1, crop_size, crop_size, 3])
        group = tf.repeat(tf.range(groups_per_batch, dtype=tf.int32), per_group)
        level = tf.tile(tf.constant(group_levels, tf.int32), [groups_per_batch])
        labels = {"group": group, "level": level}
        if device_distortions:
            labels.update(type_index=type_index, seed=distort_seed)
        return images, labels

    return flatten
