"""Quality priors: a small head on standardised cached features, three ways.

All arms train the same head (Dense-ReLU -> Dense, a logit; the score is
its sigmoid) on the same tasks (`TaskSampler`, training types and sources
only) for the same number of outer steps with the same examples per step:

- `meta` (MetaIQA): exact second-order MAML through `inner_steps` SGD steps
  on each task's support set (`tfiqa.training.maml.MAMLStep`, nested
  tapes), with Meta-SGD per-parameter inner rates learned alongside;
  outer loss = MSE on the task's query set (other sources) after adaptation.
- `multitask`: the same episodes without the inner loop: MSE on support and
  query examples of every task, one model for all types.
- `rank` (RankIQA family): every level of one type on a few sources per
  task, hinge loss on all pairs of one source (`margin - (s_i - s_j)` for
  i less distorted than j), the efficient Siamese batch.

Every prior is then used the same way: `Prior.adapt_and_score` runs
`inner_steps` SGD steps on a few labelled examples (MSE; the step sizes
`rates`: Meta-SGD's learned ones times a scale for `meta`, a scalar for the
others) and scores new examples; `tfiqa.priors.gate` chooses the scale.

Example:
```python
trainer = PriorTrainer(width=992, steps=400)
prior = trainer.train("meta", sampler, seed=0)
adapted, zero_shot = prior.adapt_and_score(support_x, support_y, query_x, 1.0)
```

Reference:
    Zhu et al. MetaIQA, CVPR 2020. Liu et al. RankIQA, ICCV 2017.
    Li et al. Meta-SGD, arXiv 1707.09835.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.training.maml import MAMLStep

ARMS = ("meta", "multitask", "rank")


def build_head(width, hidden=64, seed=0, dtype="float32"):
    """Dense(hidden, relu) -> Dense(1): (batch, width) -> (batch, 1) logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((width,), dtype=dtype)
    x = keras.layers.Dense(hidden, activation="relu", dtype=dtype, name="hidden")(
        inputs
    )
    logits = keras.layers.Dense(1, dtype=dtype, name="logit")(x)
    return keras.Model(inputs, logits, name="prior_head")


def sigmoid_mse(labels, logits):
    """MSE between labels in [0, 1] and the sigmoid of (N,) logits."""
    labels = tf.cast(tf.reshape(labels, [-1]), logits.dtype)
    return tf.reduce_mean(tf.square(tf.sigmoid(tf.reshape(logits, [-1])) - labels))


