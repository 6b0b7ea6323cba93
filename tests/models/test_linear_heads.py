import numpy as np
import pytest

from tfiqa.errors import ConfigError
from tfiqa.models.linear_heads import (
    fit_ranking_ridge,
    fit_ridge,
    ranking_differences,
    ranking_objective,
    standardiser,
)

LEVELS = 5


def _world(seed=0, n=300, sources=20):
    """MOS photos where feature 1 ("fine detail") raises MOS, and a
    distortion ("noise") that raises feature 1 with every level.

    Feature 2 is a noisier proxy of the same detail that the noise does
    not move, so a head can rank both MOS and the noise right by trading
    feature 1 for feature 2; MOS alone does not ask it to.
    Returns (x, y, rows): rows as `DistortedFeatureCache` lays them out,
    one type ("noise") at LEVELS levels.
    """
    rng = np.random.default_rng(seed)

    def photos(count):
        content, detail = rng.normal(size=(2, count))
        proxy = detail + 0.5 * rng.normal(size=count)
        return np.stack([content, detail, proxy], axis=1)

    x = photos(n)
    y = 0.6 * x[:, 0] + 0.4 * x[:, 1] + 0.05 * rng.normal(size=n)
    pristine = photos(sources)
    levels = np.arange(LEVELS + 1)[None, :, None]  # 0 = pristine
    rows = pristine[:, None, :] + levels * np.array([0.0, 0.3, 0.0])  # (S, 6, 3)
    return x, y, rows


def _scores(rows, mean, std, w, b):
    return ((rows - mean) / std) @ w + b  # (sources, 1 + levels)


def test_ranking_term_puts_a_backwards_distortion_right():
    x, y, rows = _world()
    mean, std = standardiser(x)
    z = (x - mean) / std
    differences = ranking_differences(rows, levels=LEVELS) / std

    w0, b0 = fit_ridge(z, y, alpha=1.0)
    alone = np.diff(_scores(rows, mean, std, w0, b0)[:, 1:], axis=1)
    assert np.all(alone > 0)  # MOS alone: more noise always scores higher

    w, b = fit_ranking_ridge(
        z, y, alpha=1.0, differences=differences, weight=10.0, margin=0.01
    )
    ranked = _scores(rows, mean, std, w, b)
    # every stronger level, and every level against the pristine photo, lower
    assert np.all(np.diff(ranked, axis=1) < 0)
    assert w[1] < 0 < w[2]  # the proxy carries the detail instead
    fitted = z @ w + b
    assert np.corrcoef(fitted, y)[0, 1] > 0.8  # MOS still predicted


def _penalised_problem(seed=1):
    x, y, rows = _world(seed=seed)
    mean, std = standardiser(x)
    z = (x - mean) / std
    noise = np.random.default_rng(seed + 1).normal(size=(50, 3))
    extra = 5.0 * noise.T @ noise / len(noise)
    return z, y, extra, ranking_differences(rows, levels=LEVELS) / std


def test_zero_weight_is_the_closed_form_ridge_with_extra_penalty():
    z, y, extra, differences = _penalised_problem()
    w, b = fit_ranking_ridge(z, y, 3.0, extra, differences, weight=0.0, margin=0.1)
    want_w, want_b = fit_ridge(z, y, 3.0, extra)
    np.testing.assert_allclose(w, want_w)
    assert b == pytest.approx(want_b)
    # ... and the objective L-BFGS descends is flat there, extra penalty included
    penalty = 3.0 * np.eye(3) + extra
    theta = np.append(want_w, want_b)
    _, grad = ranking_objective(theta, z, y, penalty, differences, 0.0, 0.1)
    np.testing.assert_allclose(grad, 0.0, atol=1e-10)


def test_objective_gradient_matches_finite_differences():
    z, y, extra, differences = _penalised_problem(seed=3)
    penalty = 2.0 * np.eye(3) + extra
    theta = np.array([0.3, 0.8, -0.2, 0.1])  # some pairs short of the margin
    args = (z, y, penalty, differences, 4.0, 0.2)
    _, grad = ranking_objective(theta, *args)
    step = 1e-6
    numeric = [
        (
            ranking_objective(theta + step * e, *args)[0]
            - ranking_objective(theta - step * e, *args)[0]
        )
        / (2 * step)
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_ranking_differences_orders_every_pair_of_levels():
    # 1 source, 2 types, 3 levels, width 1: values tell the rows apart
    rows = np.array([[[0.0], [1.0], [2.0], [3.0], [10.0], [20.0], [30.0]]])
    got = ranking_differences(rows, levels=3)[:, 0]
    # type 0: (P,1) (P,2) (P,3) (1,2) (1,3) (2,3); then type 1
    np.testing.assert_array_equal(
        got, [-1, -2, -3, -1, -2, -1, -10, -20, -30, -10, -20, -10]
    )
    without = ranking_differences(rows, levels=3, with_pristine=False)[:, 0]
    np.testing.assert_array_equal(without, [-1, -2, -1, -10, -20, -10])


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="levels=4"):
        ranking_differences(np.zeros((1, 7, 2)), levels=4)
    with pytest.raises(ConfigError, match="weight=-1"):
        fit_ranking_ridge(np.zeros((3, 2)), np.zeros(3), 1.0, weight=-1)
