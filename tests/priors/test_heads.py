"""Priors on cached rows: exact meta-gradient of the head, training, adaptation."""

import numpy as np
import pytest
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.priors.heads import PriorTrainer, build_head, pair_hinge, sigmoid_mse
from tfiqa.priors.tasks import TaskSampler
from tfiqa.training.maml import MAMLStep

from .synthetic import synthetic_rows


def query_loss(step, values, batch):
    """Mean query loss after adaptation, as a plain function of `values`."""
    params, rates = step._split(values)
    sx, sy, qx, qy = batch
    losses = []
    for t in range(sx.shape[0]):
        fast, _ = step.adapt(params, [], sx[t], sy[t], rates)
        losses.append(sigmoid_mse(qy[t], step.forward(fast, [], qx[t])))
    return float(tf.add_n(losses)) / len(losses)


def head_step(order):
    model = build_head(width=5, hidden=4, seed=3, dtype="float64")
    return MAMLStep(
        model,
        inner_steps=2,
        inner_learning_rate=2.0,
        order=order,
        learn_inner_lr=True,
        loss_fn=sigmoid_mse,
    )


def test_head_meta_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    batch = [
        tf.constant(rng.normal(size=(2, 6, 5)), tf.float64),
        tf.constant(rng.uniform(size=(2, 6)), tf.float64),
        tf.constant(rng.normal(size=(2, 7, 5)), tf.float64),
        tf.constant(rng.uniform(size=(2, 7)), tf.float64),
    ]
    exact, first = head_step("second"), head_step("first")
    values = exact.meta_values()
    _, _, grads = exact.meta_gradients(*batch)
    _, _, first_grads = first.meta_gradients(*batch)
    # Central differences along random directions of all meta variables
    # (weights and Meta-SGD rates), in float64.
    eps = 1e-5
    for seed in range(3):
        direction = [
            tf.constant(
                np.random.default_rng(seed + 10 * i).normal(size=v.shape), tf.float64
            )
            for i, v in enumerate(values)
        ]
        plus = [v + eps * d for v, d in zip(values, direction, strict=True)]
        minus = [v - eps * d for v, d in zip(values, direction, strict=True)]
        numeric = (query_loss(exact, plus, batch) - query_loss(exact, minus, batch)) / (
            2 * eps
        )
        analytic = sum(
            float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction, strict=True)
        )
        first_order = sum(
            float(tf.reduce_sum(g * d))
            for g, d in zip(first_grads, direction, strict=True)
        )
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)
        # The check can tell exact from first-order gradients.
        assert abs(first_order - numeric) > 10 * abs(analytic - numeric)


def test_pair_hinge_counts_only_better_pairs_of_one_source():
    labels = tf.constant([1.0, 0.5, 1.0, 0.5])
    groups = tf.constant([0, 0, 1, 1])
    # Source 0 ordered with margin, source 1 reversed by 1: hinge 0 and 2.
    logits = tf.constant([2.0, 0.5, 0.0, 1.0])
    assert float(pair_hinge(labels, logits, groups, margin=1.0)) == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["meta", "multitask", "rank"])
def test_every_arm_learns_the_order_of_levels(arm):
    rows = synthetic_rows(sources=10, types=3, width=6)
    sampler = TaskSampler((rows - rows.mean((0, 1))) / rows.std((0, 1)), [0, 1, 2])
    trainer = PriorTrainer(
        width=6,
        hidden=8,
        steps=60,
        meta_batch=2,
        support=5,
        query=10,
        inner_steps=1,
        learning_rate=1e-2,
    )
    prior = trainer.train(arm, sampler, seed=0)
    assert len(prior.history["loss"]) == 60
    assert np.mean(prior.history["loss"][-10:]) < np.mean(prior.history["loss"][:10])
    task = sampler.episode(5, 20, np.random.default_rng(5))
    adapted, zero_shot = prior.adapt_and_score(
        task["support_x"], task["support_y"], task["query_x"], 0.0
    )
    np.testing.assert_allclose(adapted, zero_shot)
    order = np.corrcoef(zero_shot, task["query_y"])[0, 1]
    assert order > 0.8


def test_bad_arm_or_batch_layout_is_an_error():
    sampler = TaskSampler(synthetic_rows(types=2), [0, 1])
    with pytest.raises(ConfigError, match="Received: 'maml'"):
        PriorTrainer(width=8).train("maml", sampler)
    with pytest.raises(ConfigError, match="multiple of the number of levels"):
        PriorTrainer(width=8, support=3, query=3)


@pytest.mark.slow
def test_a_reused_trainer_starts_every_prior_afresh():
    rows = synthetic_rows(sources=8, types=2, width=4)
    sampler = TaskSampler(rows, [0, 1])
    trainer = PriorTrainer(width=4, hidden=3, steps=5, meta_batch=2, support=5, query=5)
    first = trainer.train("meta", sampler, seed=1)
    trainer.train("multitask", sampler, seed=2)
    again = trainer.train("meta", sampler, seed=1)
    fresh = PriorTrainer(width=4, hidden=3, steps=5, meta_batch=2, support=5, query=5)
    other = fresh.train("meta", sampler, seed=1)
    for a, b, c in zip(
        first.weights + first.rates,
        again.weights + again.rates,
        other.weights + other.rates,
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-6)
    assert not np.allclose(first.rates[0], 0.1)  # the rates were meta-learned
