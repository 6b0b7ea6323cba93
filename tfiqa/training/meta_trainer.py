"""`MetaTrainer`: MetaIQA's bi-level meta-learning of a quality prior.

Each meta-step takes a meta-batch of tasks (one distortion type each, with a
support and a query set), adapts the scoring model to every task's support
set with `inner_steps` SGD steps (fast weights, no variable is mutated) and
updates the meta-parameters with Adam on the query loss at the adapted
weights, averaged over the meta-batch (`tfiqa.training.maml.MAMLStep`).

Under a distribution strategy the tasks of a meta-batch are split across
replicas: each replica computes the meta-gradients of its tasks, scaled by
1 / (global number of tasks), and the optimizers sum them over replicas, so
the update is the mean of the per-task meta-gradients. With `batchnorm:
batch` the frozen statistics are those of the whole meta-batch: each
replica's mean and second moment are summed across replicas before the
inner loops. So the update is the same however the tasks are split (up to
floating-point rounding).

What is trained, checkpointed, validated and handed on is the meta-parameters
theta (the scoring model's weights, plus the learned inner learning rates with
Meta-SGD), never the weights adapted to the last task. Validation adapts a
copy (fast weights) to each held-out task's support set and measures the loss
and SRCC on its query set.

Reference:
    Zhu, Li, Wu, Dong, Shi. MetaIQA: Deep Meta-learning for No-Reference
    Image Quality Assessment. CVPR 2020.
"""

import warnings

import numpy as np
import tensorflow as tf

from tfiqa.training.batchnorm import recalibrate_batchnorm
from tfiqa.training.loop import DistributedLoop, make_optimizer
from tfiqa.training.maml import MAMLStep

ADAPT = ("all", "head")


class MetaState(tf.Module):
    """What a meta checkpoint holds besides the optimizers: the scoring
    model (the meta-parameters and BatchNorm statistics) and the learned
    inner learning rates."""

    def __init__(self, model, inner_lrs):
        super().__init__(name="meta_state")
        self.model = model
        self.inner_lrs = list(inner_lrs)


