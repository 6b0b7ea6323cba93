"""What a training stage is: one `StageSpec`, registered by name in `STAGES`.

A spec names the stage, the config section it reads, the offset of its data
seeds and the functions that make it: its data, its trainer, the fits the
shared loop runs (`Phase`), its config checks and its result. Everything
the stages have in common (optimizers, the distributed loop, checkpoints,
resume, fitting) is `tfiqa.training.stage_runner.run_stage`; the run's
order, resume and `metrics.json` are `tfiqa.training.experiment`. The
config's valid `stages.order`, the seeds recorded in `metrics.json` and
the checks before a run all read this registry, so a new stage is one
module that calls `register_stage`.

This module imports no TensorFlow: config validation reads the registry.

Example:
```python
register_stage(
    StageSpec(
        name="distill",
        section="stages.finetune",
        seed_offset=4,
        build_data=lambda ctx: load_teacher_scores(ctx),
        build_trainer=lambda ctx, data: DistillTrainer(ctx.model),
        phases=lambda ctx, run: [Phase(...)],
        summarize=lambda ctx, run: {"val": ...},
    )
)
```
"""

import dataclasses
import typing

from tfiqa.registry import Registry

STAGES = Registry("training stage")


@dataclasses.dataclass
class Phase:
    """One fit of a stage, as `run_stage` runs it on the shared loop.

    Args:
        dataset_fn: callable `epoch -> tf.data.Dataset` of global batches.
        epochs: int. Total epochs, counted across the stage's phases.
        steps_per_epoch: int.
        optimizers: list of `(name, learning_rate, variables)`: one optimizer
            each, made by `run_stage` in the strategy scope.
        compute_terms: callable `(batch, training) -> {name: (sum, count)}`
            (see `tfiqa.training.loop.DistributedLoop`).
        step_trainer: instead of `compute_terms`, a trainer that runs whole
            replica steps (`replica_step(batch, optimizer_groups)`) and
            checkpoints its `state`, such as `MetaTrainer`.
        loss_weights: dict `{term: weight}` or None (the term "loss").
        validate: callable `epoch -> dict` or None.
        on_epoch_end: callable `(epoch, logs) -> bool` or None.
        name: str or None. None is the stage's own fit; a name (e.g.
            "warmup") is a phase with its own checkpoints before it.
        start_epoch: int. Epoch a phase starts at when it has no checkpoint
            (the epochs of the phases before it).
    """

    dataset_fn: typing.Callable
    epochs: int
    steps_per_epoch: int
    optimizers: list
    compute_terms: typing.Callable | None = None
    step_trainer: object = None
    loss_weights: dict | None = None
    validate: typing.Callable | None = None
    on_epoch_end: typing.Callable | None = None
    name: str | None = None
    start_epoch: int = 0


@dataclasses.dataclass
class StageRun:
    """What a stage made while `run_stage` ran it, for its `summarize`.

    Attributes:
        data: what `build_data` returned.
        trainer: what `build_trainer` returned.
        fits: dict `{phase name (the stage's name for its own fit): result
            of DistributedLoop.fit}`, in order.
        started: float, `time.time()` when the stage started.
    """

    data: object
    trainer: object
    fits: dict = dataclasses.field(default_factory=dict)
    started: float = 0.0


def _no_check(config):
    return None


def _no_shared_data(config):
    return ()


def _one_seed_record(spec, seed):
    return {f"{spec.name}_data": [stage_seed(seed, spec.name, 0), "+ epoch"]}


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One training stage.

    Args:
        name: str. What `stages.order` lists; names the stage's folders
            (`checkpoints/<name>`, `logs/<name>`, `splits/<name>.json`).
        section: str or None. The dotted config section the stage reads
            (e.g. "stages.rank"); with
            `freeze_backbone`, its `freeze_backbone` key holds the backbone
            layers frozen while the stage runs.
        seed_offset: int. Tells its data seeds apart from other stages'
            (`stage_seed`); never change it, recorded seeds depend on it.
        build_data: callable `ctx -> data`, run first.
        build_trainer: callable `(ctx, data) -> trainer`.
        phases: callable `(ctx, run) -> iterable of Phase`; a generator may
            change the model between phases (e.g. unfreeze the backbone).
        summarize: callable `(ctx, run) -> dict`, the stage's result in
            `metrics.json["stages"][name]` (validation metrics under "val").
        shared_data: callable `config -> tuple` of the run's shared data the
            stage reads, prepared before the first stage: "pristine" (the
            pristine source split, `ctx.pristine`) and "mos" (the
            fine-tuning MOS split, `ctx.mos_splits`).
        write_split: callable `ctx -> None` or None. Writes
            `splits/<name>.json` (`tfiqa.data.split_record`) once the shared
            data is prepared, on the chief; a stage whose content is known
            only when it runs writes it from `build_data` instead.
        validate: callable `config -> None` that raises `ConfigError` for
            values this stage cannot run with, before any work.
        seeds: callable `(spec, seed) -> dict` of the seeds the stage
            draws, recorded in `metrics.json["seeds"]`.
        freeze_backbone: bool. Hold the backbone frozen up to
            `<section>.freeze_backbone` while the stage runs.
        sync_batchnorm: bool. Whether BatchNorm may use global-batch
            statistics across replicas in this stage (with
            `runtime.sync_batchnorm` and several replicas).
    """

    name: str
    section: str | None
    seed_offset: int
    build_data: typing.Callable
    build_trainer: typing.Callable
    phases: typing.Callable
    summarize: typing.Callable
    shared_data: typing.Callable = _no_shared_data
    write_split: typing.Callable | None = None
    validate: typing.Callable = _no_check
    seeds: typing.Callable = _one_seed_record
    freeze_backbone: bool = False
    sync_batchnorm: bool = True

    def config_section(self, config):
        if not self.section:
            return None
        for name in self.section.split("."):
            config = getattr(config, name)
        return config


def register_stage(spec):
    """Registers a `StageSpec` under its name; returns it."""
    taken = {s.seed_offset: n for n, s in STAGES.items()}
    if spec.seed_offset in taken:
        raise ValueError(
            f"Stage '{spec.name}' would draw the same data seeds as stage "
            f"'{taken[spec.seed_offset]}'. Received: seed_offset={spec.seed_offset}"
        )
    return STAGES.register(spec.name, spec)


def shared_data(config, stages):
    """The shared data ("pristine", "mos") that the stages `stages` read."""
    return {need for stage in stages for need in STAGES.get(stage).shared_data(config)}


def split_seed(config, seed):
    """The seed of the fine-tuning content splits (`data.split_seed` or the run's)."""
    return seed if int(config.data.split_seed) < 0 else int(config.data.split_seed)


def stage_seed(seed, stage, epoch):
    """Seed of a stage's training data in `epoch` (recorded in metrics.json)."""
    offset = STAGES.get(stage).seed_offset
    return int(seed) * 100_003 + offset * 10_007 + int(epoch)
