"""The one distributed custom training loop shared by every training stage.

Keras `fit()` does not run under `MultiWorkerMirroredStrategy` in Keras 3, so
the stages train with an explicit loop: `strategy.run` of a replica step
inside a `tf.function`, on a dataset distributed with
`strategy.experimental_distribute_dataset`. The same code runs under the
default strategy, `MirroredStrategy` and `MultiWorkerMirroredStrategy`.

A stage supplies `compute_terms(batch, training)` returning a dict of
`name -> (sum, count)` tensors for its replica's share of the global batch;
the loss minimised is `sum_k weight_k * sum_k / global_count_k` over the
terms named in `loss_weights` (default: the term "loss"). Dividing each
replica's sum by the count all-reduced over the global batch makes the loss
(and its gradient, which the optimizers sum over replicas) the mean over the
global batch however it is split: the `tf.nn.compute_average_loss` contract,
also correct for pair losses whose count is not the batch size.

Every epoch ends with a `tf.train.CheckpointManager` save of the model, the
optimizers and the stage/epoch counters. TensorFlow writes a checkpoint's
files first and then replaces the small `checkpoint` index file atomically,
so a run killed mid-write still restores the previous epoch.
"""

import math
import os
import shutil
import sys
import time

import keras
import tensorflow as tf

from tfiqa.errors import TrainingError
from tfiqa.progress import progress_enabled
from tfiqa.training.loop_logs import (
    read_history,
    write_epoch_summaries,
    write_history,
    write_scalar,
)
from tfiqa.training.strategy import is_chief, precision_policy, worker_id


