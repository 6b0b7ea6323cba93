"""The bi-level MAML step: inner adaptation with fast weights, outer meta-gradient.

A Keras model is evaluated functionally with
`model.stateless_call(trainable_values, non_trainable_values, x)`, so the
inner loop produces *fast weights* (tensors) and never mutates a variable:

    theta'_0 = theta
    theta'_j = theta'_{j-1} - alpha * grad L_support(theta'_{j-1})   (k steps)
    meta-loss = mean over tasks of L_query(theta'_k)

The meta-gradient d meta-loss / d theta is exact (second order) when the
inner gradients are computed under the outer `tf.GradientTape`, so that the
outer tape differentiates through them (nested tapes). First-order MAML
(`order="first"`) treats the inner gradients as constants (and does not even
record them on the outer tape, which saves the memory of the support pass).
With `learn_inner_lr=True` the step size alpha is a learned tensor of the
same shape as each adapted parameter (Meta-SGD), trained by the outer loop
alongside theta.

BatchNorm (`batchnorm=`): every forward pass inside a meta-step runs the
model in inference mode (`training=False`: Dropout off, BatchNorm normalising
with statistics it is *given*), and the statistics are frozen for the whole
step - the same for every task, every inner step and the query pass:
- "batch" (default): the statistics of the meta-batch (all support and query
  images; `MetaTrainer` sums them across replicas) under theta, computed
  by one training-mode pass before the inner loops. They are treated as
  constants (no gradient through them), and the moving averages are updated
  with them once per meta-step, so at inference the model sees the moving
  statistics of the meta-parameters, as after ordinary training.
- "moving": the model's moving statistics, never updated by the step (the
  usual "frozen BatchNorm" fine-tuning of a pretrained backbone).
Why not training-mode BatchNorm inside the inner loop (per-task batch
statistics, as in the original MAML code)? A task is one distortion type,
so the statistics of its support or query set would normalise away exactly
the shared degradation whose severity is to be scored; query sets have a
few images, so their statistics are noise; the adapted weights would feed
task-specific statistics into the moving averages; and a deployed model
scores single images with moving statistics, so per-task normalisation
would meta-learn a different function from the one that is used. Pooling
the statistics over the meta-batch (several types) and freezing them keeps
the step a pure function of theta for given statistics - what the nested
tapes differentiate and the finite-difference test checks - while still
letting a network trained from scratch normalise correctly.
`recalibrate_batchnorm` ("precise BN": the mean of training-mode batch
statistics, with Dropout off, over several batches) refreshes the moving
statistics for the current meta-parameters; `MetaTrainer` runs it before
meta-training and at the end of every epoch, before validation and
checkpointing.

Reference:
    Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation
    of Deep Networks. ICML 2017. Li et al. Meta-SGD, arXiv 1707.09835.
    Zhu et al. MetaIQA: Deep Meta-learning for No-Reference Image Quality
    Assessment. CVPR 2020.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.training.batchnorm import BatchNormSlots

ORDERS = ("first", "second")
BATCHNORM_MODES = ("batch", "moving")
_ZERO = tf.UnconnectedGradients.ZERO


def mse(labels, predictions):
    """Mean squared error between two (N,) tensors."""
    labels = tf.cast(tf.reshape(labels, [-1]), predictions.dtype)
    return tf.reduce_mean(tf.square(tf.reshape(predictions, [-1]) - labels))


class MAMLStep:
    """Inner adaptation and exact or first-order meta-gradients for a model.

    Args:
        model: keras.Model, built. Scores a batch of images as (B,) or (B, 1).
        inner_steps: int. SGD steps on the support loss per task (k >= 0).
        inner_learning_rate: float. Inner step size alpha (initial value when
            learned).
        order: str. "second" (exact meta-gradient through the inner loop,
            nested tapes) or "first" (first-order MAML).
        learn_inner_lr: bool. Meta-SGD: one learned step size per parameter
            element; the tensors are in `inner_lrs` (keras Variables, create
            the step under the strategy scope).
        adapt_variables: list of model variables adapted in the inner loop,
            or None for all trainable variables. Others are meta-learned but
            held fixed during adaptation (e.g. `model.head_variables`).
        loss_fn: callable (labels, predictions) -> scalar. Default: MSE, the
            MetaIQA loss on labels in [0, 1].
        batchnorm: str. "batch" or "moving": which statistics BatchNorm uses
            during a meta-step (see the module docstring).

    Example:
    ```python
    step = MAMLStep(model, inner_steps=1, inner_learning_rate=1e-2)
    # Frozen statistics of this meta-batch under theta (batchnorm="batch").
    stats_values, stats = step.meta_batch_statistics(support_x, query_x)
    loss, support_loss, grads = step.meta_gradients(
        support_x, support_y, query_x, query_y,  # tasks on axis 0
        non_trainable=stats_values)
    optimizer.apply(grads, step.meta_variables)
    step.bn_slots.moving_update(model, stats)
    ```
    """

    def __init__(
        self,
        model,
        inner_steps=1,
        inner_learning_rate=1e-3,
        order="second",
        learn_inner_lr=False,
        adapt_variables=None,
        loss_fn=mse,
        batchnorm="batch",
    ):
        if batchnorm not in BATCHNORM_MODES:
            raise ConfigError(
                f"stages.meta.batchnorm must be one of {list(BATCHNORM_MODES)}. "
                f"Received: {batchnorm!r}"
            )
        if order not in ORDERS:
            raise ConfigError(
                f"stages.meta.order must be one of {list(ORDERS)}. Received: {order!r}"
            )
        if int(inner_steps) < 0:
            raise ConfigError(
                "stages.meta.inner_steps must be >= 0. "
                f"Received: inner_steps={inner_steps}"
            )
        if not model.built:
            raise ValueError(f"Model {model.name} must be built before MAMLStep.")
        self.model = model
        self.inner_steps = int(inner_steps)
        self.inner_learning_rate = float(inner_learning_rate)
        self.order = order
        self.learn_inner_lr = bool(learn_inner_lr)
        self.loss_fn = loss_fn
        self.batchnorm = batchnorm
        self.bn_slots = BatchNormSlots(model)
        trainable = model.trainable_variables
        if adapt_variables is None:
            self.adapt_indices = list(range(len(trainable)))
        else:
            positions = {id(v): i for i, v in enumerate(trainable)}
            missing = [v.path for v in adapt_variables if id(v) not in positions]
            if missing:
                raise ValueError(
                    "adapt_variables must be trainable variables of the model. "
                    f"Received: {missing[:3]}"
                )
            self.adapt_indices = sorted(positions[id(v)] for v in adapt_variables)
        self.inner_lrs = []
        if self.learn_inner_lr:
            for i in self.adapt_indices:
                v = trainable[i]
                name = "inner_lr_" + v.path.replace("/", "_")
                self.inner_lrs.append(
                    keras.Variable(
                        np.full(v.shape, self.inner_learning_rate, dtype=v.dtype),
                        trainable=True,
                        dtype=v.dtype,
                        name=name,
                    )
                )

    @property
    def meta_variables(self):
        """What the outer optimizer updates: the model's trainable variables,
        then the learned inner learning rates (Meta-SGD)."""
        return list(self.model.trainable_variables) + list(self.inner_lrs)

    def meta_values(self):
        """Current values of `meta_variables`, as tensors."""
        return [tf.convert_to_tensor(v) for v in self.meta_variables]

    def non_trainable_values(self):
        return [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]

    def _split(self, values):
        n = len(self.model.trainable_variables)
        return list(values[:n]), list(values[n:])

    def forward(self, params, non_trainable, images):
        """Scores `images` at weights `params`; (B,). No side effects."""
        predictions, _ = self.model.stateless_call(
            params, non_trainable, images, training=False
        )
        return tf.reshape(predictions, [-1])

    def adapt(
        self,
        params,
        non_trainable,
        images,
        labels,
        inner_lrs=None,
        steps=None,
        outer_tape=None,
    ):
        """Runs the inner loop; returns (fast weights, support loss at params).

        Args:
            params: list of tensors, one per model trainable variable.
            non_trainable: list of tensors (BatchNorm statistics...).
            images, labels: the support set, (S, H, W, 3) and (S,).
            inner_lrs: learned step sizes (tensors), or None for the scalar.
            steps: number of SGD steps; default `inner_steps`.
            outer_tape: the tape computing the meta-gradient, if any. In
                first-order mode the inner gradients are computed with its
                recording paused (they are constants for the meta-gradient).
        """
        steps = self.inner_steps if steps is None else int(steps)
        if inner_lrs is None or not self.learn_inner_lr:
            inner_lrs = [self.inner_learning_rate] * len(self.adapt_indices)
        fast = list(params)
        first_loss = None
        for _ in range(steps):
            adapted = [fast[i] for i in self.adapt_indices]
            pause = (
                outer_tape.stop_recording()
                if outer_tape is not None and self.order == "first"
                else contextlib.nullcontext()
            )
            with pause:
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(adapted)
                    loss = self.loss_fn(
                        labels, self.forward(fast, non_trainable, images)
                    )
                grads = tape.gradient(loss, adapted, unconnected_gradients=_ZERO)
            if self.order == "first":
                grads = [tf.stop_gradient(g) for g in grads]
            if first_loss is None:
                first_loss = tf.stop_gradient(loss)
            for j, i in enumerate(self.adapt_indices):
                fast[i] = fast[i] - tf.cast(inner_lrs[j], grads[j].dtype) * grads[j]
        if first_loss is None:
            first_loss = tf.stop_gradient(
                self.loss_fn(labels, self.forward(fast, non_trainable, images))
            )
        return fast, first_loss

    def task_meta_gradient(
        self, meta_values, non_trainable, support_x, support_y, query_x, query_y
    ):
        """Meta-gradient of one task's query loss at its adapted weights.

        Returns (query loss after adaptation, support loss before it,
        gradients aligned with `meta_values`).
        """
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(meta_values)
            params, inner_lrs = self._split(meta_values)
            fast, support_loss = self.adapt(
                params,
                non_trainable,
                support_x,
                support_y,
                inner_lrs=inner_lrs or None,
                outer_tape=outer,
            )
            query_loss = self.loss_fn(
                query_y, self.forward(fast, non_trainable, query_x)
            )
        grads = outer.gradient(query_loss, meta_values, unconnected_gradients=_ZERO)
        return query_loss, support_loss, grads

    def meta_batch_statistics(self, support_x, query_x):
        """BatchNorm statistics of a meta-batch under the meta-parameters.

        Returns:
            (non-trainable values with every BatchNorm's moving mean and
            variance replaced by the batch statistics of all support and
            query images (constants), list of those statistics), or
            (None, []) for `batchnorm="moving"` or a model without BatchNorm.
        """
        if self.batchnorm != "batch" or not self.bn_slots.slots:
            return None, []
        images = tf.concat(
            [
                tf.reshape(support_x, tf.concat([[-1], tf.shape(support_x)[2:]], 0)),
                tf.reshape(query_x, tf.concat([[-1], tf.shape(query_x)[2:]], 0)),
            ],
            axis=0,
        )
        params, _ = self._split(self.meta_values())
        return self.bn_slots.batch_statistics(
            self.model, params, self.non_trainable_values(), images
        )

    def meta_gradients(
        self, support_x, support_y, query_x, query_y, scale=None, non_trainable=None
    ):
        """Sums task meta-gradients over a (local) meta-batch.

        Args:
            support_x: (T, S, H, W, 3); support_y: (T, S);
            query_x: (T, Q, H, W, 3); query_y: (T, Q). Tasks on axis 0.
            scale: multiplier of the summed gradients; default 1 / T (the
                meta-batch mean). Under a distribution strategy pass
                1 / global T so that summing over replicas gives the mean.
            non_trainable: values of the model's non-trainable variables to
                use (BatchNorm statistics); default: the model's own. Pass
                `meta_batch_statistics(...)[0]` for `batchnorm="batch"`.

        Returns:
            (mean query loss, mean support loss, gradients aligned with
            `meta_variables`). The losses are means over the local tasks.
        """
        meta_values = self.meta_values()
        if non_trainable is None:
            non_trainable = self.non_trainable_values()
        num_tasks = tf.shape(support_x)[0]

        def body(t, q_sum, s_sum, grad_sums):
            q, s, grads = self.task_meta_gradient(
                meta_values,
                non_trainable,
                support_x[t],
                support_y[t],
                query_x[t],
                query_y[t],
            )
            grad_sums = [a + g for a, g in zip(grad_sums, grads, strict=True)]
            q_sum += tf.cast(q, tf.float32)
            s_sum += tf.cast(s, tf.float32)
            return t + 1, q_sum, s_sum, grad_sums

        zeros = [tf.zeros_like(v) for v in meta_values]
        zero = tf.constant(0.0, tf.float32)
        _, q_sum, s_sum, grad_sums = tf.while_loop(
            lambda t, *_: t < num_tasks,
            body,
            (tf.constant(0), zero, zero, zeros),
            parallel_iterations=1,
        )
        n = tf.cast(num_tasks, tf.float32)
        if scale is None:
            grads = [g / tf.cast(num_tasks, g.dtype) for g in grad_sums]
        else:
            grads = [g * tf.cast(scale, g.dtype) for g in grad_sums]
        return q_sum / n, s_sum / n, grads

    def adapt_and_predict(self, support_x, support_y, query_x, steps=None):
        """Adapts to one task's support set and scores its query images.

        Returns (query predictions at the adapted weights (Q,), predictions
        at the meta-parameters (Q,)). No variable is modified.
        """
        params, inner_lrs = self._split(self.meta_values())
        non_trainable = self.non_trainable_values()
        fast, _ = self.adapt(
            params, non_trainable, support_x, support_y, inner_lrs or None, steps
        )
        adapted = self.forward(fast, non_trainable, query_x)
        zero_shot = self.forward(params, non_trainable, query_x)
        return tf.stop_gradient(adapted), tf.stop_gradient(zero_shot)
