"""The `meta` stage: meta-learn a quality prior over distortion tasks.

Tasks are distortion types. With `meta.task_source: synthetic` they come
from the distortion engine applied to pristine images (the same pristine
train/val split as the `rank` stage, `splits/pristine.json`), labelled with
a full-reference pseudo-MOS or the level; with a reader kind that has real
MOS and distortion labels ("tid2013", "kadid10k") they come from that
dataset, split by reference content. Types listed in `meta.holdout` are
never trained on.

Validation (end of every epoch) uses held-out *sources*: for each fixed
validation task, adapt the meta-parameters to its support set, then measure
MSE and SRCC on its query set (`val_srcc`; `val_srcc_0shot` without
adaptation). Held-out *types*, if any, are validated the same way
(`val_holdout_srcc`). These are meta-validation numbers on the task
distribution, never on the target dataset's test split; the stage keeps the
meta-parameters of its last epoch and leaves them in `model`.
"""

import logging
import os
import time

from tfiqa.training.stage_splits import reserved_ids, write_meta_split
from tfiqa.training.stage_utils import fit_summary, is_number, last_val
from tfiqa.training.stages.base import StageContext, register_stage
from tfiqa.training.stages.meta_tasks import (  # noqa: F401  (the stage's API)
    MetaTasks,
    build_tasks,
    pristine_split,
)

logger = logging.getLogger("tfiqa.training")

STAGE = "meta"


def check_meta_config(meta, replicas=1):
    from tfiqa.config_checks import check_meta_values

    check_meta_values(meta)
    if meta.meta_batch_size % replicas:
        logger.warning(
            "meta.meta_batch_size=%d is not a multiple of the %d replicas; "
            "replicas get unequal numbers of tasks.",
            meta.meta_batch_size,
            replicas,
        )


def evaluate_tasks(trainer, tasks):
    """Validation metrics on the held-out sources (and "holdout_*" types)."""
    logs = trainer.evaluate(tasks.val)
    if tasks.holdout:
        held = trainer.evaluate(tasks.holdout)
        logs.update({f"holdout_{k}": v for k, v in held.items()})
    return logs


def build_trainer(config, model, strategy):
    """`MetaTrainer` and its optimizer groups, created in the strategy scope."""
    from tfiqa.training.meta_trainer import MetaTrainer, make_meta_optimizer_groups

    meta = config.meta
    with strategy.scope():
        trainer = MetaTrainer(
            model,
            inner_steps=meta.inner_steps,
            inner_learning_rate=meta.inner_learning_rate,
            order=meta.order,
            learn_inner_lr=meta.learn_inner_lr,
            adapt=meta.adapt,
            batchnorm=meta.batchnorm,
        )
        groups = make_meta_optimizer_groups(
            trainer,
            meta.learning_rate,
            meta.head_learning_rate,
            weight_decay=config.trainer.weight_decay,
            mixed_precision=config.trainer.mixed_precision,
        )
    return trainer, groups


def run_meta_stage(config, model, strategy, workdir, verbose=None, tasks=None):
    """Meta-trains `model` in place; returns the final validation metrics.

    Args:
        config: `ExperimentConfig`; reads `meta`, `data`, `trainer`.
        model: the scoring model (an `IQAModel`), built under `strategy`.
        strategy: `tf.distribute.Strategy`; the tasks of each meta-batch are
            split across its replicas.
        workdir: str. Checkpoints go to `<workdir>/checkpoints/meta`, logs to
            `<workdir>/logs/meta`; an existing checkpoint is resumed.
        verbose: int or None (default `config.trainer.verbose`).
        tasks: `MetaTasks` to use instead of building them from the config.

    Returns:
        dict of validation metrics of the final meta-parameters ("loss",
        "srcc", "loss_0shot", "srcc_0shot", "tasks", and "holdout_*" when
        types are held out), plus "fit" (epochs, history, resume info) and
        "tasks_info" (types and sources).
    """
    from tfiqa.training.adaptation import adaptation_spec, save_adaptation
    from tfiqa.training.meta_trainer import MetaLoop
    from tfiqa.training.strategy import is_chief

    meta = config.meta
    replicas = strategy.num_replicas_in_sync
    check_meta_config(meta, replicas)
    verbose = config.trainer.verbose if verbose is None else int(verbose)
    if tasks is None:
        tasks = build_tasks(config, strategy, workdir)
    trainer, groups = build_trainer(config, model, strategy)
    stage_index = (
        config.trainer.stages.index(STAGE) if STAGE in config.trainer.stages else 0
    )
    chief = is_chief(strategy)
    loop = MetaLoop(
        strategy,
        trainer,
        groups,
        stage=STAGE,
        stage_index=stage_index,
        checkpoint_dir=os.path.join(workdir, "checkpoints", STAGE),
        log_dir=os.path.join(workdir, "logs", STAGE) if chief else None,
        verbose=verbose,
    )
    if tasks.calibration:
        # Statistics for the starting weights (overwritten by a resumed
        # checkpoint, which holds statistics for its own weights).
        trainer.recalibrate_batchnorm(tasks.calibration)

    def validate(epoch):
        if tasks.calibration:
            trainer.recalibrate_batchnorm(tasks.calibration)
        return evaluate_tasks(trainer, tasks)

    result = loop.fit(
        tasks.train_fn, meta.epochs, meta.steps_per_epoch, validate=validate
    )
    val = last_val(result["history"])
    if not val:  # resumed after the last epoch: validate the restored model
        val = evaluate_tasks(trainer, tasks)
    if chief:
        # The recipe (and Meta-SGD rates) k-shot evaluations must reuse.
        save_adaptation(workdir, trainer.maml, adaptation_spec(meta))
    return {
        **val,
        "fit": {
            **fit_summary(result, meta.epochs),
            "order": meta.order,
            "inner_steps": meta.inner_steps,
            "adapt": meta.adapt,
            "batchnorm": meta.batchnorm,
            "learn_inner_lr": meta.learn_inner_lr,
            "replicas": replicas,
        },
        "tasks_info": {
            "types": tasks.types,
            "holdout": tasks.holdout_types,
            **tasks.info,
        },
    }


class MetaStage:
    """Builds the tasks from the run's shared data (pristine split, content
    reserved for fine-tuning) and meta-trains `ctx.model`."""

    name = STAGE
    # Each replica adapts to its own tasks, whose statistics stay apart.
    sync_batchnorm = False

    def run(self, ctx: StageContext, stage_index):
        start = time.time()
        tasks = build_tasks(
            ctx.config, ctx.strategy, ctx.workdir, ctx.pristine, reserved_ids(ctx)
        )
        write_meta_split(ctx, tasks)
        from tfiqa.training.transfer import frozen_backbone

        until = ctx.config.meta.freeze_backbone
        with frozen_backbone(ctx, until, "meta.freeze_backbone"):
            metrics = run_meta_stage(
                ctx.config,
                ctx.model,
                ctx.strategy,
                ctx.workdir,
                verbose=ctx.verbose,
                tasks=tasks,
            )
        return {
            "epochs": ctx.config.meta.epochs,
            "time_s": time.time() - start,
            "val": {k: v for k, v in metrics.items() if is_number(v)},
            "details": metrics,
        }


register_stage(MetaStage())
