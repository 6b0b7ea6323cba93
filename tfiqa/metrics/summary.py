"""All metrics of one set of predictions in one call."""

from scipy import stats

from tfiqa.metrics.correlation import pearson, root_mean_squared_error
from tfiqa.metrics.logistic import fit_logistic4, logistic4
from tfiqa.metrics.validation import (
    as_pairs,
    check_fit,
    degenerate_reason,
    warn_undefined,
)


def evaluate_predictions(pred, mos, fit="logistic4"):
    """SRCC, KRCC, PLCC, RMSE (after the logistic fit) and raw PLCC.

    Args:
        pred: array-like (N,), predicted scores.
        mos: array-like (N,), subjective scores.
        fit: "logistic4" (default) or None.

    Returns:
        dict with `n`, `srcc`, `krcc`, `plcc`, `rmse`, `plcc_raw` (floats,
        NaN where undefined, with one `MetricWarning`) and `fit`:
        "logistic4" when the mapping was used, "failed" when it could not be
        fitted and raw predictions were used instead (a warning says why),
        "none" when not requested.

    Example:
    ```python
    metrics = evaluate_predictions(model_scores, mos)
    print(f"SRCC {metrics['srcc']:.3f} PLCC {metrics['plcc']:.3f}")
    ```
    """
    metrics, _ = evaluate_with_fit(pred, mos, fit)
    return metrics


def evaluate_with_fit(pred, mos, fit="logistic4"):
    """Like `evaluate_predictions`, also returning the logistic parameters.

    Returns:
        (metrics dict, np.ndarray [b1, b2, b3, b4] or None).
    """
    fit = check_fit(fit)
    pred, mos = as_pairs(pred, mos)
    n = int(pred.size)
    nan = float("nan")
    params = None
    reason = degenerate_reason(pred, mos)
    if reason:
        warn_undefined("SRCC/KRCC/PLCC", reason)
        srcc = krcc = plcc_raw = nan
    else:
        srcc = float(stats.spearmanr(pred, mos)[0])
        krcc = float(stats.kendalltau(pred, mos, variant="b")[0])
        plcc_raw = pearson(pred, mos)
    mapped = pred
    if fit:
        params = fit_logistic4(pred, mos) if not reason else None
        if params is not None:
            mapped = logistic4(pred, *params)
    plcc = plcc_raw if params is None else pearson(mapped, mos)
    metrics = {
        "n": n,
        "srcc": srcc,
        "krcc": krcc,
        "plcc": plcc,
        "rmse": root_mean_squared_error(mapped, mos) if n else nan,
        "plcc_raw": plcc_raw,
        "fit": "none" if not fit else ("logistic4" if params is not None else "failed"),
    }
    return metrics, params
