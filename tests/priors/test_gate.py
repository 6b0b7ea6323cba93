"""The gate flags priors whose adaptation does not beat their 0-shot scores."""

import numpy as np
import pytest

from tfiqa.errors import ConfigError
from tfiqa.priors.gate import gate_decision, rate_scores


class FixedPrior:
    """A prior whose adapted scores are given per scale."""

    def __init__(self, adapted):
        self.adapted = adapted  # scale -> callable(query_x) -> logits

    def adapt_and_score(self, support_x, support_y, query_x, scale):
        zero = self.adapted[0.0](query_x)
        return self.adapted[scale](query_x), zero


def tasks(count=3, query=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        levels = rng.integers(1, 6, query)
        x = np.stack([levels, rng.normal(size=query)], axis=1).astype(np.float32)
        out.append(
            {
                "support_x": x[:2],
                "support_y": np.ones(2),
                "query_x": x,
                "query_y": (5.0 - levels) / 4,
            }
        )
    return out


def test_a_prior_that_does_not_adapt_is_flagged():
    noisy = lambda x: x[:, 1]  # 0-shot: content only  # noqa: E731
    prior = FixedPrior({0.0: noisy, 0.1: noisy, 1.0: lambda x: x[:, 1] * 3.0})
    decision = gate_decision(rate_scores(prior, tasks(), scales=(0.0, 0.1, 1.0)))
    assert not decision["passed"]
    assert "SRCC" in decision["reason"]


def test_adaptation_that_orders_better_passes_with_its_scale():
    noisy = lambda x: x[:, 1]  # noqa: E731
    good = lambda x: 2.0 - x[:, 0]  # scores fall with the level  # noqa: E731
    prior = FixedPrior({0.0: noisy, 0.1: noisy, 1.0: good})
    decision = gate_decision(rate_scores(prior, tasks(), scales=(0.0, 0.1, 1.0)))
    assert decision["passed"] and decision["scale"] == 1.0
    assert decision["adapted"]["srcc"] == pytest.approx(1.0)
    assert decision["adapted"]["loss"] < decision["zero_shot"]["loss"]


def test_better_order_with_worse_loss_fails():
    scores = {0.0: {"loss": 0.01, "srcc": 0.5}, 1.0: {"loss": 0.2, "srcc": 0.6}}
    decision = gate_decision(scores)
    assert not decision["passed"] and "loss" in decision["reason"]


def test_the_gate_needs_the_zero_shot_scale():
    with pytest.raises(ConfigError, match="scale 0"):
        gate_decision({1.0: {"loss": 0.1, "srcc": 0.5}})
    with pytest.raises(ConfigError, match="must include 0"):
        rate_scores(None, [], scales=(1.0,))
