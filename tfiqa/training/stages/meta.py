"""The `meta` stage: meta-learn a quality prior over distortion tasks.

Tasks are distortion types. With `stages.meta.task_source: synthetic` they come
from the distortion engine applied to pristine images (the same pristine
train/val split as the `rank` stage, `splits/pristine.json`), labelled with
a full-reference pseudo-MOS or the level; with a reader kind that has real
MOS and distortion labels ("tid2013", "kadid10k") they come from that
dataset, split by reference content. Types listed in `stages.meta.holdout` are
never trained on.

Validation (end of every epoch) uses held-out *sources*: for each fixed
validation task, adapt the meta-parameters to its support set, then measure
MSE and SRCC on its query set (`val_srcc`; `val_srcc_0shot` without
adaptation). Held-out *types*, if any, are validated the same way
(`val_holdout_srcc`). These are meta-validation numbers on the task
distribution, never on the target dataset's test split; the stage keeps the
meta-parameters of its last epoch and leaves them in `model`.
"""

import dataclasses
import logging

from tfiqa.training.fit_summary import fit_summary, is_number, last_val
from tfiqa.training.stage_splits import reserved_ids, write_meta_split
from tfiqa.training.stages.context import StageContext
from tfiqa.training.stages.meta_tasks import (  # noqa: F401  (the stage's API)
    SYNTHETIC,
    VAL_SEED_OFFSET,
    MetaTasks,
    build_tasks,
    episode_seed,
    pristine_split,
)
from tfiqa.training.stages.spec import Phase, StageSpec, register_stage

logger = logging.getLogger("tfiqa.training")

STAGE = "meta"


def check_meta_config(meta, replicas=1):
    if meta.meta_batch_size % replicas:
        logger.warning(
            "stages.meta.meta_batch_size=%d is not a multiple of the %d replicas; "
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


def _build_data(ctx):
    """The tasks, from the run's shared data (pristine split, content
    reserved for fine-tuning); their split is written to `splits/meta.json`."""
    tasks = build_tasks(
        ctx.config, ctx.strategy, ctx.workdir, ctx.pristine, reserved_ids(ctx)
    )
    write_meta_split(ctx, tasks)
    return tasks


def build_trainer(ctx, tasks=None):
    """`MetaTrainer` of `ctx.model`, created in the strategy scope."""
    from tfiqa.training.meta_trainer import MetaTrainer

    meta = ctx.config.stages.meta
    check_meta_config(meta, ctx.strategy.num_replicas_in_sync)
    with ctx.strategy.scope():
        return MetaTrainer(ctx.model, adapt=meta.adapt, **meta.step_options())


def _phases(ctx, run):
    from tfiqa.training.meta_trainer import meta_variable_groups

    meta, tasks, trainer = ctx.config.stages.meta, run.data, run.trainer
    if tasks.calibration:
        # Statistics for the starting weights (overwritten by a resumed
        # checkpoint, which holds statistics for its own weights).
        trainer.recalibrate_batchnorm(tasks.calibration)

    def validate(epoch):
        if tasks.calibration:
            trainer.recalibrate_batchnorm(tasks.calibration)
        return evaluate_tasks(trainer, tasks)

    yield Phase(
        dataset_fn=tasks.train_fn,
        epochs=meta.schedule.epochs,
        steps_per_epoch=meta.schedule.steps_per_epoch,
        optimizers=meta_variable_groups(
            trainer, meta.optimizer.learning_rate, meta.optimizer.head_learning_rate
        ),
        step_trainer=trainer,
        validate=validate,
    )


def _summarize(ctx, run):
    """{"epochs", "time_s", "val", "details"}: "details" holds the validation
    metrics of the final meta-parameters ("loss", "srcc", "loss_0shot",
    "srcc_0shot", "tasks", and "holdout_*" when types are held out), "fit"
    (epochs, history, resume info) and "tasks_info" (types and sources)."""
    import time

    from tfiqa.training.adaptation import adaptation_spec, save_adaptation

    meta, tasks, trainer = ctx.config.stages.meta, run.data, run.trainer
    result = run.fits[STAGE]
    val = last_val(result["history"])
    if not val:  # resumed after the last epoch: validate the restored model
        val = evaluate_tasks(trainer, tasks)
    if ctx.chief:
        # The recipe (and Meta-SGD rates) k-shot evaluations must reuse.
        save_adaptation(ctx.workdir, trainer.maml, adaptation_spec(meta))
    details = {
        **val,
        "fit": {
            **fit_summary(result, meta.schedule.epochs),
            "order": meta.order,
            "inner_steps": meta.inner_steps,
            "adapt": meta.adapt,
            "batchnorm": meta.batchnorm,
            "learn_inner_lr": meta.learn_inner_lr,
            "replicas": ctx.strategy.num_replicas_in_sync,
        },
        "tasks_info": {
            "types": tasks.types,
            "holdout": tasks.holdout_types,
            **tasks.info,
        },
    }
    return {
        "epochs": meta.schedule.epochs,
        "time_s": time.time() - run.started,
        "val": {k: v for k, v in details.items() if is_number(v)},
        "details": details,
    }


def _record_seeds(spec, seed):
    return {
        "meta_episodes": [episode_seed(seed, 0), "+ epoch"],
        "meta_bn_calibration_episodes": episode_seed(seed, -1),
        "meta_val_episodes": seed + VAL_SEED_OFFSET,
        "meta_holdout_episodes": seed + VAL_SEED_OFFSET + 1,
        "meta_task_split": seed,
    }


def _shared_data(config):
    # Synthetic tasks distort the pristine split; others read their dataset.
    return ("pristine",) if config.stages.meta.task_source == SYNTHETIC else ()


META = register_stage(
    StageSpec(
        name=STAGE,
        section="stages.meta",
        seed_offset=3,
        build_data=_build_data,
        build_trainer=build_trainer,
        phases=_phases,
        summarize=_summarize,
        shared_data=_shared_data,
        seeds=_record_seeds,
        freeze_backbone=True,
        # Each replica adapts to its own tasks, whose statistics stay apart.
        sync_batchnorm=False,
    )
)


def run_meta_stage(config, model, strategy, workdir, verbose=None, tasks=None):
    """Meta-trains `model` in place outside a run; returns its metrics.

    Args:
        config: `ExperimentConfig`; reads `meta`, `data`, `trainer`.
        model: the scoring model (an `IQAModel`), built under `strategy`.
        strategy: `tf.distribute.Strategy`; the tasks of each meta-batch are
            split across its replicas.
        workdir: str. Checkpoints go to `<workdir>/checkpoints/meta`, logs to
            `<workdir>/logs/meta`; an existing checkpoint is resumed.
        verbose: int or None (default `config.runtime.verbose`).
        tasks: `MetaTasks` to use instead of building them from the config.

    Returns:
        dict, the "details" of the stage's result: validation metrics of the
        final meta-parameters, "fit" and "tasks_info".
    """
    from tfiqa.training.stage_runner import run_stage

    config.validate()  # it may have been changed since it was loaded
    ctx = StageContext.for_run(config, str(workdir), strategy, verbose, model=model)
    if tasks is None:
        tasks = build_tasks(config, strategy, ctx.workdir)
    spec = dataclasses.replace(META, build_data=lambda ctx: tasks)
    stages = list(config.stages.order)
    stage_index = stages.index(STAGE) if STAGE in stages else 0
    return run_stage(spec, ctx, stage_index)["details"]