class MetaTrainer:
    """Meta-steps and task-adaptation validation for one scoring model.

    Args:
        model: keras.Model mapping images (N, c, c, 3) to scores (N,); built.
            Create the trainer under the strategy scope the model was built
            in (Meta-SGD creates variables).
        adapt: str. "all" adapts every trainable weight in the inner loop;
            "head" adapts only `model.head_variables` (the backbone is still
            meta-learned, through the adapted head; much cheaper).
        **step_options: the inner loop, as `tfiqa.training.maml.MAMLStep`
            takes it: `inner_steps`, `inner_learning_rate`, `order`,
            `learn_inner_lr`, `batchnorm`.

    Example:
    ```python
    trainer = MetaTrainer(model, inner_steps=1, inner_learning_rate=1e-2)
    optimizer = keras.optimizers.Adam(1e-4)
    terms = trainer.replica_step(episode, [(optimizer, trainer.meta_variables)])
    metrics = trainer.evaluate(val_episodes)   # {"loss", "srcc", ...}
    ```
    """

    def __init__(self, model, adapt="all", **step_options):
        self.model = model
        self.maml = MAMLStep(
            model, adapt_variables=adapt_variables(model, adapt), **step_options
        )
        self.state = MetaState(model, self.maml.inner_lrs)
        self._adapt_predict = None

    @property
    def meta_variables(self):
        """Model trainable variables, then Meta-SGD learning rates."""
        return self.maml.meta_variables

    @property
    def inner_lrs(self):
        return self.maml.inner_lrs

    def replica_step(self, batch, optimizer_groups):
        """One meta-step on this replica's share of a meta-batch.

        Args:
            batch: dict with "support_images" (T, S, c, c, 3), "support_labels"
                (T, S), "query_images" (T, Q, c, c, 3), "query_labels" (T, Q).
            optimizer_groups: list of (optimizer, variables) covering
                `meta_variables`; each optimizer applies its share.

        Returns:
            dict name -> (sum over local tasks, number of local tasks) of
            "loss" (query loss after adaptation) and "support_loss" (before).
        """
        local_tasks = tf.shape(batch["support_images"])[0]
        count = tf.cast(local_tasks, tf.float32)
        context = tf.distribute.get_replica_context()
        global_tasks = count
        if context is not None:
            global_tasks = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        statistics, stats = self.maml.meta_batch_statistics(
            batch["support_images"], batch["query_images"]
        )
        if stats and context is not None and context.num_replicas_in_sync > 1:
            # Statistics of the whole meta-batch, not of this replica's share.
            images = tf.size(batch["support_labels"]) + tf.size(batch["query_labels"])
            stats = self.maml.bn_slots.cross_replica(stats, images, context)
            statistics = self.maml.bn_slots.substitute(statistics, stats)
        query_loss, support_loss, grads = self.maml.meta_gradients(
            batch["support_images"],
            batch["support_labels"],
            batch["query_images"],
            batch["query_labels"],
            scale=1.0 / global_tasks,
            non_trainable=statistics,
        )
        apply_gradient_groups(optimizer_groups, grads, self.meta_variables)
        if stats:
            # The same statistics on every replica keep the copies equal.
            self.maml.bn_slots.moving_update(self.model, stats)
        return {
            "loss": (query_loss * count, count),
            "support_loss": (support_loss * count, count),
        }

    def adapt_predict(self, support_images, support_labels, query_images):
        """Adapted and zero-shot query scores for one task, as numpy (Q,)."""
        if self._adapt_predict is None:
            self._adapt_predict = tf.function(
                self.maml.adapt_and_predict, reduce_retracing=True
            )
        adapted, zero_shot = self._adapt_predict(
            support_images, support_labels, query_images
        )
        return adapted.numpy(), zero_shot.numpy()

    def evaluate(self, episodes):
        """Adapts to each task's support set and scores its query set.

        Args:
            episodes: iterable of episode dicts (numpy or tensors), tasks on
                axis 0, as from `tfiqa.data.episodes`.

        Returns:
            dict: "loss" / "loss_0shot" (mean query MSE after / without
            adaptation), "srcc" / "srcc_0shot" (mean per-task query SRCC),
            "tasks" (number of tasks).
        """
        from tfiqa.metrics import MetricWarning, srcc

        losses, losses_0, srccs, srccs_0 = [], [], [], []
        for episode in episodes:
            support_x = np.asarray(episode["support_images"])
            support_y = np.asarray(episode["support_labels"], np.float32)
            query_x = np.asarray(episode["query_images"])
            query_y = np.asarray(episode["query_labels"], np.float64)
            for t in range(support_x.shape[0]):
                adapted, zero_shot = self.adapt_predict(
                    support_x[t], support_y[t], query_x[t]
                )
                losses.append(np.mean((adapted - query_y[t]) ** 2))
                losses_0.append(np.mean((zero_shot - query_y[t]) ** 2))
                with warnings.catch_warnings():
                    # Constant query labels (a task of one level) have no
                    # ranking; such tasks are left out of the SRCC mean.
                    warnings.simplefilter("ignore", MetricWarning)
                    srccs.append(srcc(adapted, query_y[t]))
                    srccs_0.append(srcc(zero_shot, query_y[t]))
        if not losses:
            return {}
        return {
            "loss": float(np.mean(losses)),
            "loss_0shot": float(np.mean(losses_0)),
            "srcc": _nanmean(srccs),
            "srcc_0shot": _nanmean(srccs_0),
            "tasks": float(len(losses)),
        }

    def recalibrate_batchnorm(self, image_batches):
        """Re-estimates BatchNorm statistics for the meta-parameters."""
        return recalibrate_batchnorm(self.model, image_batches)