def pair_hinge(labels, logits, groups, margin=1.0):
    """Mean hinge over pairs of one group where labels[i] > labels[j]."""
    logits = tf.reshape(logits, [-1])
    better = labels[:, None] > labels[None, :]
    same = groups[:, None] == groups[None, :]
    mask = tf.cast(better & same, logits.dtype)
    hinge = tf.nn.relu(margin - (logits[:, None] - logits[None, :]))
    return tf.reduce_sum(hinge * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class Prior:
    """A trained head: its weights and its unscaled inner step sizes.

    Attributes:
        arm: str, one of ARMS.
        seed: int.
        weights: list of tensors, the head's trainable values.
        rates: list of tensors, the inner step sizes per variable
            (Meta-SGD's learned ones for `meta`, ones for the others).
        history: dict of per-step training losses.
        seconds: float, training time.
        trainer: the `PriorTrainer` that made it (and adapts it).
    """

    def __init__(self, arm, seed, weights, rates, history, seconds, trainer):
        self.arm, self.seed, self.weights, self.rates = arm, seed, weights, rates
        self.history, self.seconds, self.trainer = history, seconds, trainer

    def adapt_and_score(self, support_x, support_y, query_x, scale):
        """(adapted logits (Q,), 0-shot logits (Q,)) after `inner_steps` SGD
        steps of MSE on the support set at step sizes `scale * rates`."""
        adapted, zero_shot = self.trainer._adapt(
            self.weights,
            self.rates,
            tf.convert_to_tensor(support_x, tf.float32),
            tf.convert_to_tensor(support_y, tf.float32),
            tf.convert_to_tensor(query_x, tf.float32),
            tf.constant(float(scale)),
        )
        return adapted.numpy(), zero_shot.numpy()


class PriorTrainer:
    """Trains priors of every arm on one head shape with one set of budgets.

    The head, its MAML step, optimizer and compiled steps are built once and
    reset for each prior (fresh seeded initial weights, optimizer
    state as built), so that many priors cost one tracing.

    Args:
        width: int. Feature width.
        hidden: int. Hidden units of the head.
        steps: int. Outer steps per prior (every arm).
        meta_batch: int. Tasks per step.
        support, query: int. Examples per task (their sum a multiple of the
            number of levels: the ranking arm takes whole sources).
        inner_steps: int. Inner SGD steps (meta-training and adaptation).
        inner_lr: float. Initial Meta-SGD step size.
        learning_rate: float. Adam's rate for the outer step.
        margin: float. Hinge margin of the ranking arm (on logits).
        levels: int. Levels per source.

    Every arm sees `steps * meta_batch * (support + query)` examples.
    """

    def __init__(
        self,
        width,
        hidden=64,
        steps=400,
        meta_batch=4,
        support=10,
        query=40,
        inner_steps=5,
        inner_lr=0.1,
        learning_rate=1e-3,
        margin=1.0,
        levels=5,
    ):
        if (support + query) % levels:
            raise ConfigError(
                "support + query must be a multiple of the number of levels (the "
                f"ranking arm uses whole sources). Received: {support} + {query}"
            )
        self.width, self.hidden, self.steps = int(width), int(hidden), int(steps)
        self.meta_batch, self.support, self.query = meta_batch, support, query
        self.inner_lr, self.margin, self.levels = inner_lr, margin, levels
        self.model = build_head(self.width, self.hidden)
        # Every arm's step learns per-variable rates (Meta-SGD), so `adapt`
        # honours the rates it is given; only `meta` has them trained.
        self.step = MAMLStep(
            self.model,
            inner_steps=inner_steps,
            inner_learning_rate=inner_lr,
            order="second",
            learn_inner_lr=True,
            loss_fn=sigmoid_mse,
        )
        self.variables = self.step.meta_variables
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.variables)
        # Its state as built (zero moments and step count, the learning rate).
        self._optimizer_start = [tf.identity(v) for v in self.optimizer.variables]
        self._meta_update = tf.function(self._meta_update_fn, reduce_retracing=True)
        self._plain_update = tf.function(self._plain_update_fn, reduce_retracing=True)
        self._adapt = tf.function(self._adapt_fn, reduce_retracing=True)

    def _meta_update_fn(self, sx, sy, qx, qy):
        query_loss, _, grads = self.step.meta_gradients(sx, sy, qx, qy)
        self.optimizer.apply(grads, self.variables)
        return query_loss

    def _plain_update_fn(self, x, y, groups, rank):
        model_variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.reshape(self.model(tf.reshape(x, [-1, self.width])), [-1])
            labels, groups = tf.reshape(y, [-1]), tf.reshape(groups, [-1])
            if rank:
                loss = pair_hinge(labels, logits, groups, self.margin)
            else:
                loss = sigmoid_mse(labels, logits)
        grads = tape.gradient(loss, model_variables)
        # Zero gradients leave Adam's zeroed state, so the rates stay fixed.
        grads += [tf.zeros_like(r) for r in self.step.inner_lrs]
        self.optimizer.apply(grads, self.variables)
        return loss

    def _adapt_fn(self, weights, rates, sx, sy, qx, scale):
        fast, _ = self.step.adapt(
            list(weights), [], sx, sy, inner_lrs=[scale * r for r in rates]
        )
        return self.step.forward(fast, [], qx), self.step.forward(list(weights), [], qx)

    def _reset(self, seed):
        fresh = build_head(self.width, self.hidden, seed)
        for variable, value in zip(
            self.model.trainable_variables, fresh.trainable_variables, strict=True
        ):
            variable.assign(value)
        for rate in self.step.inner_lrs:
            rate.assign(tf.fill(rate.shape, self.inner_lr))
        for variable, value in zip(
            self.optimizer.variables, self._optimizer_start, strict=True
        ):
            variable.assign(value)

    def train(self, arm, sampler, seed=0):
        """Trains one prior of `arm` on `sampler`'s tasks; returns a `Prior`."""
        if arm not in ARMS:
            raise ConfigError(
                f"Prior arm must be one of {list(ARMS)}. Received: {arm!r}"
            )
        self._reset(seed)
        rng = np.random.default_rng(seed)
        history, start = {"loss": []}, time.time()
        sources = (self.support + self.query) // self.levels
        for _ in range(self.steps):
            if arm == "rank":
                x, y, groups = sampler.ranking_batch(self.meta_batch, sources, rng)
                loss = self._plain_update(x, y.astype(np.float32), groups, True)
            else:
                b = sampler.meta_batch(self.meta_batch, self.support, self.query, rng)
                if arm == "meta":
                    loss = self._meta_update(
                        b["support_x"], b["support_y"], b["query_x"], b["query_y"]
                    )
                else:
                    x = np.concatenate([b["support_x"], b["query_x"]], axis=1)
                    y = np.concatenate([b["support_y"], b["query_y"]], axis=1)
                    loss = self._plain_update(x, y, np.zeros(y.shape, np.int32), False)
            history["loss"].append(float(loss))
        weights = [tf.identity(v) for v in self.model.trainable_variables]
        if arm == "meta":
            rates = [tf.identity(r) for r in self.step.inner_lrs]
        else:
            rates = [tf.ones(r.shape) for r in self.step.inner_lrs]
        return Prior(arm, seed, weights, rates, history, time.time() - start, self)
