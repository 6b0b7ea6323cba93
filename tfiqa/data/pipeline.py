"""tf.data pipelines from records to batches of uint8 crops and MOS labels.

Decoding goes through `load_image` (Pillow) inside `tf.numpy_function`, so
MPO files, 16-bit PNGs, CMYK JPEGs and EXIF orientation are handled exactly
as at inference time. Images are cropped, never resized.
"""

import logging
import threading

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from tfiqa.data.crops import tf_eval_crops
from tfiqa.data.image_io import load_image
from tfiqa.errors import ConfigError, DataError, ImageError

logger = logging.getLogger("tfiqa.data")

AUTOTUNE = tf.data.AUTOTUNE


class SkipLog:
    """Counts and remembers images skipped with `skip_bad=True`.

    Example:
    ```python
    log = SkipLog()
    ds = mos_dataset(records, 224, 32, training=True, skip_bad=True, skip_log=log)
    ...
    print(log.count, log.items[:3])
    ```
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.items = []  # (path, reason)

    def add(self, path, reason):
        with self._lock:
            self.items.append((path, reason))
        logger.warning("Skipping bad image (%s): %s", reason, path)

    @property
    def count(self):
        return len(self.items)


def check_records(records, crop_size, skip_bad=False, skip_log=None):
    """Checks every image's header: exists, is an image, is at least the crop.

    Only the header is read (fast), so a truncated file is caught later, at
    decode time. The smaller side is what matters for a square crop, so EXIF
    rotation does not change the outcome.

    Returns:
        The records that passed (all of them unless `skip_bad`).

    Raises:
        ImageError: naming the first bad file, unless `skip_bad`.
    """
    kept = []
    for record in records:
        path = record["image_path"]
        try:
            with Image.open(path) as img:
                w, h = img.size
        except FileNotFoundError as e:
            error = ImageError(path, "Image file not found")
            error.__cause__ = e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            error = ImageError(path, f"Cannot decode image ({e})")
        else:
            if min(h, w) >= crop_size:
                kept.append(record)
                continue
            error = ImageError(
                path,
                f"Image is smaller than the crop size {crop_size}x{crop_size}. "
                f"Received: {h}x{w}",
            )
        if not skip_bad:
            raise error
        (skip_log or SkipLog()).add(path, error.reason)
    if len(kept) < len(records):
        logger.warning(
            "Skipped %d of %d images (skip_bad is on).",
            len(records) - len(kept),
            len(records),
        )
    return kept


def _decoder(skip_bad, skip_log):
    """A numpy function path -> uint8 (H, W, 3); (0, 0, 3) marks a skip."""

    def decode(path):
        path = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        try:
            return load_image(path)
        except ImageError as e:
            if not skip_bad:
                raise
            skip_log.add(path, e.reason)
            return np.zeros((0, 0, 3), np.uint8)

    return decode


def _decode_op(path, decode):
    image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
    return tf.ensure_shape(image, [None, None, 3])


def _big_enough(image, crop_size):
    shape = tf.shape(image)
    return tf.logical_and(shape[0] >= crop_size, shape[1] >= crop_size)


def _validate(records, crop_size, batch_size):
    if not records:
        raise DataError("No records to build a dataset from. Received: 0 records")
    if int(crop_size) < 1:
        raise ConfigError(f"crop_size must be >= 1. Received: crop_size={crop_size}")
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}")


def _cutter(crop_size, training):
    """(image, score, rand) -> (crop, score): a random crop and flip seeded by
    `rand` when training, else the centre crop."""

    def cut(image, score, rand):
        if training:
            crop_seed = tf.stack([rand, tf.constant(1, tf.int64)])
            flip_seed = tf.stack([rand, tf.constant(2, tf.int64)])
            image = tf.image.stateless_random_crop(
                image, [crop_size, crop_size, 3], seed=crop_seed
            )
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        else:
            image = tf_eval_crops(image, crop_size, 1)[0]
        image = tf.ensure_shape(image, [crop_size, crop_size, 3])
        return image, score

    return cut


def mos_dataset(
    records,
    crop_size,
    batch_size,
    training,
    seed=0,
    skip_bad=False,
    skip_log=None,
    check=True,
    drop_remainder=False,
):
    """Batches of square uint8 crops with their MOS.

    Training: shuffled each epoch (seeded), one random crop and a random
    horizontal flip per image per epoch, both drawn from a seeded stream that
    differs between epochs. Evaluation: one centre crop, input order.

    Args:
        records: list of record dicts with "image_path" and "mos".
        crop_size: int. Side of the square crop; no image is resized.
        batch_size: int.
        training: bool.
        seed: int. Shuffle and augmentation seed.
        skip_bad: bool. Log, count and drop bad images instead of failing.
        skip_log: SkipLog or None. Receives the skipped files.
        check: bool. Check image headers and sizes up front, so that
            missing, non-image and too-small files fail before training.
        drop_remainder: bool. Drop the last partial batch.

    Returns:
        tf.data.Dataset of (images uint8 (B, c, c, 3), mos float32 (B,)).

    Example:
    ```python
    ds = mos_dataset(records, crop_size=224, batch_size=32, training=True)
    model.fit(ds, epochs=10)
    ```
    """
    _validate(records, crop_size, batch_size)
    crop_size = int(crop_size)
    skip_log = skip_log if skip_log is not None else SkipLog()
    if check:
        records = check_records(records, crop_size, skip_bad, skip_log)
        if not records:
            raise DataError(
                f"Every image was skipped as bad. Received: {skip_log.count} skips"
            )
    paths = [r["image_path"] for r in records]
    mos = np.asarray([r["mos"] for r in records], np.float32)
    decode = _decoder(skip_bad, skip_log)

    ds = tf.data.Dataset.from_tensor_slices((paths, mos))
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        # One int64 per element, different in every epoch yet reproducible.
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, randoms))

        def load(pair, rand):
            path, score = pair
            return _decode_op(path, decode), score, rand

    else:

        def load(path, score):
            return _decode_op(path, decode), score, tf.constant(0, tf.int64)

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    if skip_bad:
        ds = ds.filter(lambda image, score, rand: _big_enough(image, crop_size))

    ds = ds.map(_cutter(crop_size, training), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    return ds.prefetch(AUTOTUNE)


def eval_crops_dataset(
    records, crop_size, num_crops=5, skip_bad=False, skip_log=None, check=True
):
    """Per image, `num_crops` deterministic crops for multi-crop scoring.

    Returns:
        tf.data.Dataset of (crops uint8 (N, c, c, 3), mos float32 ()), one
        element per image in input order; average the N scores per image.
    """
    _validate(records, crop_size, 1)
    crop_size = int(crop_size)
    skip_log = skip_log if skip_log is not None else SkipLog()
    if check:
        records = check_records(records, crop_size, skip_bad, skip_log)
    paths = [r["image_path"] for r in records]
    mos = np.asarray([r["mos"] for r in records], np.float32)
    decode = _decoder(skip_bad, skip_log)
    ds = tf.data.Dataset.from_tensor_slices((paths, mos))
    ds = ds.map(
        lambda path, score: (_decode_op(path, decode), score),
        num_parallel_calls=AUTOTUNE,
    )
    if skip_bad:
        ds = ds.filter(lambda image, score: _big_enough(image, crop_size))
    ds = ds.map(
        lambda image, score: (tf_eval_crops(image, crop_size, num_crops), score),
        num_parallel_calls=AUTOTUNE,
    )
    return ds.prefetch(AUTOTUNE)


def eval_image_dataset(paths, skip_bad=False, skip_log=None):
    """Full images, one per element, for full-resolution scoring.

    Args:
        paths: list of image paths.

    Returns:
        tf.data.Dataset of (image uint8 (H, W, 3), path string); sizes vary,
        so batch with `.batch(1)` (or pad) before a model call.
    """
    if not paths:
        raise DataError("No images to score. Received: 0 paths")
    skip_log = skip_log if skip_log is not None else SkipLog()
    decode = _decoder(skip_bad, skip_log)
    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    ds = ds.map(
        lambda path: (_decode_op(path, decode), path), num_parallel_calls=AUTOTUNE
    )
    if skip_bad:
        ds = ds.filter(lambda image, path: tf.size(image) > 0)
    return ds.prefetch(AUTOTUNE)
