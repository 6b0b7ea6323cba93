"""The `stages` section of the experiment config: the order and one
sub-section per training stage, each with a `schedule` and an `optimizer`.

The three stages share the `Schedule` and `Optimizer` dataclasses. A key a
stage does not read is absent from its dataclass rather than present and
ignored (every field is read by some code, and a typo such as
`stages.rank.schedule.patience` fails on load): the shared base holds what
every stage has, and a small subclass adds what only some read
(`val_steps`: rank and meta; `patience`, `warmup_epochs`: finetune;
`head_learning_rate`: meta and finetune). Defaults differ per stage, so each
stage section builds its own instances.
"""

import dataclasses


@dataclasses.dataclass
class Schedule:
    """How long a stage trains."""

    epochs: int = 10
    # finetune: 0 means one pass over the training split per epoch.
    steps_per_epoch: int = 100


@dataclasses.dataclass
class EpisodeSchedule(Schedule):
    """A schedule with a fixed number of validation batches (rank, meta)."""

    val_steps: int = 10


@dataclasses.dataclass
class FinetuneSchedule(Schedule):
    # Epochs without a better validation SRCC before stopping.
    patience: int = 5
    # The first epochs train the head alone, the whole backbone frozen.
    warmup_epochs: int = 0


@dataclasses.dataclass
class Optimizer:
    learning_rate: float = 1e-4


@dataclasses.dataclass
class HeadOptimizer(Optimizer):
    """An optimizer with its own rate for the head."""

    # meta: 0 = learning_rate (also the Meta-SGD rates' outer rate).
    head_learning_rate: float = 0.0


@dataclasses.dataclass
class RankStage:
    schedule: EpisodeSchedule = dataclasses.field(
        default_factory=lambda: EpisodeSchedule(
            epochs=10, steps_per_epoch=200, val_steps=20
        )
    )
    optimizer: Optimizer = dataclasses.field(default_factory=Optimizer)
    # Backbone layers up to this level stay frozen while ranking ("none":
    # all train); see `stages.finetune.freeze_backbone`.
    freeze_backbone: str = "none"
    distortion_set: str = "kadid"
    types: list = dataclasses.field(default_factory=list)
    groups_per_batch: int = 4
    margin: float = 0.05
    # > 0: rank the head's logits (a linear output) with this margin in
    # logit units instead of the sigmoid scores with `margin`.
    logit_margin: float = 0.0
    # Apply the distortion types that are pure TF ops inside the train step
    # (on the accelerator) instead of in the CPU input pipeline; JPEG and
    # JPEG2000 stay in the pipeline. Same images either way.
    device_distortions: bool = False


# The `stages.meta` keys that are `MAMLStep` arguments of the same name.
MAML_STEP_OPTIONS = (
    "inner_steps",
    "inner_learning_rate",
    "order",
    "learn_inner_lr",
    "batchnorm",
)


@dataclasses.dataclass
class MetaStage:
    schedule: EpisodeSchedule = dataclasses.field(
        default_factory=lambda: EpisodeSchedule(
            epochs=10, steps_per_epoch=100, val_steps=10
        )
    )
    optimizer: HeadOptimizer = dataclasses.field(default_factory=HeadOptimizer)
    # Backbone layers up to this level are neither adapted nor meta-learned
    # ("none": all are); see `stages.finetune.freeze_backbone`.
    freeze_backbone: str = "none"
    # "synthetic" (distortion engine on pristine images) or a reader kind
    # with real MOS and distortion labels ("tid2013", "kadid10k").
    task_source: str = "synthetic"
    distortion_set: str = "kadid"
    types: list = dataclasses.field(default_factory=list)
    holdout: list = dataclasses.field(default_factory=list)
    # "pseudo_mos" (full-reference MS-SSIM) or "level".
    label: str = "pseudo_mos"
    support_size: int = 16
    query_size: int = 4
    meta_batch_size: int = 4
    inner_steps: int = 1
    inner_learning_rate: float = 1e-3
    # "second" (exact, nested tapes) or "first" (first-order MAML).
    order: str = "second"
    learn_inner_lr: bool = False
    # Inner-loop weights: "all", or "head" (only the head adapts; the
    # backbone is still meta-learned through it; much cheaper).
    adapt: str = "all"
    # Query images per validation task (0 = query_size); more = steadier SRCC.
    val_query_size: int = 0
    # BatchNorm statistics inside a meta-step: "batch" (the meta-batch's,
    # under the meta-parameters, frozen through the inner loop) or "moving".
    batchnorm: str = "batch"
    # Batches of task images used to re-estimate BatchNorm statistics for
    # the meta-parameters before training and after each epoch (0 = never).
    bn_recalibration_batches: int = 4
    # Real-MOS task sources: dataset folder (relative to data.root), reader
    # options, and the fraction of reference contents held out for validation.
    task_dir: str = ""
    task_reader_options: dict = dataclasses.field(default_factory=dict)
    val_ratio: float = 0.2

    def step_options(self):
        """The inner loop as `tfiqa.training.maml.MAMLStep` takes it."""
        return {name: getattr(self, name) for name in MAML_STEP_OPTIONS}


@dataclasses.dataclass
class FinetuneStage:
    schedule: FinetuneSchedule = dataclasses.field(
        default_factory=lambda: FinetuneSchedule(epochs=30, steps_per_epoch=0)
    )
    optimizer: HeadOptimizer = dataclasses.field(
        default_factory=lambda: HeadOptimizer(head_learning_rate=1e-3)
    )
    # Transfer learning (tfiqa.training.transfer). Backbone layers up to this
    # level stay frozen: "none", "all" (only the head trains) or "P2".."P5".
    freeze_backbone: str = "none"
    loss: str = "mse"
    rank_weight: float = 0.0
    # While the whole backbone is frozen, train the head on the cached pooled
    # features of this many fixed crops per training image (computed once,
    # no backbone pass per step); 0 computes features from random crops.
    cache_views: int = 0
    # Folder of cached features (empty: <workdir>/cache/features); runs
    # whose backbone weights are the same can share one.
    cache_dir: str = ""
    # Re-initialise the score layer (the head's last Dense) when the stage
    # starts, as RankIQA does: a prior's score layer may sit deep in the
    # sigmoid's saturation after ranking.
    reinit_score: bool = False


@dataclasses.dataclass
class StagesConfig:
    # The stages `tfiqa train` runs, in order.
    order: list = dataclasses.field(default_factory=lambda: ["rank", "finetune"])
    rank: RankStage = dataclasses.field(default_factory=RankStage)
    meta: MetaStage = dataclasses.field(default_factory=MetaStage)
    finetune: FinetuneStage = dataclasses.field(default_factory=FinetuneStage)
