"""The 4-parameter logistic that maps predicted scores onto the MOS scale.

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

f tends to b1 as x grows and to b2 as x falls; b3 is the midpoint and |b4|
the width. Fitting it before PLCC/RMSE is the usual IQA protocol (VQEG),
since only the monotonic relation between scores and MOS matters.

Reference:
    VQEG, "Final report from the Video Quality Experts Group on the
    validation of objective models of video quality assessment", 2000.
"""

import warnings

import numpy as np
from scipy import optimize, special, stats

from tfiqa.metrics.validation import MetricWarning, as_pairs, degenerate_reason

MIN_FIT_PAIRS = 4  # one per parameter
MAX_EVALUATIONS = 20000


class LogisticFitWarning(MetricWarning):
    """The logistic fit failed; raw predictions are used instead."""


def logistic4(x, b1, b2, b3, b4):
    """Evaluates the 4-parameter logistic at `x` (array-like)."""
    x = np.asarray(x, dtype=np.float64)
    # expit is the overflow-free 1 / (1 + exp(-z)).
    return (b1 - b2) * special.expit((x - b3) / np.abs(b4)) + b2


def initial_guess(pred, mos):
    """A robust starting point: the MOS range, the median and spread of pred.

    The asymptotes are swapped when predictions rank opposite to MOS (for
    example a DMOS-like score), so the optimiser starts on the right branch.
    """
    b1, b2 = np.max(mos), np.min(mos)
    if stats.spearmanr(pred, mos)[0] < 0:
        b1, b2 = b2, b1
    return np.array([b1, b2, np.median(pred), np.std(pred)])


def parameter_bounds(pred, mos):
    """Box bounds that keep the fit finite and on the scale of the data.

    Asymptotes may lie up to one MOS range beyond the observed MOS (data on
    one flank of the sigmoid); the midpoint up to one prediction range
    beyond the predictions; the width between 1e-4 and 100 prediction ranges.
    """
    mos_lo, mos_hi = np.min(mos), np.max(mos)
    pred_lo, pred_hi = np.min(pred), np.max(pred)
    mos_span, pred_span = mos_hi - mos_lo, pred_hi - pred_lo
    lower = [
        mos_lo - mos_span,
        mos_lo - mos_span,
        pred_lo - pred_span,
        1e-4 * pred_span,
    ]
    upper = [mos_hi + mos_span, mos_hi + mos_span, pred_hi + pred_span, 100 * pred_span]
    return np.array(lower), np.array(upper)


def fit_logistic4(pred, mos, warn=True):
    """Least-squares fit of `logistic4` mapping `pred` to `mos`.

    Args:
        pred: array-like (N,), predicted scores.
        mos: array-like (N,), subjective scores.
        warn: issue a `LogisticFitWarning` when the fit fails.

    Returns:
        np.ndarray [b1, b2, b3, b4], or None when the fit fails (fewer than
        4 pairs, constant inputs, no convergence, or a non-finite or flat
        result); callers then fall back to the raw predictions.

    Example:
    ```python
    params = fit_logistic4(pred, mos)
    mapped = logistic4(pred, *params) if params is not None else pred
    ```
    """
    pred, mos = as_pairs(pred, mos)
    params, reason = _try_fit(pred, mos)
    if reason and warn:
        warnings.warn(
            f"Logistic fit failed ({reason}); using raw predictions for PLCC/RMSE.",
            LogisticFitWarning,
            stacklevel=2,
        )
    return params


def _try_fit(pred, mos):
    """Returns (params, None) on success, (None, reason) on failure."""
    if pred.size < MIN_FIT_PAIRS:
        return None, f"needs at least {MIN_FIT_PAIRS} pairs, got n={pred.size}"
    reason = degenerate_reason(pred, mos)
    if reason:
        return None, reason
    lower, upper = parameter_bounds(pred, mos)
    guess = np.clip(initial_guess(pred, mos), lower, upper)
    try:
        with warnings.catch_warnings():
            # An unestimable covariance is irrelevant: only the curve is used.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(
                logistic4,
                pred,
                mos,
                p0=guess,
                bounds=(lower, upper),
                max_nfev=MAX_EVALUATIONS,
            )
    except (RuntimeError, ValueError, np.linalg.LinAlgError) as e:
        return None, f"curve_fit: {e}"
    if not np.all(np.isfinite(params)):
        return None, f"non-finite parameters {params.tolist()}"
    if np.ptp(logistic4(pred, *params)) == 0:
        return None, "the fitted curve is flat over the predictions"
    return params, None
