"""Evaluating predicted scores against a dataset's MOS: matching, metrics, plot.

A predictions CSV has the columns `image,score` and optionally `error` (what
`tfiqa predict` writes); a row with a non-empty `error` is an image that could
not be scored. Predictions are matched to dataset records by image path:
absolute, relative to the dataset folder (or the current folder), or a bare
file name when exactly one record has that name. Nothing is dropped silently:
failed, unmatched and missing images are counted in the result and described
in its `notes`.

Example:
```python
result = evaluate_dataset("csv", "data/biq2021-dev", predictions="pred.csv")
write_outputs(result, "runs/eval")   # metrics.json, scatter.png
```
"""

from tfiqa.evaluation.dataset import (
    EvaluationResult,
    evaluate_dataset,
    metrics_json,
    select_split,
)
from tfiqa.evaluation.matching import Predictions, match_predictions, read_predictions
from tfiqa.evaluation.outputs import write_outputs, write_predictions_csv

__all__ = [
    "EvaluationResult",
    "Predictions",
    "evaluate_dataset",
    "match_predictions",
    "metrics_json",
    "read_predictions",
    "select_split",
    "write_outputs",
    "write_predictions_csv",
]
