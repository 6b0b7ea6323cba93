"""Batch scoring with Apache Beam: `tfiqa predict` for photo libraries.

The same pipeline runs on the local DirectRunner and, unchanged, on
Dataflow, Flink or Spark. It needs the `beam` extra
(`pip install "tfiqa[beam]"`; `apache-beam[gcp]` for Dataflow and GCS).

- `ScoreImages`: paths (any Beam filesystem), `(name, bytes)` pairs or
  `fileio.ReadableFile`s -> `{"image", "score", "error"}` rows, decoded
  and scored exactly as `tfiqa predict` does, through RunInference.
- `IQAModelHandler`: the RunInference model handler for any model
  reference `tfiqa.load` accepts (loaded once per worker process).
- `ImagePaths`: files, folders, globs and list files -> image paths.
- `WriteScoresCSV`: rows -> sharded CSV files, `tfiqa predict`'s format.
- `run_scoring`: the whole job, as `tfiqa beam-predict` runs it.

Example:
```python
import apache_beam as beam
from tfiqa.beam import ImagePaths, ScoreImages, WriteScoresCSV

with beam.Pipeline() as pipeline:
    (
        pipeline
        | ImagePaths(["gs://bucket/photos/"])
        | ScoreImages("mobile-mnv3s")
        | WriteScoresCSV("gs://bucket/scores/part")
    )
```
"""

try:
    import apache_beam  # noqa: F401
except ImportError as e:
    raise ImportError(
        "tfiqa.beam needs Apache Beam: pip install 'tfiqa[beam]' "
        f"(apache-beam[gcp] for Dataflow). Received: {e}"
    ) from e

from tfiqa.beam.image_paths import ImagePaths
from tfiqa.beam.model_handler import IQAModelHandler
from tfiqa.beam.run import run_scoring
from tfiqa.beam.score_images import ScoreImages
from tfiqa.beam.scores_csv import WriteScoresCSV

__all__ = [
    "IQAModelHandler",
    "ImagePaths",
    "ScoreImages",
    "WriteScoresCSV",
    "run_scoring",
]
