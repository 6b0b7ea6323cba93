"""`Scorer`: score image files, arrays or tensors with a loaded model.

`tfiqa.load(path)` (`tfiqa.inference.loaders`) builds one for each format.

Example:
```python
import tfiqa

scorer = tfiqa.load("runs/quickstart/model.keras")
scorer.score(["a.jpg", "b.png"])          # array([0.71, 0.42], dtype=float32)
scorer.score(image_uint8_hw3, full=True)  # the whole image at its own size
```
"""

import dataclasses
import os

import numpy as np

from tfiqa.data.image_io import load_image
from tfiqa.errors import TfiqaError
from tfiqa.scoring_policy import ScoringPolicy

DEFAULT_BATCH_SIZE = 16
# Decoded pixels (bytes of uint8 RGB) one `score_files` batch may hold: 16
# images of 1 MP fit; larger ones go a few or one at a time (16 images of
# 80 MP decoded together took 6 GB).
BATCH_BYTES = 64 * 2**20


class Scorer:
    """Scores images with a loaded quality model under its scoring policy.

    Use `tfiqa.load(path)` rather than building one directly.

    Args:
        predict_fn: callable. `fn(uint8 array (N, H, W, 3)) -> (N,)` scores.
        input_size: int or None. Fixed square input side of the backend
            (TFLite/SavedModel exports), or None if it takes any size.
        policy: `tfiqa.scoring_policy.ScoringPolicy` or None. The model's
            scoring policy: crop size, crops, small-image rule and resize.
            None: the defaults.
        score_range: (low, high) or None. Range of the scores (None: unbounded).
        backend: str. "keras", "saved_model" or "tflite".
        path: str. Where the model was loaded from.

    Scores are higher-is-better quality (`higher_is_better`); models with a
    sigmoid output (the default) score in [0, 1] on the MOS scale they were
    fine-tuned on. Calling a scorer is `score`: `scorer(images)`.
    """

    # tfiqa models are trained to rank better images higher (MOS, not DMOS).
    higher_is_better = True

    def __init__(
        self,
        predict_fn,
        input_size=None,
        policy=None,
        score_range=(0.0, 1.0),
        backend="keras",
        path=None,
    ):
        self.predict_fn = predict_fn
        self.input_size = input_size
        policy = policy or ScoringPolicy()
        if input_size:
            # A fixed input is one crop; exports without a policy used to
            # take another size than the model's crops.
            policy = dataclasses.replace(policy, crop_size=int(input_size))
        self.policy = policy
        self.score_range = None if score_range is None else tuple(score_range)
        self.backend = backend
        self.path = path

    def __repr__(self):
        return (
            f"Scorer(backend={self.backend!r}, path={self.path!r}, "
            f"policy={self.policy}, score_range={self.score_range})"
        )

    def __call__(self, inputs, crops=None, full=False, batch_size=DEFAULT_BATCH_SIZE):
        return self.score(inputs, crops=crops, full=full, batch_size=batch_size)

    def score(self, inputs, crops=None, full=False, batch_size=DEFAULT_BATCH_SIZE):
        """Scores images; returns float32 np.ndarray (N,), higher is better.

        Args:
            inputs: an image file path (str, bytes or path-like), a list
                of paths, a uint8 array or tensor (H, W, 3) or (N, H, W, 3),
                or a list of (H, W, 3) arrays of any sizes. Files are decoded
                as `score_files` does. Encoded image bytes are not a path
                (`TfiqaError`): decode them with
                `tfiqa.data.image_io.decode_image` and pass the array. An
                empty batch scores to an empty array; an image without
                pixels (H or W of 0) raises `TfiqaError`. Other numeric
                arrays must hold finite values in [0, 255] (rounded to
                uint8, never clipped); NaN, inf, negative or > 255 values
                raise `TfiqaError`, and so does a float image in [0, 1]
                (multiply it by 255 first).
            crops: int or None. Average the scores of this many deterministic
                crops spread over each image (default: the model's policy).
                An image smaller than the crop follows the policy's
                small-image rule.
            full: bool. Score each whole image at its own resolution (needs a
                backend with dynamic input size: `.keras` or a dynamic export).
            batch_size: int. Images (crops) per forward pass.

        Raises:
            ImageError: a file cannot be read (see `score_files` to get
                per-image errors instead).
            TfiqaError: an array outside the accepted dtypes and ranges.
        """
        crops, batch_size = self._check(crops, full, batch_size)
        if _is_path_list(inputs):
            paths = (
                [inputs] if isinstance(inputs, (str, bytes, os.PathLike)) else inputs
            )
            scores = []
            for row in self.score_files(paths, crops, full, batch_size):
                if row["error"]:
                    raise row["exception"]
                scores.append(row["score"])
            return np.asarray(scores, np.float32)
        return self._score_images(to_image_list(inputs), crops, full, batch_size)

    def score_files(self, paths, crops=None, full=False, batch_size=DEFAULT_BATCH_SIZE):
        """Streams `{"image", "score", "error", "exception"}` per file, in order.

        Decodes up to `batch_size` files at a time, fewer when their pixels
        pass `BATCH_BYTES` (a large image is scored on its own, so memory
        stays near that of the largest image); a file that cannot be read or
        scored gets score None and its message, and the others go on.
        """
        crops, batch_size = self._check(crops, full, batch_size)
        _check_paths(paths)
        chunk, results, images, decoded = [], {}, {}, 0
        for path in paths:
            i = len(chunk)
            chunk.append(path)
            try:
                images[i] = load_image(path)
                decoded += images[i].nbytes
            except TfiqaError as e:
                results[i] = (None, e)
            if len(chunk) < batch_size and decoded < BATCH_BYTES:
                continue
            results.update(self._score_isolated(images, crops, full, batch_size))
            yield from (file_row(p, *results[j]) for j, p in enumerate(chunk))
            # Drop this chunk's images before the next one is decoded.
            chunk, results, images, decoded = [], {}, {}, 0
        results.update(self._score_isolated(images, crops, full, batch_size))
        yield from (file_row(p, *results[j]) for j, p in enumerate(chunk))

    def score_each(self, images, crops=None, full=False, batch_size=DEFAULT_BATCH_SIZE):
        """Scores decoded images, one `(score, None)` or `(None, error)` each.

        What `score_files` does after decoding: the images are scored
        together, and if that fails each is scored alone so that an image
        the policy cannot score (a `TfiqaError`) spoils only its own result.

        Args:
            images: list of uint8 arrays (H, W, 3), any sizes.
            crops, full, batch_size: see `score`.

        Returns:
            list of (float, None) or (None, TfiqaError), in order.
        """
        crops, batch_size = self._check(crops, full, batch_size)
        results = self._score_isolated(dict(enumerate(images)), crops, full, batch_size)
        return [results[i] for i in range(len(images))]

    def _score_isolated(self, images, crops, full, batch_size):
        """{key: (score, None) or (None, error)}; one bad image spoils nothing."""
        if not images:
            return {}
        try:
            scores = self._score_images(list(images.values()), crops, full, batch_size)
            return {k: (float(s), None) for k, s in zip(images, scores, strict=True)}
        except TfiqaError as e:
            if len(images) == 1:
                return {next(iter(images)): (None, e)}
        out = {}
        for key, image in images.items():
            try:
                out[key] = (float(self._score_images([image], crops, full, 1)[0]), None)
            except TfiqaError as e:
                out[key] = (None, e)
        return out

    def _check(self, crops, full, batch_size):
        if full and crops is not None:
            raise TfiqaError(
                f"Pass either crops or full=True, not both. Received: crops={crops}, "
                "full=True"
            )
        if full and self.input_size:
            raise TfiqaError(
                f"{self.path} takes a fixed {self.input_size}x{self.input_size} "
                "input, so it cannot score whole images; use crops instead. "
                "Received: full=True"
            )
        if crops is None and not full:
            crops = self.policy.crops
        if crops is not None and (isinstance(crops, bool) or int(crops) < 1):
            raise TfiqaError(f"crops must be a positive integer. Received: {crops!r}")
        if int(batch_size) < 1:
            raise TfiqaError(f"batch_size must be positive. Received: {batch_size!r}")
        return (None if crops is None else int(crops)), int(batch_size)

    def _score_images(self, images, crops, full, batch_size):
        if not images:
            return np.zeros((0,), np.float32)
        if full:
            return self._score_full(images, batch_size)
        return self._score_crops(images, crops, batch_size)

    def _run(self, batch):
        scores = np.asarray(self.predict_fn(np.ascontiguousarray(batch)), np.float32)
        return scores.reshape(-1)

    def _score_full(self, images, batch_size):
        # Same-sized images share a forward pass; others go one size at a time.
        scores = np.zeros(len(images), np.float32)
        by_shape = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                scores[chunk] = self._run(np.stack([images[i] for i in chunk]))
        return scores

    def _score_crops(self, images, num_crops, batch_size):
        pieces, owners, whole = [], [], []
        for i, image in enumerate(images):
            if self.policy.small_images == "whole" and self.policy.is_small(image):
                if self.input_size:
                    raise TfiqaError(
                        f"{self.path} takes a fixed {self.input_size} px input and "
                        "the model's small-image rule is 'whole': it cannot score "
                        f"an image smaller than that. Received: {image.shape[:2]}"
                    )
                whole.append(i)
                continue
            cut = self.policy.crops_of(image, num_crops)
            pieces.extend(cut)  # (num_crops, size, size, 3)
            owners.extend([i] * len(cut))
        totals = np.zeros(len(images), np.float64)
        counts = np.zeros(len(images), np.int64)
        for start in range(0, len(pieces), batch_size):
            results = self._run(np.stack(pieces[start : start + batch_size]))
            np.add.at(totals, owners[start : start + batch_size], results)
            np.add.at(counts, owners[start : start + batch_size], 1)
        if whole:
            totals[whole] = self._score_full([images[i] for i in whole], batch_size)
            counts[whole] = 1
        return (totals / counts).astype(np.float32)


