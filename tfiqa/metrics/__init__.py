"""Agreement between predicted quality scores and subjective MOS."""

from tfiqa.metrics.correlation import krcc, plcc, rmse, srcc
from tfiqa.metrics.logistic import LogisticFitWarning, fit_logistic4, logistic4
from tfiqa.metrics.summary import evaluate_predictions, evaluate_with_fit
from tfiqa.metrics.validation import MetricWarning

__all__ = [
    "LogisticFitWarning",
    "MetricWarning",
    "evaluate_predictions",
    "evaluate_with_fit",
    "fit_logistic4",
    "krcc",
    "logistic4",
    "plcc",
    "rmse",
    "srcc",
]
