"""Metrics against scipy and hand-computed cases; no TensorFlow needed."""

import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from tfiqa import metrics
from tfiqa.metrics import (
    LogisticFitWarning,
    MetricWarning,
    evaluate_predictions,
    fit_logistic4,
    krcc,
    logistic4,
    plcc,
    rmse,
    srcc,
)


@pytest.fixture
def noisy_pairs():
    rng = np.random.default_rng(3)
    mos = rng.uniform(0, 1, 60)
    pred = 2.0 * mos + rng.normal(0, 0.3, 60)
    return pred, mos


def test_matches_scipy(noisy_pairs):
    pred, mos = noisy_pairs
    assert srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos)[0])
    assert krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos)[0])
    assert plcc(pred, mos) == pytest.approx(stats.pearsonr(pred, mos)[0])
    assert rmse(pred, mos) == pytest.approx(np.sqrt(np.mean((pred - mos) ** 2)))


def test_hand_computed_small_case():
    pred = [1.0, 2.0, 3.0, 4.0, 5.0]
    mos = [2.0, 1.0, 4.0, 3.0, 5.0]
    # d = rank differences (1,-1,1,-1,0): 1 - 6*4 / (5*24) = 0.8
    assert srcc(pred, mos) == pytest.approx(0.8)
    # 10 pairs, 2 discordant: (8 - 2) / 10
    assert krcc(pred, mos) == pytest.approx(0.6)
    # Deviations (-2,-1,0,1,2) and (-1,-2,1,0,2): r = (2+2+0+0+4) / 10
    assert plcc(pred, mos) == pytest.approx(0.8)
    assert rmse(pred, mos) == pytest.approx(math.sqrt(4 / 5))


def test_ties_use_average_ranks_and_tau_b():
    pred = [1.0, 1.0, 2.0, 3.0]
    mos = [1.0, 2.0, 2.0, 3.0]
    # Average ranks: pred (1.5, 1.5, 3, 4), mos (1, 2.5, 2.5, 4).
    expected_srcc = np.corrcoef([1.5, 1.5, 3, 4], [1, 2.5, 2.5, 4])[0, 1]
    assert srcc(pred, mos) == pytest.approx(expected_srcc)
    # 6 pairs: 4 concordant, 0 discordant, one tie in each variable only:
    # tau_b = 4 / sqrt(5 * 5)
    assert krcc(pred, mos) == pytest.approx(0.8)


def test_perfect_monotone_nonlinear():
    pred = np.linspace(-3, 3, 40)
    mos = logistic4(pred, 5.0, 1.0, 0.4, 0.6)
    assert srcc(pred, mos) == pytest.approx(1.0)
    assert krcc(pred, mos) == pytest.approx(1.0)
    raw = plcc(pred, mos)
    assert raw < 0.97
    assert plcc(pred, mos, fit="logistic4") == pytest.approx(1.0, abs=1e-6)
    assert rmse(pred, mos, fit="logistic4") < 1e-3 < rmse(pred, mos)
    params = fit_logistic4(pred, mos)
    np.testing.assert_allclose(params, [5.0, 1.0, 0.4, 0.6], rtol=1e-3, atol=1e-3)


def test_logistic_fit_on_decreasing_scores():
    # A DMOS-like predictor: lower is better.
    pred = np.linspace(0, 10, 30)
    mos = logistic4(pred, 0.1, 0.9, 6.0, 1.5)
    assert srcc(pred, mos) == pytest.approx(-1.0)
    assert plcc(pred, mos, fit="logistic4") == pytest.approx(1.0, abs=1e-6)


def test_sign_and_scale_invariance_of_ranks(noisy_pairs):
    pred, mos = noisy_pairs
    assert srcc(-pred, mos) == pytest.approx(-srcc(pred, mos))
    assert srcc(np.exp(pred), mos) == pytest.approx(srcc(pred, mos))


