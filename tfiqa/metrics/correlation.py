"""Correlation and error metrics between predicted scores and MOS.

SRCC (Spearman) and PLCC (Pearson) are the headline NR-IQA metrics, KRCC
(Kendall tau-b) and RMSE secondary. PLCC and RMSE are usually reported after
a monotonic 4-parameter logistic maps predictions onto the MOS scale
(`fit="logistic4"`), because a model's scores need not be linear in MOS.

Degenerate inputs (fewer than 3 pairs, constant predictions or constant MOS)
give NaN with a `MetricWarning` instead of an exception: they happen in tiny
validation sets and must not kill a training run. NaN or inf inputs are a
bug upstream and raise `ValueError`.

Example:
```python
srcc(pred, mos)                   # rank correlation
plcc(pred, mos, fit="logistic4")  # linear correlation after the mapping
```
"""

import numpy as np
from scipy import stats

from tfiqa.metrics.logistic import fit_logistic4, logistic4
from tfiqa.metrics.validation import (
    as_pairs,
    check_fit,
    degenerate_reason,
    warn_undefined,
)


def srcc(pred, mos):
    """Spearman rank-order correlation (ties get average ranks).

    Args:
        pred: array-like (N,), predicted scores.
        mos: array-like (N,), subjective scores.

    Returns:
        float in [-1, 1], or NaN (with a `MetricWarning`) when undefined.
    """
    pred, mos = _defined_pairs("SRCC", pred, mos)
    if pred is None:
        return float("nan")
    return float(stats.spearmanr(pred, mos)[0])


def krcc(pred, mos):
    """Kendall rank correlation, tau-b (corrects for ties).

    Returns:
        float in [-1, 1], or NaN (with a `MetricWarning`) when undefined.
    """
    pred, mos = _defined_pairs("KRCC", pred, mos)
    if pred is None:
        return float("nan")
    return float(stats.kendalltau(pred, mos, variant="b")[0])


def plcc(pred, mos, fit=None):
    """Pearson linear correlation, optionally after a logistic mapping.

    Args:
        pred: array-like (N,), predicted scores.
        mos: array-like (N,), subjective scores.
        fit: None (raw predictions) or "logistic4" (map predictions to MOS
            with `fit_logistic4` first; if the fit fails, a
            `LogisticFitWarning` is issued and raw predictions are used).

    Returns:
        float in [-1, 1], or NaN (with a `MetricWarning`) when undefined.
    """
    fit = check_fit(fit)
    pred, mos = _defined_pairs("PLCC", pred, mos)
    if pred is None:
        return float("nan")
    if fit:
        pred = _mapped(pred, mos)
        if np.ptp(pred) == 0:
            warn_undefined("PLCC", "the fitted logistic is flat")
            return float("nan")
    return pearson(pred, mos)


def rmse(pred, mos, fit=None):
    """Root mean squared error, optionally after a logistic mapping.

    Raw RMSE only makes sense when predictions are on the MOS scale; with
    `fit="logistic4"` predictions are mapped onto it first (raw on failure).

    Returns:
        float >= 0, or NaN (with a `MetricWarning`) for empty inputs.
    """
    fit = check_fit(fit)
    pred, mos = as_pairs(pred, mos)
    if pred.size == 0:
        warn_undefined("RMSE", "no pairs")
        return float("nan")
    if fit:
        pred = _mapped(pred, mos)
    return root_mean_squared_error(pred, mos)


def _defined_pairs(metric, pred, mos):
    """Validated (pred, mos) arrays, or (None, None) with a `MetricWarning`
    when `metric` is undefined on them."""
    pred, mos = as_pairs(pred, mos)
    reason = degenerate_reason(pred, mos)
    if reason:
        warn_undefined(metric, reason)
        return None, None
    return pred, mos


def pearson(pred, mos):
    """Pearson r of validated, non-degenerate arrays."""
    return float(np.clip(stats.pearsonr(pred, mos)[0], -1.0, 1.0))


def root_mean_squared_error(pred, mos):
    return float(np.sqrt(np.mean((pred - mos) ** 2)))


def _mapped(pred, mos):
    params = fit_logistic4(pred, mos)
    return pred if params is None else logistic4(pred, *params)
