"""Keras models: `.keras` files (safe mode, after an archive check) and
in-memory models, as `Scorer`s."""

import os
import zipfile

import keras

import tfiqa.models  # noqa: F401  (registers tfiqa layers and models)
from tfiqa.errors import DataError, first_line
from tfiqa.inference.backends import trust
from tfiqa.inference.scorer import Scorer
from tfiqa.models.scoring import predict_fn
from tfiqa.scoring_policy import ScoringPolicy


def load_keras_model(path):
    """Loads a `.keras` model (tfiqa classes registered).

    Loaded in Keras's safe mode, after `trust.check_keras_archive`.

    Raises:
        DataError: the file is missing or is not a loadable Keras model.
        UnsafeModelError: the file holds code (a Lambda layer, an object
            from another Python module).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"Model file not found. Received: {path}")
    if not path.endswith(".keras"):
        raise DataError(
            f"Expected a Keras model saved as a .keras file. Received: {path}"
        )
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"Corrupt Keras model {path}: not a zip archive (truncated or not a "
            ".keras file)"
        )
    trust.check_keras_archive(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001  (zip, h5 and JSON errors of any kind)
        if trust.is_unsafe_keras_error(e):
            reason = f"an object that Keras's safe mode refuses ({first_line(e)})"
            raise trust.unsafe_keras_error(path, reason) from None
        raise DataError(f"Corrupt Keras model {path}: {first_line(e)}") from None


def model_scorer(model, policy=None, path=None):
    """A `Scorer` for an in-memory Keras model under `policy` (a
    `ScoringPolicy`; default: the model's own)."""
    predict = predict_fn(model)

    def fn(images):
        return predict(images).numpy()

    fn.model = model
    activation = getattr(model, "output_activation", "sigmoid")
    return Scorer(
        fn,
        input_size=None,
        policy=policy or ScoringPolicy.of(model),
        score_range=(0.0, 1.0) if activation == "sigmoid" else None,
        backend="keras",
        path=path,
    )


def keras_scorer(path):
    """A `Scorer` for a `.keras` file (its policy travels inside the model)."""
    return model_scorer(load_keras_model(path), path=path)
