"""Linear quality heads on standardised pooled features, fitted in numpy.

A frozen backbone's pooled features (`MultiLevelHead.pool`) are standardised
and scored by one linear layer, which `IQAModel(head_units=(),
head_input_norm=True)` holds. Its weights come from a closed-form ridge on
MOS, or, when the head must also order synthetic distortions the MOS photos
do not show, from the same objective plus a pairwise ranking term:

    J(w, b) = (1/n) (|z w + b - y|^2 + w^T (alpha I + P) w)
              + weight * mean_k max(0, margin - d_k . w)^2

`z` (n, width) standardised features, `y` MOS, `P` an extra penalty matrix
(the int8 noise of the features in the `qridgeB` heads), `d_k` the feature
difference of pair k, better minus worse (a photo at a weaker level of a
distortion minus the same photo at a stronger level). The squared hinge
keeps J smooth, so L-BFGS solves it in a fraction of a second; with
`weight = 0` its minimum is the closed-form ridge.

Example:
```python
mean, std = standardiser(x_train)
z = (x_train - mean) / std
better_minus_worse = ranking_differences(rows) / std
w, b = fit_ranking_ridge(z, y, alpha=100.0, differences=better_minus_worse,
                         weight=1.0, margin=0.02)
scores = (x_test - mean) / std @ w + b
```
"""

import numpy as np

from tfiqa.errors import ConfigError


def standardiser(x):
    """(mean, std) per feature of `x` (n, width); constant features keep std 1."""
    mean, std = x.mean(0), x.std(0)
    return mean, np.where(std > 1e-6, std, 1.0)


def fit_ridge(z, y, alpha, extra_penalty=0.0):
    """(weights (width,), bias) of ridge regression on centred features `z`.

    The bias is not penalised; `extra_penalty` is a (width, width) matrix
    added to `alpha * I`.
    """
    y_mean = float(np.mean(y))
    penalty = alpha * np.eye(z.shape[1]) + extra_penalty
    w = np.linalg.solve(z.T @ z + penalty, z.T @ (y - y_mean))
    return w, y_mean


def ranking_differences(rows, levels=5, with_pristine=True):
    """Feature differences (better - worse) of every ordered pair of levels.

    Args:
        rows: array (sources, 1 + types * levels, width), the layout of
            `tfiqa.priors.DistortedFeatureCache`: row 0 the pristine photo,
            row `1 + t * levels + (l - 1)` type t at level l.
        levels: int. Levels per type.
        with_pristine: bool. Also order the pristine photo above every level.

    Returns:
        float64 (sources * types * pairs, width): for each source and type,
        every (weaker, stronger) pair of its levels.
    """
    rows = np.asarray(rows, np.float64)
    types, rest = divmod(rows.shape[1] - 1, levels)
    if rows.ndim != 3 or rest or types < 1:
        raise ConfigError(
            "rows must be (sources, 1 + types * levels, width). "
            f"Received: shape {rows.shape} with levels={levels}"
        )
    ladders = rows[:, 1:].reshape(rows.shape[0], types, levels, -1)
    if with_pristine:
        pristine = np.broadcast_to(
            rows[:, None, :1], (rows.shape[0], types, 1, rows.shape[2])
        )
        ladders = np.concatenate([pristine, ladders], axis=2)
    weaker, stronger = np.triu_indices(ladders.shape[2], k=1)
    # (sources, types, pairs, width) -> (sources * types * pairs, width)
    return (ladders[:, :, weaker] - ladders[:, :, stronger]).reshape(-1, rows.shape[2])


def fit_ranking_ridge(
    z, y, alpha, extra_penalty=0.0, differences=None, weight=0.0, margin=0.0
):
    """(weights, bias) minimising ridge on MOS plus a squared-hinge ranking term.

    Args:
        z: (n, width) centred (standardised) features of the MOS photos.
        y: (n,) MOS.
        alpha: float. Ridge penalty, as in `fit_ridge`.
        extra_penalty: float or (width, width) matrix added to the penalty.
        differences: (pairs, width) or None. Better-minus-worse features
            (standardised by the same std as `z`), e.g. `ranking_differences`.
        weight: float >= 0. Weight of the ranking term (0: plain `fit_ridge`).
        margin: float >= 0. Score gap asked of every pair, in MOS units.

    Returns:
        (w (width,), b float).
    """
    from scipy.optimize import minimize

    if weight < 0 or margin < 0:
        raise ConfigError(
            "weight and margin must be >= 0. "
            f"Received: weight={weight}, margin={margin}"
        )
    z = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    width = z.shape[1]
    penalty = alpha * np.eye(width) + extra_penalty
    w0, b0 = fit_ridge(z, y, alpha, extra_penalty)
    if not weight or differences is None or not len(differences):
        return w0, b0
    d = np.asarray(differences, np.float64)
    result = minimize(
        ranking_objective,
        np.append(w0, b0),
        args=(z, y, penalty, d, weight, margin),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "gtol": 1e-8, "ftol": 1e-12},
    )
    return result.x[:width], float(result.x[width])


def ranking_objective(theta, z, y, penalty, differences, weight, margin):
    """(J, dJ/dtheta) of `fit_ranking_ridge` at theta = (w..., b).

    `penalty` is the whole (width, width) penalty matrix, alpha I included.
    """
    w, b = theta[:-1], theta[-1]
    n = len(y)
    residual = z @ w + b - y  # (n,)
    pw = penalty @ w
    short = np.maximum(0.0, margin - differences @ w)  # (pairs,)
    value = (residual @ residual + w @ pw) / n + weight * np.mean(short**2)
    grad_w = 2 * (z.T @ residual + pw) / n
    grad_w -= 2 * weight * (differences.T @ short) / len(differences)
    return value, np.append(grad_w, 2 * residual.sum() / n)
