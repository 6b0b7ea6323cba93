"""`run_stage`: one stage of a run, from its `StageSpec`, on the shared loop.

What every stage does the same way lives here: the backbone frozen for the
stage, one optimizer per variable group made in the strategy scope, one
`DistributedLoop` per fit (checkpoints under `checkpoints/<stage>`, a
phase's under `checkpoints/<stage>/<phase>`, TensorBoard logs under
`logs/<stage>`), resuming from the latest checkpoint, and fitting. What a
stage trains, on what, and what it reports comes from its spec.
"""

import contextlib
import os
import time

from tfiqa.training.stages.spec import StageRun


def run_stage(spec, ctx, stage_index):
    """Trains `ctx.model` in place through the stage `spec`; returns its result.

    Args:
        spec: `StageSpec`.
        ctx: `StageContext` of the run.
        stage_index: int. Position of the stage in `stages.order`.

    Returns:
        dict, what `spec.summarize` returns.
    """
    started = time.time()
    data = spec.build_data(ctx)
    with _frozen(spec, ctx):
        run = StageRun(data, spec.build_trainer(ctx, data), started=started)
        for phase in spec.phases(ctx, run):
            loop = _loop(spec, ctx, phase, stage_index)
            if phase.start_epoch and loop.restore() is None:
                loop.epoch.assign(phase.start_epoch)  # counts on from earlier phases
            run.fits[phase.name or spec.name] = loop.fit(
                phase.dataset_fn,
                phase.epochs,
                phase.steps_per_epoch,
                validate=phase.validate,
                on_epoch_end=phase.on_epoch_end,
            )
        return spec.summarize(ctx, run)


def _frozen(spec, ctx):
    if not spec.freeze_backbone:
        return contextlib.nullcontext()
    from tfiqa.training.transfer import frozen_backbone

    until = spec.config_section(ctx.config).freeze_backbone
    return frozen_backbone(ctx, until, f"{spec.section}.freeze_backbone")


def _optimizers(ctx, groups):
    from tfiqa.training.loop import make_optimizer

    runtime = ctx.config.runtime
    with ctx.strategy.scope():
        return [
            (
                make_optimizer(
                    rate, runtime.weight_decay, runtime.mixed_precision, name=name
                ),
                variables,
            )
            for name, rate, variables in groups
        ]


def _loop(spec, ctx, phase, stage_index):
    from tfiqa.training.loop import DistributedLoop

    folder = ctx.stage_dir(spec.name, chief_copy=True)
    common = {
        "stage": f"{spec.name}:{phase.name}" if phase.name else spec.name,
        "stage_index": stage_index,
        "checkpoint_dir": os.path.join(folder, phase.name) if phase.name else folder,
        "log_dir": os.path.join(ctx.workdir, "logs", spec.name),
        "verbose": ctx.verbose,
    }
    optimizers = _optimizers(ctx, phase.optimizers)
    if phase.step_trainer is not None:
        from tfiqa.training.meta_trainer import MetaLoop

        return MetaLoop(ctx.strategy, phase.step_trainer, optimizers, **common)
    return DistributedLoop(
        ctx.strategy,
        ctx.model,
        phase.compute_terms,
        optimizers,
        loss_weights=phase.loss_weights,
        **common,
    )