def test_evaluate_predictions_keys_and_values(noisy_pairs):
    pred, mos = noisy_pairs
    result = evaluate_predictions(pred, mos)
    assert list(result) == ["n", "srcc", "krcc", "plcc", "rmse", "plcc_raw", "fit"]
    assert result["n"] == 60
    assert result["fit"] == "logistic4"
    assert result["srcc"] == pytest.approx(srcc(pred, mos))
    assert result["krcc"] == pytest.approx(krcc(pred, mos))
    assert result["plcc_raw"] == pytest.approx(plcc(pred, mos))
    assert result["plcc"] == pytest.approx(plcc(pred, mos, fit="logistic4"))
    assert result["rmse"] == pytest.approx(rmse(pred, mos, fit="logistic4"))
    # Mapping onto the MOS scale fixes the 2x scale error of the raw scores.
    assert result["rmse"] < rmse(pred, mos)

    raw = evaluate_predictions(pred, mos, fit=None)
    assert raw["fit"] == "none"
    assert raw["plcc"] == raw["plcc_raw"]
    assert raw["rmse"] == pytest.approx(rmse(pred, mos))


def test_constant_predictions_give_nan_with_warning():
    mos = [0.1, 0.5, 0.3, 0.9]
    for metric in (srcc, krcc, plcc):
        with pytest.warns(MetricWarning, match="constant"):
            assert math.isnan(metric([0.5] * 4, mos))
    with pytest.warns(MetricWarning, match="constant"):
        result = evaluate_predictions([0.5] * 4, mos)
    assert all(math.isnan(result[k]) for k in ("srcc", "krcc", "plcc", "plcc_raw"))
    assert result["fit"] == "failed"
    assert result["rmse"] == pytest.approx(rmse([0.5] * 4, mos))
    with pytest.warns(MetricWarning, match="MOS is constant"):
        assert math.isnan(srcc([1, 2, 3], [2, 2, 2]))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_pairs_give_nan_with_warning(n):
    with pytest.warns(MetricWarning, match="at least 3"):
        assert math.isnan(srcc(np.arange(n), np.arange(n)))
    with pytest.warns(MetricWarning):
        result = evaluate_predictions(np.arange(n), np.arange(n))
    assert result["n"] == n and math.isnan(result["srcc"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_raise(bad):
    with pytest.raises(ValueError, match=r"pred contains 1 NaN/inf.*pred\[2\]"):
        srcc([1, 2, bad, 4], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="mos contains"):
        evaluate_predictions([1, 2, 3, 4], [1, bad, 3, 4])


def test_bad_shapes_and_fit_names_raise():
    with pytest.raises(ValueError, match="same length"):
        plcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        srcc(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="fit must be"):
        plcc([1, 2, 3], [1, 2, 3], fit="logistic5")
    # An (N, 1) model output column is accepted.
    assert srcc(np.array([[1.0], [2.0], [3.0]]), [1, 2, 3]) == pytest.approx(1.0)


def test_fit_fallback_when_curve_fit_fails(noisy_pairs, monkeypatch):
    pred, mos = noisy_pairs

    def failing_curve_fit(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(optimize, "curve_fit", failing_curve_fit)
    with pytest.warns(LogisticFitWarning, match="Optimal parameters not found"):
        assert fit_logistic4(pred, mos) is None
    with pytest.warns(LogisticFitWarning, match="raw predictions"):
        result = evaluate_predictions(pred, mos)
    assert result["fit"] == "failed"
    assert result["plcc"] == pytest.approx(result["plcc_raw"])
    assert result["rmse"] == pytest.approx(rmse(pred, mos))
    with pytest.warns(LogisticFitWarning):
        assert plcc(pred, mos, fit="logistic4") == pytest.approx(plcc(pred, mos))


def test_fit_fallback_with_too_few_pairs():
    with pytest.warns(LogisticFitWarning, match="at least 4"):
        result = evaluate_predictions([1.0, 2.0, 4.0], [0.1, 0.2, 0.3])
    assert result["fit"] == "failed"
    assert result["srcc"] == pytest.approx(1.0)


def test_no_warning_on_well_posed_input(noisy_pairs):
    pred, mos = noisy_pairs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_predictions(pred, mos)


def test_public_names():
    for name in ("srcc", "krcc", "plcc", "rmse", "fit_logistic4"):
        assert callable(getattr(metrics, name))
    assert "evaluate_predictions" in metrics.__all__
