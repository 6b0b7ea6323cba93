"""`load(path)` -> `Scorer`: score image files, arrays or tensors with a model.

Example:
```python
import tfiqa

scorer = tfiqa.load("runs/quickstart/model.keras")
scorer.score(["a.jpg", "b.png"])          # array([0.71, 0.42], dtype=float32)
scorer.score(image_uint8_hw3, full=True)  # the whole image at its own size
```
"""

import json
import os

import numpy as np

from tfiqa.errors import DataError, TfiqaError

DEFAULT_CROPS = 5
DEFAULT_CROP_SIZE = 224
DEFAULT_BATCH_SIZE = 16


class Scorer:
    """Scores images with a loaded quality model.

    Use `tfiqa.load(path)` rather than building one directly.

    Args:
        predict_fn: callable. `fn(uint8 array (N, H, W, 3)) -> (N,)` scores.
        input_size: int or None. Fixed square input side of the backend
            (TFLite/SavedModel exports), or None if it takes any size.
        crop_size: int. Side of the crops averaged in crop mode (the size the
            model was trained on).
        score_range: (low, high) or None. Range of the scores (None: unbounded).
        backend: str. "keras", "saved_model" or "tflite".
        path: str. Where the model was loaded from.

    Scores are higher-is-better quality; models with a sigmoid output (the
    default) score in [0, 1] on the MOS scale they were fine-tuned on.
    """

    def __init__(
        self,
        predict_fn,
        input_size=None,
        crop_size=DEFAULT_CROP_SIZE,
        score_range=(0.0, 1.0),
        backend="keras",
        path=None,
    ):
        self.predict_fn = predict_fn
        self.input_size = input_size
        self.crop_size = int(input_size or crop_size)
        self.score_range = None if score_range is None else tuple(score_range)
        self.backend = backend
        self.path = path

    def __repr__(self):
        return (
            f"Scorer(backend={self.backend!r}, path={self.path!r}, "
            f"crop_size={self.crop_size}, score_range={self.score_range})"
        )

    def score(self, inputs, crops=None, full=False, batch_size=DEFAULT_BATCH_SIZE):
        """Scores images; returns float32 np.ndarray (N,), higher is better.

        Args:
            inputs: an image file path, a list of paths, a uint8 array or
                tensor (H, W, 3) or (N, H, W, 3) (float arrays in [0, 255]
                are rounded to uint8), or a list of (H, W, 3) arrays of any
                sizes.
            crops: int or None. Average the scores of this many deterministic
                `crop_size` crops spread over each image (default 5). An image
                smaller than the crop is scored whole (or zero-padded to a
                fixed-size backend's input).
            full: bool. Score each whole image at its own resolution (needs a
                backend with dynamic input size: `.keras` or a dynamic export).
            batch_size: int. Images (crops) per forward pass.
        """
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
            crops = DEFAULT_CROPS
        if crops is not None and (isinstance(crops, bool) or int(crops) < 1):
            raise TfiqaError(f"crops must be a positive integer. Received: {crops!r}")
        if int(batch_size) < 1:
            raise TfiqaError(f"batch_size must be positive. Received: {batch_size!r}")
        images = to_image_list(inputs)
        if full:
            return self._score_full(images, int(batch_size))
        return self._score_crops(images, int(crops), int(batch_size))

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
        from tfiqa.data.crops import eval_crops

        size = self.crop_size
        pieces, owners, whole = [], [], []
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            if height >= size and width >= size:
                cut = np.asarray(eval_crops(image, size, num_crops), np.uint8)
                pieces.extend(cut)  # (num_crops, size, size, 3)
                owners.extend([i] * len(cut))
            elif self.input_size:
                # The backend zero-pads a small image to its fixed input.
                pieces.append(image)
                owners.append(i)
            else:
                whole.append(i)
        totals = np.zeros(len(images), np.float64)
        counts = np.zeros(len(images), np.int64)
        for start in range(0, len(pieces), batch_size):
            chunk = pieces[start : start + batch_size]
            if self.input_size:
                results = np.concatenate([self._run(p[np.newaxis]) for p in chunk])
            else:
                results = self._run(np.stack(chunk))
            np.add.at(totals, owners[start : start + batch_size], results)
            np.add.at(counts, owners[start : start + batch_size], 1)
        if whole:
            totals[whole] = self._score_full([images[i] for i in whole], batch_size)
            counts[whole] = 1
        return (totals / counts).astype(np.float32)


def to_uint8(image, what="image"):
    array = np.asarray(image)
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
            raise TfiqaError(
                f"{what} must be a uint8 (or 0..255 numeric) array. "
                f"Received: dtype={array.dtype}"
            )
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


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
        return list(array)
    images = []
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            from tfiqa.data.image_io import load_image

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
        images.append(array)
    return images


def _read_sidecar(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _from_sidecar(sidecar, input_size):
    crop_size = sidecar.get("model", {}).get("input_crop_size") or DEFAULT_CROP_SIZE
    output = sidecar.get("output", {})
    score_range = output.get("range", (0.0, 1.0)) if output else (0.0, 1.0)
    return {
        "input_size": input_size,
        "crop_size": crop_size,
        "score_range": score_range,
    }


def _load_keras(path):
    import keras
    import tensorflow as tf

    import tfiqa.models  # noqa: F401  (registers the model's layers)

    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot load Keras model {path}. Received: {e}") from None

    # One trace serves every image size and batch size.
    @tf.function(
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)],
        reduce_retracing=True,
    )
    def predict(images):
        return tf.reshape(model(images, training=False), [-1])

    def fn(images):
        return predict(tf.constant(images, tf.uint8)).numpy()

    fn.model = model
    activation = getattr(model, "output_activation", "sigmoid")
    return Scorer(
        fn,
        input_size=None,
        crop_size=getattr(model, "input_crop_size", DEFAULT_CROP_SIZE),
        score_range=(0.0, 1.0) if activation == "sigmoid" else None,
        backend="keras",
        path=path,
    )


def _load_saved_model(path):
    from tfiqa.export.saved_model import (
        SIDECAR_PATH,
        resolve_saved_model_dir,
        saved_model_predict_fn,
    )

    fn, input_size = saved_model_predict_fn(path)
    sidecar = _read_sidecar(os.path.join(resolve_saved_model_dir(path), SIDECAR_PATH))
    return Scorer(
        fn, backend="saved_model", path=path, **_from_sidecar(sidecar, input_size)
    )


def _load_tflite(path):
    from tfiqa.export.tflite import tflite_predict_fn

    fn, input_size = tflite_predict_fn(path)
    sidecar = _read_sidecar(os.path.splitext(path)[0] + ".json")
    return Scorer(fn, backend="tflite", path=path, **_from_sidecar(sidecar, input_size))


def load(path):
    """Loads a quality model for scoring.

    Args:
        path: str or path-like. A `.keras` model (as `tfiqa train` writes), a
            SavedModel folder (as `tfiqa export` writes: the version folder,
            the model folder or the export folder) or a `.tflite` file.

    Returns:
        `Scorer`; `scorer.score(images)` returns float32 scores (N,), higher
        is better (in [0, 1] for sigmoid-output models).

    Raises:
        TfiqaError: the path does not exist or is not a known model format.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TfiqaError(f"Model not found. Received: {path}")
    if os.path.isdir(path):
        return _load_saved_model(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".keras":
        return _load_keras(path)
    if ext == ".tflite":
        return _load_tflite(path)
    raise TfiqaError(
        "Unknown model format: expected a .keras file, a .tflite file or a "
        f"SavedModel folder. Received: {path}"
    )