def distribute_dataset(strategy, dataset):
    """Distributes a batched dataset; each batch is one global batch.

    Sharding is by data (each worker takes its slice of every global batch),
    which works for generated and in-memory datasets that have no files to
    shard. All workers must build the same dataset with the same seed.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def make_optimizer(learning_rate, weight_decay=0.0, mixed_precision=False, name=None):
    """Adam (AdamW when `weight_decay` > 0), loss-scaled under mixed_float16
    (`mixed_precision` as in `runtime.mixed_precision`).

    Create optimizers inside `strategy.scope()`.
    """
    if weight_decay > 0:
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=weight_decay, name=name
        )
    else:
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate, name=name)
    # bfloat16 has float32's exponent range: only float16 needs loss scaling.
    if precision_policy(mixed_precision) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class DistributedLoop:
    """Trains `model` with `strategy.run` steps and per-epoch checkpoints.

    Args:
        strategy: `tf.distribute.Strategy` the model and optimizers were
            created under.
        model: keras.Model being trained (the scoring model).
        compute_terms: callable `(batch, training) -> {name: (sum, count)}`
            for one replica's share of a batch; "loss" is minimised, other
            entries are streamed as metrics (e.g. "pair_accuracy").
        loss_weights: dict `{term: weight}` of the terms that make the loss;
            default `{"loss": 1.0}`. With several terms, the weighted total is
            reported as "loss".
        optimizer_groups: list of `(optimizer, variables)`; each optimizer
            updates its own variables (e.g. backbone and head learning rates).
        stage: str. Stage name, used in logs and error messages.
        stage_index: int. Position of the stage in `stages.order`.
        checkpoint_dir: str. Where this stage's checkpoints go.
        log_dir: str or None. TensorBoard logs (`tf.summary`) go here.
        verbose: int. 1 shows a progress bar per epoch when stdout is a
            terminal (see `tfiqa.progress.progress_enabled`), else one line
            per epoch as 0 does; -1 nothing (output on the chief only).
        max_to_keep: int. Checkpoints kept.

    Example:
    ```python
    loop = DistributedLoop(strategy, model, trainer.compute_terms,
                           [(optimizer, model.trainable_variables)], "rank", 0,
                           "runs/x/checkpoints/rank", "runs/x/logs/rank")
    history = loop.fit(lambda epoch: dataset, epochs=3, steps_per_epoch=50)
    ```
    """

    def __init__(
        self,
        strategy,
        model,
        compute_terms,
        optimizer_groups,
        stage,
        stage_index=0,
        checkpoint_dir=None,
        log_dir=None,
        verbose=1,
        max_to_keep=2,
        loss_weights=None,
    ):
        self.strategy = strategy
        self.loss_weights = dict(loss_weights or {"loss": 1.0})
        self.model = model
        self.compute_terms = compute_terms
        self.optimizer_groups = [(opt, list(v)) for opt, v in optimizer_groups]
        self.stage = stage
        self.verbose = verbose
        self.chief = is_chief(strategy)
        self._train_fn = None
        with strategy.scope():
            for optimizer, variables in self.optimizer_groups:
                optimizer.build(variables)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.stage_index = tf.Variable(
            stage_index, dtype=tf.int64, trainable=False, name="stage"
        )
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint_dir = checkpoint_dir
        self.manager = None
        self._scratch_dir = None
        if checkpoint_dir:
            objects = {
                "model": model,
                "epoch": self.epoch,
                "stage": self.stage_index,
                "step": self.global_step,
            }
            for i, (optimizer, _) in enumerate(self.optimizer_groups):
                objects[f"optimizer_{i}"] = optimizer
            self.checkpoint = tf.train.Checkpoint(**objects)
            write_dir = checkpoint_dir
            if not self.chief:
                # Every worker must save (variables may live on any of them);
                # only the chief's copy is kept.
                write_dir = os.path.join(checkpoint_dir, "workers", worker_id(strategy))
                self._scratch_dir = write_dir
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, directory=write_dir, max_to_keep=max_to_keep
            )
        self.writer = None
        if log_dir and self.chief:
            self.writer = tf.summary.create_file_writer(log_dir)

    # -- checkpoints -----------------------------------------------------

    def restore(self):
        """Restores the latest checkpoint of this stage; returns its path or None."""
        if self.manager is None:
            return None
        path = tf.train.latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self):
        if self.manager is None:
            return None
        path = self.manager.save(checkpoint_number=int(self.epoch.numpy()))
        if self._scratch_dir:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
        return path

    # -- steps -----------------------------------------------------------

    def _replica_step(self, batch):
        context = tf.distribute.get_replica_context()
        num_replicas = self.strategy.num_replicas_in_sync
        persistent = len(self.optimizer_groups) > 1
        with tf.GradientTape(persistent=persistent) as tape:
            terms = self.compute_terms(batch, True)
            loss = 0.0
            for name, weight in self.loss_weights.items():
                term_sum, count = terms[name]
                global_count = context.all_reduce(
                    tf.distribute.ReduceOp.SUM, tf.cast(count, tf.float32)
                )
                loss += weight * tf.math.divide_no_nan(
                    tf.cast(term_sum, tf.float32), global_count
                )
            if self.model.losses:
                # Regularisation is per model, not per example: each replica
                # adds its share so the sum over replicas counts it once.
                loss += tf.add_n(self.model.losses) / num_replicas
            scaled = [opt.scale_loss(loss) for opt, _ in self.optimizer_groups]
        for (optimizer, variables), scaled_loss in zip(
            self.optimizer_groups, scaled, strict=True
        ):
            grads = tape.gradient(scaled_loss, variables)
            optimizer.apply(grads, variables)
        del tape
        return {
            name: (tf.cast(s, tf.float32), tf.cast(c, tf.float32))
            for name, (s, c) in terms.items()
        }

    def _make_train_fn(self):
        strategy = self.strategy

        @tf.function
        def train_fn(iterator):
            per_replica = strategy.run(self._replica_step, args=(next(iterator),))
            return {
                name: (
                    strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, c, axis=None),
                )
                for name, (s, c) in per_replica.items()
            }

        return train_fn

    # -- epochs ----------------------------------------------------------

    def fit(
        self,
        dataset_fn,
        epochs,
        steps_per_epoch,
        validate=None,
        on_epoch_end=None,
        resume=True,
        callbacks=None,
    ):
        """Runs epochs `[restored epoch, epochs)`, checkpointing after each.

        Args:
            dataset_fn: callable `epoch -> tf.data.Dataset` of global batches
                (seeded by epoch, so a resumed epoch sees the data it would
                have seen). It may be infinite; `steps_per_epoch` bounds it.
            epochs: int. Total epochs of the stage.
            steps_per_epoch: int.
            validate: callable `epoch -> dict` of validation metrics, or None.
                Runs on every worker (all must agree on early stopping).
            on_epoch_end: callable `(epoch, logs) -> bool`; True stops early.
            resume: bool. Restore the latest checkpoint first.
            callbacks: list of `keras.callbacks.Callback` (EarlyStopping,
                TensorBoard, your own), driven through a `CallbackList` with
                the usual train/epoch/batch hooks; one that sets
                `model.stop_training` ends the stage after that epoch.

        Returns:
            dict with "history" (list of per-epoch logs of this call),
            "earlier_history" (those of the epochs before a resume), "initial_epoch",
            "resumed_from" (checkpoint path or None) and "stopped_early".
        """
        resumed_from = self.restore() if resume else None
        initial_epoch = int(self.epoch.numpy())
        if resumed_from:
            self._print(
                f"resuming at epoch {initial_epoch + 1}/{epochs} from {resumed_from}"
            )
        if self._train_fn is None:
            self._train_fn = self._make_train_fn()
        # Epochs before a resume, so that metrics.json keeps all of them.
        earlier = (
            read_history(self.checkpoint_dir, initial_epoch) if resumed_from else []
        )
        history = []
        stopped_early = False
        hooks = keras.callbacks.CallbackList(
            callbacks, model=self.model, epochs=epochs, steps=steps_per_epoch
        )
        self.model.stop_training = False
        hooks.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            hooks.on_epoch_begin(epoch)
            logs = self.train_epoch(
                dataset_fn(epoch), epoch, epochs, steps_per_epoch, hooks
            )
            if validate is not None:
                start = time.time()
                logs.update({f"val_{k}": v for k, v in validate(epoch).items()})
                logs["val_time"] = time.time() - start
            stop = bool(on_epoch_end(epoch, logs)) if on_epoch_end else False
            hooks.on_epoch_end(epoch, logs)
            stop = stop or bool(self.model.stop_training)
            history.append(logs)
            self._finish_epoch(epoch, epochs, logs, earlier + history)
            if stop and epoch + 1 < epochs:
                stopped_early = True
                break
        hooks.on_train_end(history[-1] if history else None)
        if self.writer is not None:
            self.writer.flush()
        return {
            "history": history,
            "earlier_history": earlier,
            "initial_epoch": initial_epoch,
            "resumed_from": resumed_from,
            "stopped_early": stopped_early,
        }

    def _finish_epoch(self, epoch, epochs, logs, history):
        """Checkpoints the epoch, records its logs (in `history`) and reports."""
        self.epoch.assign(epoch + 1)
        start = time.time()
        logs["checkpoint"] = self.save()
        logs["save_time"] = time.time() - start
        if self.chief:
            write_history(self.checkpoint_dir, history)
        write_epoch_summaries(self.writer, self.stage, epoch, logs)
        self._print_epoch(epoch, epochs, logs)

    def _print(self, message):
        if self.chief and self.verbose >= 0:
            print(f"[{self.stage}] {message}", flush=True)

    def _print_epoch(self, epoch, epochs, logs):
        shown = ", ".join(
            f"{k}={v:.4f}"
            for k, v in logs.items()
            if isinstance(v, float) and not k.endswith("time")
        )
        timing = f"train {logs['time']:.1f}s"
        if "val_time" in logs:
            timing += f", validation {logs['val_time']:.1f}s"
        self._print(f"epoch {epoch + 1}/{epochs}: {shown} ({timing})")

    def train_epoch(self, dataset, epoch, epochs, steps, hooks=None):
        """One epoch of `steps` global batches; returns mean train metrics.

        Each term is tracked by a `keras.metrics.Mean` weighted by its
        global count, so the epoch value is sum / count over the epoch.
        """
        start = time.time()
        iterator = iter(distribute_dataset(self.strategy, dataset))
        trackers = {}
        progbar = None
        # Off a terminal the epoch's summary line is all that is printed.
        if self.chief and progress_enabled(self.verbose, sys.stdout):
            print(f"[{self.stage}] epoch {epoch + 1}/{epochs}", flush=True)
            progbar = keras.utils.Progbar(steps, unit_name="step")
        for step in range(steps):
            try:
                terms = self._train_fn(iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                break
            values = {k: (float(s), float(c)) for k, (s, c) in terms.items()}
            step_loss = sum(
                weight * (values[k][0] / values[k][1] if values[k][1] else 0.0)
                for k, weight in self.loss_weights.items()
            )
            if "loss" not in values:
                values["loss"] = (step_loss, 1.0)
            if not math.isfinite(step_loss):
                last = int(self.epoch.numpy())
                kept = (
                    f"the checkpoint of epoch {last} is kept in {self.checkpoint_dir}"
                    if last
                    else "no epoch finished, so there is no checkpoint"
                )
                raise TrainingError(
                    f"{self.stage} stage: the loss became non-finite at epoch "
                    f"{epoch + 1}, step {step + 1}; {kept}. Lower the learning "
                    f"rate or check the data. Received: loss={step_loss}"
                )
            for name, (s, c) in values.items():
                if name not in trackers:
                    trackers[name] = keras.metrics.Mean(name=name, dtype="float64")
                if c:
                    trackers[name].update_state(s / c, sample_weight=c)
            means = {k: float(t.result()) for k, t in trackers.items()}
            if hooks is not None:
                hooks.on_train_batch_end(step, means)
            self.global_step.assign_add(1)
            if self.writer is not None:
                with self.writer.as_default(step=int(self.global_step.numpy())):
                    write_scalar(f"{self.stage}/step_loss", step_loss, None)
            if progbar is not None:
                # The values shown are already running means over the epoch.
                progbar.stateful_metrics.update(means)
                progbar.update(step + 1, list(means.items()), finalize=False)
        logs = {k: float(t.result()) for k, t in trackers.items()}
        if progbar is not None:
            progbar.update(steps, finalize=True)
        logs["time"] = time.time() - start
        return logs