def adapt_variables(model, adapt):
    """The variables the inner loop adapts for `stages.meta.adapt` (None = all)."""
    from tfiqa.errors import ConfigError

    if adapt not in ADAPT:
        raise ConfigError(
            f"stages.meta.adapt must be one of {list(ADAPT)}. Received: {adapt!r}"
        )
    if adapt == "all":
        return None
    if not hasattr(model, "head_variables"):
        raise ConfigError(
            "stages.meta.adapt='head' needs a model with `head_variables` "
            f"(an IQAModel). Received: {type(model).__name__}"
        )
    return list(model.head_variables)


def _nanmean(values):
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def apply_gradient_groups(optimizer_groups, grads, variables):
    """Applies `grads` (aligned with `variables`) with each group's optimizer.

    A loss-scaling optimizer divides by its loss scale, so its share of the
    (unscaled) gradients is multiplied by the scale first.
    """
    position = {id(v): i for i, v in enumerate(variables)}
    covered = set()
    for optimizer, group in optimizer_groups:
        indices = [position[id(v)] for v in group if id(v) in position]
        covered.update(indices)
        if not indices:
            continue
        factor = optimizer.scale_loss(tf.constant(1.0))
        optimizer.apply(
            [grads[i] * tf.cast(factor, grads[i].dtype) for i in indices],
            [variables[i] for i in indices],
        )
    missing = [variables[i].path for i in range(len(variables)) if i not in covered]
    if missing:
        raise ValueError(
            "Every meta-variable needs an optimizer group. "
            f"Received no optimizer for: {missing[:5]}"
        )


class MetaLoop(DistributedLoop):
    """The shared distributed loop, running meta-steps instead of plain steps.

    Checkpoints hold `trainer.state` (model + Meta-SGD learning rates), the
    optimizers and the epoch counters, so a resumed run continues the same
    meta-optimisation.

    Args:
        strategy: `tf.distribute.Strategy`.
        trainer: `MetaTrainer`.
        optimizer_groups: list of (optimizer, variables) covering
            `trainer.meta_variables`.
        **kwargs: as `DistributedLoop` (stage, stage_index, checkpoint_dir,
            log_dir, verbose, max_to_keep).
    """

    def __init__(self, strategy, trainer, optimizer_groups, **kwargs):
        self.trainer = trainer
        super().__init__(
            strategy,
            trainer.state,
            compute_terms=None,
            optimizer_groups=optimizer_groups,
            **kwargs,
        )

    def _replica_step(self, batch):
        terms = self.trainer.replica_step(batch, self.optimizer_groups)
        return {
            name: (tf.cast(s, tf.float32), tf.cast(c, tf.float32))
            for name, (s, c) in terms.items()
        }


def meta_variable_groups(trainer, learning_rate, head_learning_rate=0.0):
    """`(optimizer name, learning rate, variables)` of the meta-parameters.

    With `head_learning_rate` > 0 and a model exposing `head_variables`, the
    head and the Meta-SGD learning rates get their own optimizer (MetaIQA used
    1e-4 for the backbone and 1e-2 for the head).
    """
    model = trainer.model
    if head_learning_rate > 0 and hasattr(model, "head_variables"):
        head_ids = {id(v) for v in model.head_variables}
        body = [v for v in model.trainable_variables if id(v) not in head_ids]
        head = [v for v in model.trainable_variables if id(v) in head_ids]
        head += list(trainer.inner_lrs)
        return [
            ("meta_backbone", learning_rate, body),
            ("meta_head", head_learning_rate, head),
        ]
    return [("meta", learning_rate, trainer.meta_variables)]


def make_meta_optimizer_groups(trainer, learning_rate, head_learning_rate=0.0, **kw):
    """Adam groups `(optimizer, variables)` for the meta-parameters (see
    `meta_variable_groups`); `kw` as `make_optimizer`. Create them in the
    strategy scope."""
    return [
        (make_optimizer(rate, name=name, **kw), variables)
        for name, rate, variables in meta_variable_groups(
            trainer, learning_rate, head_learning_rate
        )
    ]


__all__ = [
    "MetaLoop",
    "MetaState",
    "MetaTrainer",
    "adapt_variables",
    "apply_gradient_groups",
    "make_meta_optimizer_groups",
    "meta_variable_groups",
]