def _is_path_list(inputs):
    if isinstance(inputs, (str, bytes, os.PathLike)):
        return True
    if isinstance(inputs, (list, tuple)) and inputs:
        return all(isinstance(i, (str, bytes, os.PathLike)) for i in inputs)
    return False


def _check_paths(paths):
    """File names cannot hold a NUL byte; encoded image bytes always do."""
    for i, path in enumerate(paths):
        if isinstance(path, bytes) and b"\0" in path:
            raise TfiqaError(
                f"Item {i} is bytes holding a NUL byte: encoded image data, not a "
                "file name. Score files by path, or decode the bytes first with "
                "tfiqa.data.image_io.decode_image(data) and pass the array. "
                f"Received: {len(path)} bytes starting {path[:8]!r}"
            )


def file_row(path, score, error):
    """The result row of one file: `{"image", "score", "error", "exception"}`.

    `error` (an exception or None) becomes one line of text in "error", the
    column `tfiqa predict` writes; its score is None then.
    """
    return {
        "image": path,
        "score": score,
        "error": _error_text(error) if error else "",
        "exception": error,
    }


def _error_text(error):
    return str(error).replace("\n", " ").replace("\r", " ").strip() or (
        error.__class__.__name__
    )


def to_uint8(image, what="image"):
    """A uint8 array as is; other numbers must be finite and in [0, 255].

    They are rounded to uint8, never clipped or rescaled. A float array with
    fractional values all within [0, 1] is refused: it is almost surely a
    [0, 1] image, which would score as a black one.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
        raise TfiqaError(
            f"{what} must be a uint8 (or 0..255 numeric) array. "
            f"Received: dtype={array.dtype}"
        )
    if np.iscomplexobj(array) or not np.isfinite(array).all():
        raise TfiqaError(
            f"{what} must hold finite real pixel values in [0, 255]. "
            f"Received: dtype={array.dtype} with NaN, inf or complex values"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise TfiqaError(
            f"{what} pixel values must be in [0, 255]. Received: "
            f"min={array.min()}, max={array.max()}"
        )
    if (
        array.size
        and np.issubdtype(array.dtype, np.floating)
        and array.max() <= 1
        and (array != np.rint(array)).any()
    ):
        raise TfiqaError(
            f"{what} looks like floats in [0, 1]; scores expect 0..255 pixels: "
            f"pass image * 255. Received: dtype={array.dtype}, max={array.max()}"
        )
    return np.rint(array).astype(np.uint8)


def to_image_list(inputs):
    """Normalises `score` inputs to a list of uint8 (H, W, 3) arrays."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if hasattr(inputs, "numpy") and not isinstance(inputs, np.ndarray):
        inputs = inputs.numpy()  # a tf.Tensor
    if isinstance(inputs, np.ndarray):
        array = to_uint8(inputs)
        if array.ndim == 3:
            array = array[np.newaxis]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise TfiqaError(
                "Images must have shape (H, W, 3) or (N, H, W, 3). "
                f"Received: shape={array.shape}"
            )
        _check_has_pixels(array.shape[1:])
        return list(array)
    images = []
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            images.append(load_image(item))
            continue
        if hasattr(item, "numpy") and not isinstance(item, np.ndarray):
            item = item.numpy()
        array = to_uint8(item)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise TfiqaError(
                f"Each image in a list must have shape (H, W, 3). "
                f"Received: shape={array.shape}"
            )
        _check_has_pixels(array.shape)
        images.append(array)
    return images


def _check_has_pixels(shape):
    if shape[0] == 0 or shape[1] == 0:
        raise TfiqaError(
            f"An image must have at least one pixel. Received: shape={shape}"
        )
