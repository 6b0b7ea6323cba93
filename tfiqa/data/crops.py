"""Deterministic evaluation crops spread over an image (never resized).

IQA models judge artefacts at the pixel level, so evaluation averages the
scores of a few full-resolution crops instead of warping the image to the
network's input size.
"""

import numpy as np

from tfiqa.data.image_io import check_min_size
from tfiqa.errors import ConfigError


def crop_positions(num_crops):
    """Relative crop positions (short, long) in [0, 1] along the image's sides.

    The first value runs along the image's shorter side, the second along the
    longer one (0 = top/left, 1 = bottom/right), so that a portrait photo gets
    its crops spread vertically. N=1 is the centre; N=5 is the centre and the
    four corners; other N use a grid of `floor(sqrt(N))` lines along the
    shorter side and `ceil(N / lines)` along the longer side.
    """
    n = int(num_crops)
    if n < 1:
        raise ConfigError(f"num_crops must be >= 1. Received: num_crops={num_crops}")
    if n == 1:
        return [(0.5, 0.5)]
    if n == 5:
        return [(0.5, 0.5), (0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    rows = int(np.floor(np.sqrt(n)))
    cols = int(np.ceil(n / rows))
    ys = [0.5] if rows == 1 else list(np.linspace(0.0, 1.0, rows))
    xs = [0.5] if cols == 1 else list(np.linspace(0.0, 1.0, cols))
    return [(float(y), float(x)) for y in ys for x in xs][:n]


def _offsets(length, crop_size, fractions):
    span = length - crop_size
    return [int(round(f * span)) for f in fractions]


def eval_crops(image, crop_size, num_crops=1, path=""):
    """Cuts `num_crops` deterministic square crops spread over `image`.

    Args:
        image: uint8 array or tensor (H, W, 3).
        crop_size: int. Side of each crop; H and W must be at least this.
        num_crops: int. 1 = centre crop; 5 = centre and corners.
        path: str. The image's file, named in errors.

    Returns:
        uint8 (N, c, c, 3): a numpy array for numpy input, else a tensor.

    Raises:
        ImageError: the image is smaller than the crop.

    Example:
    ```python
    crops = eval_crops(load_image("a.jpg"), 224, num_crops=5)  # (5, 224, 224, 3)
    ```
    """
    crop_size = int(crop_size)
    positions = crop_positions(num_crops)
    if isinstance(image, np.ndarray):
        check_min_size(image, crop_size, path)
        h, w = image.shape[:2]
        axis_y, axis_x = (1, 0) if h > w else (0, 1)
        ys = _offsets(h, crop_size, [p[axis_y] for p in positions])
        xs = _offsets(w, crop_size, [p[axis_x] for p in positions])
        return np.stack(
            [
                image[y : y + crop_size, x : x + crop_size]
                for y, x in zip(ys, xs, strict=True)
            ]
        )
    import tensorflow as tf  # tensors only: numpy crops serve TF-free scoring

    image = tf.convert_to_tensor(image)
    if image.shape.rank == 3 and image.shape[0] is not None and image.shape[1]:
        check_min_size(image, crop_size, path)
    return tf_eval_crops(image, crop_size, num_crops)


def tf_eval_crops(image, crop_size, num_crops=1):
    """Graph-mode `eval_crops` for tensors of dynamic size (H, W, 3).

    Too-small images fail with a TF InvalidArgumentError; callers in
    tf.data pipelines check sizes before (see `tfiqa.data.pipeline`).
    """
    import tensorflow as tf

    positions = crop_positions(num_crops)
    shape = tf.shape(image)
    tf.debugging.assert_greater_equal(
        tf.minimum(shape[0], shape[1]),
        crop_size,
        message=f"Image is smaller than the crop size {crop_size}",
    )
    span_y = tf.cast(shape[0] - crop_size, tf.float32)
    span_x = tf.cast(shape[1] - crop_size, tf.float32)
    portrait = shape[0] > shape[1]
    crops = []
    for short, long in positions:
        fy = tf.where(portrait, long, short)
        fx = tf.where(portrait, short, long)
        # Python's round() is half-to-even, as is tf.round, so the numpy and
        # tensor paths pick the same pixels.
        y = tf.cast(tf.round(fy * span_y), tf.int32)
        x = tf.cast(tf.round(fx * span_x), tf.int32)
        crops.append(image[y : y + crop_size, x : x + crop_size])
    out = tf.stack(crops)  # (N, c, c, 3)
    return tf.ensure_shape(out, [len(positions), crop_size, crop_size, None])


def fit_to_size(images, size):
    """Centre-crops (or zero-pads) images to `size x size` without resizing,
    as `tf.image.resize_with_crop_or_pad` does.

    Args:
        images: uint8 numpy array (H, W, C) or (B, H, W, C).
        size: int or None. None (or 0) returns the images unchanged.

    Returns:
        The same rank and dtype as `images`; (size, size) spatially.
    """
    if not size:
        return images
    images = np.asarray(images)
    h, w = images.shape[-3], images.shape[-2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    images = images[..., top : top + size, left : left + size, :]
    pad_y, pad_x = size - images.shape[-3], size - images.shape[-2]
    pads = [(0, 0)] * (images.ndim - 3) + [
        (pad_y // 2, pad_y - pad_y // 2),
        (pad_x // 2, pad_x - pad_x // 2),
        (0, 0),
    ]
    return np.pad(images, pads)
