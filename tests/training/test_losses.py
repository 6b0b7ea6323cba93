import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfiqa.training import losses


def brute_force(scores, group, level, margin):
    hinges, correct = [], 0
    for i, j in itertools.product(range(len(scores)), repeat=2):
        if group[i] == group[j] and level[i] < level[j]:
            hinges.append(max(0.0, margin - (scores[i] - scores[j])))
            correct += scores[i] > scores[j]
    if not hinges:
        return 0.0, 0.0, 0
    return float(np.mean(hinges)), correct / len(hinges), len(hinges)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_hinge_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 18
    scores = rng.normal(size=n).astype(np.float32)
    group = rng.integers(0, 3, size=n).astype(np.int32)
    level = rng.integers(0, 6, size=n).astype(np.int32)
    margin = 0.3
    expected_loss, expected_acc, expected_count = brute_force(
        scores, group, level, margin
    )
    loss = losses.ranking_hinge_loss(scores, group, level, margin)
    acc = losses.pair_accuracy(scores, group, level)
    _, count, _ = losses.ranking_hinge_terms(scores, group, level, margin)
    assert expected_count > 0
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(float(acc), expected_acc, rtol=1e-6)
    assert int(count) == expected_count


def test_ranking_structured_batch_pair_count():
    # 2 groups x 6 levels (0..5): 15 ordered pairs per group.
    group = np.repeat([0, 1], 6)
    level = np.tile(np.arange(6), 2)
    scores = -level.astype(np.float32)  # perfect order, margin 1 satisfied
    hinge_sum, count, correct = losses.ranking_hinge_terms(scores, group, level, 1.0)
    assert int(count) == 30 and int(correct) == 30
    assert float(hinge_sum) == 0.0
    # reversed order: every pair is wrong and pays margin + gap
    acc = losses.pair_accuracy(-scores, group, level)
    assert float(acc) == 0.0
    assert float(losses.ranking_hinge_loss(-scores, group, level, 1.0)) > 1.0


def test_ranking_ties_and_no_pairs():
    scores = np.zeros(4, np.float32)
    assert float(losses.pair_accuracy(scores, [0, 0, 1, 1], [1, 2, 3, 4])) == 0.0
    # no two images in one group: loss is 0, not NaN
    loss = losses.ranking_hinge_loss(scores, [0, 1, 2, 3], [0, 1, 2, 3], 0.5)
    assert float(loss) == 0.0


def test_ranking_loss_gradient_orders_scores():
    # A tiny model learns to rank brighter (less "distorted") inputs higher.
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = np.tile(np.linspace(1, 0, 5)[:, None], (2, 4)).astype(np.float32)
    group = np.repeat([0, 1], 5)
    level = np.tile(np.arange(5), 2)
    x[5:] += 0.1
    optimizer = keras.optimizers.SGD(0.5)
    first = None
    for _ in range(20):
        with tf.GradientTape() as tape:
            scores = model(x)[:, 0]
            loss = losses.ranking_hinge_loss(scores, group, level, 0.5)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        first = float(loss) if first is None else first
    assert float(loss) < first
    assert float(losses.pair_accuracy(model(x)[:, 0], group, level)) == 1.0


def test_batch_ranking_and_mse_terms():
    pred = np.array([0.1, 0.5, 0.9], np.float32)
    target = np.array([0.2, 0.4, 0.8], np.float32)
    sq, count = losses.mse_terms(pred, target)
    np.testing.assert_allclose(float(sq), 0.01 + 0.01 + 0.01, rtol=1e-5)
    assert float(count) == 3
    hinge, pairs = losses.batch_ranking_terms(pred, target, margin=0.1)
    assert float(pairs) == 3 and float(hinge) == 0.0
    hinge, pairs = losses.batch_ranking_terms(pred[::-1], target, margin=0.0)
    np.testing.assert_allclose(float(hinge), 0.4 + 0.8 + 0.4, rtol=1e-5)
