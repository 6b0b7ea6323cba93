"""`ScoreImages`: image files or bytes -> `{"image", "score", "error"}` rows."""

import time

import apache_beam as beam
from apache_beam.io.fileio import ReadableFile
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from tfiqa.beam.filesystems import beam_text
from tfiqa.beam.model_handler import IQAModelHandler
from tfiqa.errors import ImageError, TfiqaError
from tfiqa.inference.scorer import file_row

NAMESPACE = "tfiqa"
_ERRORS = "errors"


def read_image(element):
    """`(name, uint8 array (H, W, 3))` of a `ScoreImages` input element.

    A local path is read by `load_image` (what `tfiqa predict` runs), a
    path on another Beam filesystem and bytes by `decode_image`: the same
    decoding, EXIF handling and error messages.

    Raises:
        ImageError: the file cannot be read or decoded (`error.path` is
            the element's name).
    """
    from tfiqa.beam.filesystems import MAX_FILE_BYTES, is_remote, read_bytes
    from tfiqa.data.image_io import decode_image, load_image

    if isinstance(element, str):
        if is_remote(element):
            return element, decode_image(read_bytes(element), element)
        return element, load_image(element)
    if isinstance(element, ReadableFile):
        name = element.metadata.path
        try:
            with element.open() as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise ImageError(name, f"Cannot read image file ({e})") from None
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(name, f"Image file larger than {MAX_FILE_BYTES} bytes")
        return name, decode_image(data, name)
    name, data = element
    return name, decode_image(bytes(data), name)


def _name(element):
    if isinstance(element, str):
        return element
    if isinstance(element, ReadableFile):
        return element.metadata.path
    return element[0]


class DecodeImage(beam.DoFn):
    """element -> `(name, image)`, or an error row on the "errors" output."""

    def __init__(self):
        self.decode_msecs = Metrics.distribution(NAMESPACE, "decode_msecs")
        self.failed = Metrics.counter(NAMESPACE, "images_failed")

    def process(self, element):
        start = time.perf_counter()
        try:
            name, image = read_image(element)
        except TfiqaError as e:
            self.failed.inc()
            row = file_row(_name(element), None, e)
            yield beam.pvalue.TaggedOutput(_ERRORS, _csv_row(row))
            return
        self.decode_msecs.update(int(1000 * (time.perf_counter() - start)))
        yield name, image


class _ToRow(beam.DoFn):
    def __init__(self):
        self.scored = Metrics.counter(NAMESPACE, "images_scored")
        self.failed = Metrics.counter(NAMESPACE, "images_failed")

    def process(self, element):
        name, prediction = element
        score, error = prediction.inference
        (self.failed if error else self.scored).inc()
        yield _csv_row(file_row(name, score, error))


def _csv_row(row):
    # The exception object stays behind: rows cross workers as plain data.
    return {
        "image": beam_text(row["image"]),
        "score": row["score"],
        "error": beam_text(row["error"]),
    }


class ScoreImages(beam.PTransform):
    """Scores images as `tfiqa predict` does, on any Beam runner.

    Input elements may be paths (str: local, or on any Beam filesystem such
    as "gs://bucket/a.jpg"), `(name, bytes)` pairs of encoded files, or
    `fileio.ReadableFile`s. Each becomes one row `{"image": name, "score":
    float or None, "error": str}`, the columns of `tfiqa predict`'s CSV: a
    file that cannot be read or scored gets its message in "error" and
    never fails a bundle (a local name that is not valid UTF-8 comes back
    as an `OSName`, a str that Beam moves between workers pickled).
    Decoding is `load_image`/`decode_image` (EXIF orientation, any mode,
    size caps); batches of `batch_size` decoded
    images go through RunInference with an `IQAModelHandler`, which scores
    them under the model's policy with the code `tfiqa predict` runs, so
    the scores are the same.

    Beam metrics (namespace "tfiqa"): `decode_msecs` (per image),
    `images_scored`, `images_failed`, and RunInference's own
    (`inference_batch_latency_micro_secs`, `load_model_latency_milli_secs`).

    Args:
        model: str. Anything `tfiqa.load` accepts, or a model on a Beam
            filesystem.
        **handler_options: `IQAModelHandler`'s options (`crops`, `full`,
            `trust_model`, `batch_size`, ...), which score as `tfiqa predict`
            does with the same flags.

    Example:
    ```python
    rows = (
        pipeline
        | beam.Create(["gs://bucket/a.jpg", "gs://bucket/b.png"])
        | ScoreImages("mobile-mnv3s")
    )  # {"image": "gs://bucket/a.jpg", "score": 0.61, "error": ""}, ...
    ```
    """

    def __init__(self, model, **handler_options):
        super().__init__()
        self.handler = IQAModelHandler(model, **handler_options)

    def expand(self, elements):
        decoded = elements | "Decode" >> beam.ParDo(DecodeImage()).with_outputs(
            _ERRORS, main="images"
        )
        scored = (
            decoded.images
            | "Score" >> RunInference(KeyedModelHandler(self.handler))
            | "Rows" >> beam.ParDo(_ToRow())
        )
        return (scored, decoded[_ERRORS]) | "Merge" >> beam.Flatten()
