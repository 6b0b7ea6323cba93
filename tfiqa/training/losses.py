"""Losses for quality training: the efficient all-pairs ranking hinge.

RankIQA's "efficient Siamese" trick scores a whole structured batch in one
forward pass and takes every ordered pair inside a group (one source image
and one distortion type at several levels) as a ranking constraint. Doing
the pairing on an (N, N) matrix instead of a Siamese pair of towers gives all
pairs for the price of N forward passes.

Reference: Liu, van de Weijer, Bagdanov, "RankIQA: Learning from Rankings for
No-Reference Image Quality Assessment", ICCV 2017.
"""

import tensorflow as tf


def _pair_mask(group, level):
    """(N, N) bool: True where i and j share a group and i is less distorted."""
    group = tf.reshape(group, [-1])
    level = tf.reshape(level, [-1])
    same_group = tf.equal(group[:, None], group[None, :])  # (N, N)
    i_better = tf.less(level[:, None], level[None, :])  # (N, N)
    return tf.logical_and(same_group, i_better)


def ranking_hinge_terms(scores, group, level, margin):
    """Sums behind the all-pairs ranking hinge loss and pair accuracy.

    Every pair (i, j) with `group[i] == group[j]` and `level[i] < level[j]`
    (i is less distorted, so it should score higher) contributes
    `max(0, margin - (s_i - s_j))`. Returning sums and counts instead of
    means lets a distributed step divide by the pair count of the global
    batch, so the loss is the same however the batch is split.

    Args:
        scores: float tensor (N,) or (N, 1); higher is better.
        group: int tensor (N,); images of one group share a source and type.
        level: int tensor (N,); 0 is pristine, larger is worse.
        margin: float. Hinge margin in score units.

    Returns:
        (hinge_sum, pair_count, correct_count) float32 scalars; a pair is
        correct when `s_i > s_j` strictly (ties count as wrong).
    """
    scores = tf.cast(tf.reshape(scores, [-1]), tf.float32)
    valid = tf.cast(_pair_mask(group, level), tf.float32)  # (N, N)
    diff = scores[:, None] - scores[None, :]  # (N, N): s_i - s_j
    hinge = tf.nn.relu(tf.cast(margin, tf.float32) - diff)
    hinge_sum = tf.reduce_sum(hinge * valid)
    pair_count = tf.reduce_sum(valid)
    correct = tf.reduce_sum(tf.cast(diff > 0, tf.float32) * valid)
    return hinge_sum, pair_count, correct


def ranking_hinge_loss(scores, group, level, margin=0.05):
    """Mean hinge over all valid pairs of a batch (0 when there are none).

    Example:
    ```python
    scores = model(images, training=True)  # (N,)
    loss = ranking_hinge_loss(scores, labels["group"], labels["level"], 0.05)
    ```
    """
    hinge_sum, count, _ = ranking_hinge_terms(scores, group, level, margin)
    return tf.math.divide_no_nan(hinge_sum, count)


def pair_accuracy(scores, group, level):
    """Fraction of valid pairs ordered correctly (`s_i > s_j`)."""
    _, count, correct = ranking_hinge_terms(scores, group, level, 0.0)
    return tf.math.divide_no_nan(correct, count)


def mse_terms(predictions, targets):
    """(squared error sum, example count) for a distributed mean."""
    predictions = tf.cast(tf.reshape(predictions, [-1]), tf.float32)
    targets = tf.cast(tf.reshape(targets, [-1]), tf.float32)
    squared = tf.reduce_sum(tf.square(predictions - targets))
    return squared, tf.cast(tf.size(targets), tf.float32)


def batch_ranking_terms(predictions, targets, margin=0.0):
    """All-pairs hinge on MOS order inside a regression batch.

    Every pair with `target_i > target_j` contributes
    `max(0, margin - (p_i - p_j))`; used as the optional ranking term of
    fine-tuning (`stages.finetune.rank_weight`).

    Returns:
        (hinge_sum, pair_count) float32 scalars.
    """
    predictions = tf.cast(tf.reshape(predictions, [-1]), tf.float32)
    targets = tf.cast(tf.reshape(targets, [-1]), tf.float32)
    valid = tf.cast(targets[:, None] > targets[None, :], tf.float32)  # (B, B)
    diff = predictions[:, None] - predictions[None, :]
    hinge = tf.nn.relu(tf.cast(margin, tf.float32) - diff)
    return tf.reduce_sum(hinge * valid), tf.reduce_sum(valid)
