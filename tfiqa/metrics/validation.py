"""Input checks shared by the metrics: shapes, finiteness, degenerate cases."""

import warnings

import numpy as np

MIN_PAIRS = 3
FITS = (None, "none", "logistic4")


class MetricWarning(UserWarning):
    """A metric is undefined for its inputs and was returned as NaN."""


def as_pairs(pred, mos):
    """Validates and returns `(pred, mos)` as 1-D float64 arrays of equal length.

    Raises:
        ValueError: lengths differ, inputs are not 1-D numbers (an (N, 1)
            column is accepted), or they contain NaN/inf.
    """
    pred = _as_vector(pred, "pred")
    mos = _as_vector(mos, "mos")
    if pred.shape != mos.shape:
        raise ValueError(
            "pred and mos must have the same length. "
            f"Received: len(pred)={pred.size}, len(mos)={mos.size}"
        )
    return pred, mos


def _as_vector(x, name):
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numbers. Received: {e}") from None
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]  # (N, 1) model outputs
    if x.ndim > 1:
        raise ValueError(f"{name} must be 1-D. Received: shape={x.shape}")
    x = np.atleast_1d(x)
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(
            f"{name} contains {bad.size} NaN/inf value(s). "
            f"Received: {name}[{bad[0]}]={x[bad[0]]}"
        )
    return x


def degenerate_reason(pred, mos):
    """Why correlations are undefined for these pairs, or None if they are not."""
    n = pred.size
    if n < MIN_PAIRS:
        return f"needs at least {MIN_PAIRS} pairs, got n={n}"
    if np.ptp(pred) == 0:
        return f"predictions are constant (all {pred[0]:.6g}, n={n})"
    if np.ptp(mos) == 0:
        return f"MOS is constant (all {mos[0]:.6g}, n={n})"
    return None


def warn_undefined(metric, reason):
    warnings.warn(
        f"{metric} is undefined: {reason}; returning NaN.", MetricWarning, stacklevel=3
    )


def check_fit(fit):
    """Normalises `fit` to None or "logistic4"."""
    if fit not in FITS:
        raise ValueError(
            f"fit must be None, 'none' or 'logistic4'. Received: fit={fit!r}"
        )
    return None if fit == "none" else fit
