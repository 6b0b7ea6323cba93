"""`IQAModelHandler`: RunInference's handler for tfiqa quality models."""

import threading

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tfiqa.errors import TfiqaError
from tfiqa.inference.scorer import DEFAULT_BATCH_SIZE


class LoadedModel:
    """A `Scorer` shared by the threads of one worker process.

    Keras and SavedModel functions may be called from several threads at
    once; a TFLite interpreter may not, so its calls take turns.
    """

    def __init__(self, scorer):
        self.scorer = scorer
        self.lock = threading.Lock() if scorer.backend == "tflite" else None

    def score_each(self, images, crops, full, batch_size):
        if self.lock is None:
            return self.scorer.score_each(images, crops, full, batch_size)
        with self.lock:
            return self.scorer.score_each(images, crops, full, batch_size)


class IQAModelHandler(ModelHandler):
    """Loads a tfiqa model once per worker process and scores decoded images.

    Examples are uint8 arrays (H, W, 3) of any size, as `load_image`
    returns them; each prediction's `inference` is `(score, None)` or
    `(None, error)` (a `TfiqaError` the model's policy raised for that image
    alone, e.g. too small for a fixed-input model), so one image never
    fails a batch. Scoring is `Scorer.score_each`, the code `tfiqa predict`
    runs: the model's own scoring policy (crops, small-image rule, resize).
    Wrap it in `KeyedModelHandler` to carry file names (`ScoreImages` does).

    Args:
        model: str. Anything `tfiqa.load` accepts (a preset name such as
            "mobile-mnv3s", a `.keras` file, a SavedModel folder, a
            `.tflite` file), local to the workers or on a Beam filesystem
            ("gs://bucket/model.tflite"; copied to the worker first).
        crops: int or None. Crops per image (None: the model's policy).
        full: bool. Score whole images at their own size.
        trust_model: bool. See `tfiqa.load`.
        batch_size: int. Images per RunInference batch and crops per
            forward pass; `tfiqa predict` uses the same.
        **kwargs: passed to `ModelHandler` (e.g. `large_model=True` to keep
            one copy per machine instead of one per worker process).

    Example:
    ```python
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    keyed = KeyedModelHandler(IQAModelHandler("mobile-mnv3s"))
    scored = named_images | RunInference(keyed)  # (name, PredictionResult)
    ```
    """

    def __init__(
        self,
        model,
        crops=None,
        full=False,
        trust_model=False,
        batch_size=DEFAULT_BATCH_SIZE,
        **kwargs,
    ):
        if crops is not None and full:
            raise TfiqaError(
                f"Pass either crops or full=True, not both. Received: crops={crops}"
            )
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size, **kwargs)
        self.model = str(model)
        self.crops = crops
        self.full = full
        self.trust_model = trust_model
        self.batch_size = batch_size

    def load_model(self):
        from tfiqa.beam.filesystems import is_remote, stage_model
        from tfiqa.quiet_import import import_tensorflow_quietly

        # A worker's TensorFlow start-up lines (CUDA probes) are not errors.
        import_tensorflow_quietly()
        from tfiqa.inference import load

        path = stage_model(self.model) if is_remote(self.model) else self.model
        return LoadedModel(load(path, trust_model=self.trust_model))

    def run_inference(self, batch, model, inference_args=None):
        images = list(batch)
        results = model.score_each(images, self.crops, self.full, self.batch_size)
        return [PredictionResult(x, r) for x, r in zip(images, results, strict=True)]

    def get_num_bytes(self, batch):
        # The default pickles the batch only to measure it.
        return sum(int(image.nbytes) for image in batch)

    def get_metrics_namespace(self):
        return "tfiqa"
