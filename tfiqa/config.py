"""Typed experiment configuration: defaults, YAML merge, overrides.

Every setting has a default here; YAML files in `configs/` state only what
differs. Merging is strict: an unknown key is an error that lists the valid
keys, and values are coerced to the field's type (YAML reads `1e-3` as a
string). `--set a.b=value` overrides are parsed as YAML, never evaluated.

Example:
```python
config = load_config("configs/resnet18_multilevel.yaml", ["finetune.epochs=3"])
save_config(config, "runs/exp1/config.yaml")
```
"""

import dataclasses
import os
from importlib import resources

import yaml

from tfiqa.config_checks import check_relations
from tfiqa.config_limits import check_keys
from tfiqa.config_merge import merge, parse_override, read_yaml
from tfiqa.errors import ConfigError
from tfiqa.files import write_text_atomic


@dataclasses.dataclass
class DataConfig:
    """Where images come from and how they are cut.

    Relative paths resolve against `root` (set by `--data-dir`).
    """

    root: str = ""
    # Target MOS dataset used by `finetune` and evaluation.
    dataset: str = "csv"
    dataset_dir: str = ""
    reader_options: dict = dataclasses.field(default_factory=dict)
    # Pristine images for ranking and synthetic meta-learning tasks; empty
    # means "generate a small built-in set" (the quickstart).
    pristine_dir: str = ""
    pristine_val_ratio: float = 0.2
    # Sub-folders of `pristine_dir` used as held-out validation sources
    # instead of a random `pristine_val_ratio` split (e.g. ["Kodak24"]).
    pristine_val_dirs: list = dataclasses.field(default_factory=list)
    # Size of the generated set when `pristine_dir` is empty.
    pristine_count: int = 24
    pristine_size: int = 128
    # With `dataset: distorted` and an empty `dataset_dir`, a pseudo-MOS set
    # is synthesised from the pristine images (MS-SSIM labels); empty types
    # means the ranking stage's types.
    synthetic_types: list = dataclasses.field(default_factory=list)
    synthetic_levels: list = dataclasses.field(default_factory=lambda: [1, 2, 3, 4, 5])
    crop_size: int = 224
    batch_size: int = 32
    val_ratio: float = 0.2
    test_ratio: float = 0.0
    split_file: str = ""
    num_splits: int = 10
    split_index: int = 0
    # Seed of the content splits; -1 uses trainer.seed. Fix it to compare
    # training seeds on the same splits.
    split_seed: int = -1
    skip_bad: bool = False
    # Inference: "crops" averages `eval_crops` deterministic crops, "full"
    # scores the whole image at its own resolution.
    eval_mode: str = "crops"
    eval_crops: int = 5


@dataclasses.dataclass
class ModelConfig:
    backbone: str = "resnet18"
    # "imagenet", "none", or a path to a local weights file.
    weights: str = "imagenet"
    # Backbone feature levels pooled by the head (P2 = stride 4 ... P5 = 32).
    levels: list = dataclasses.field(default_factory=lambda: ["P2", "P3", "P4", "P5"])
    pooling: list = dataclasses.field(default_factory=lambda: ["avg"])
    head_units: list = dataclasses.field(default_factory=lambda: [512])
    dropout: float = 0.25
    # "sigmoid" keeps scores in [0, 1] (the MOS scale), "linear" is unbounded.
    output_activation: str = "sigmoid"
    # Hidden layers of the head: "relu" or "prelu" (MetaIQA), BatchNorm or not.
    head_activation: str = "relu"
    batch_norm: bool = True
    # Standardise the pooled features before the head's MLP (a BatchNorm);
    # helps most with a frozen pretrained backbone.
    head_input_norm: bool = False
    # 0, or the short side every image is resized to (antialiased, aspect
    # kept) before its crops are cut, when scoring and in the feature cache:
    # photos of any resolution are then seen at the training scale.
    input_resize: int = 0


@dataclasses.dataclass
class RankingConfig:
    distortion_set: str = "kadid"
    types: list = dataclasses.field(default_factory=list)
    groups_per_batch: int = 4
    margin: float = 0.05
    # > 0: rank the head's logits (a linear output) with this margin in
    # logit units instead of the sigmoid scores with `margin`.
    logit_margin: float = 0.0
    epochs: int = 10
    steps_per_epoch: int = 200
    val_steps: int = 20
    learning_rate: float = 1e-4
    # Apply the distortion types that are pure TF ops inside the train step
    # (on the accelerator) instead of in the CPU input pipeline; JPEG and
    # JPEG2000 stay in the pipeline. Same images either way.
    device_distortions: bool = False
    # Backbone layers up to this level stay frozen while ranking ("none":
    # all train); see `finetune.freeze_backbone`.
    freeze_backbone: str = "none"


@dataclasses.dataclass
class MetaConfig:
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
    learning_rate: float = 1e-4
    # "second" (exact, nested tapes) or "first" (first-order MAML).
    order: str = "second"
    learn_inner_lr: bool = False
    epochs: int = 10
    steps_per_epoch: int = 100
    val_steps: int = 10
    # Inner-loop weights: "all", or "head" (only the head adapts; the
    # backbone is still meta-learned through it; much cheaper).
    adapt: str = "all"
    # Backbone layers up to this level are neither adapted nor meta-learned
    # ("none": all are); see `finetune.freeze_backbone`.
    freeze_backbone: str = "none"
    # Outer learning rate of the head and Meta-SGD rates; 0 = learning_rate.
    head_learning_rate: float = 0.0
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
    # Leave-one-distortion-out protocol (`tfiqa lodo`): labelled examples of
    # the held-out type used to adapt (0 = score the prior as is), the types
    # swept (empty = all task types) and test images per held-out type.
    lodo_shots: list = dataclasses.field(default_factory=lambda: [0, 10, 50])
    lodo_types: list = dataclasses.field(default_factory=list)
    lodo_test_size: int = 100


@dataclasses.dataclass
class FinetuneConfig:
    epochs: int = 30
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    loss: str = "mse"
    rank_weight: float = 0.0
    patience: int = 5
    # 0 means one pass over the training split per epoch.
    steps_per_epoch: int = 0
    # Transfer learning (tfiqa.training.transfer). Backbone layers up to this
    # level stay frozen: "none", "all" (only the head trains) or "P2".."P5".
    freeze_backbone: str = "none"
    # The first epochs train the head alone, the whole backbone frozen.
    warmup_epochs: int = 0
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
class TrainerConfig:
    stages: list = dataclasses.field(default_factory=lambda: ["rank", "finetune"])
    seed: int = 0
    # "auto": MirroredStrategy over all GPUs when there are any, otherwise
    # the default strategy; "multi_worker" reads TF_CONFIG.
    strategy: str = "auto"
    # false (float32), true (mixed_float16, for GPUs) or a Keras policy
    # name: "mixed_bfloat16" for CPUs with bf16 instructions (AVX512-BF16,
    # AMX) and TPUs.
    mixed_precision: bool | str = False
    # With more than one replica, BatchNorm layers normalise with the
    # statistics of the global batch (all-reduced across replicas and
    # workers) in the rank and finetune stages, so that every replica sees
    # the statistics one device would. The meta stage keeps per-task
    # statistics.
    sync_batchnorm: bool = True
    weight_decay: float = 0.0
    # 1 shows a progress bar per epoch on a terminal (one line per epoch in
    # a log or pipe), 0 prints only epoch summaries, -1 nothing.
    verbose: int = 1
    # Before each validation, re-estimate BatchNorm moving statistics from
    # this many training batches ("precise BN"); 0 keeps the running
    # averages, which lag far behind in short runs (MobileNetV3: 0.999).
    precise_bn_batches: int = 10
    # Weights to start from (a `.keras` model or `.weights.h5` of the same
    # architecture, e.g. another run's checkpoints/rank/final.weights.h5);
    # empty starts from `model.weights`.
    init_from: str = ""


@dataclasses.dataclass
class ExportConfig:
    name: str = "tfiqa"
    version: int = 1
    formats: list = dataclasses.field(default_factory=lambda: ["saved_model", "tflite"])
    quantize: list = dataclasses.field(
        default_factory=lambda: ["none", "dynamic", "int8"]
    )
    # A fixed input is one crop of the model's scoring policy: null (default)
    # or the model's crop size fixes H = W to it; 0 exports a dynamic size.
    input_size: int | None = None
    calibration_images: int = 100
    # Where models.config tells TF Serving the model lives (the TF Serving
    # Docker image mounts models under /models).
    serving_base_path: str = "/models"


@dataclasses.dataclass
class ExperimentConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    ranking: RankingConfig = dataclasses.field(default_factory=RankingConfig)
    meta: MetaConfig = dataclasses.field(default_factory=MetaConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def validate(self):
        """Checks every key's type and range, then the relations between
        keys, so the first error reported is the real mistake."""
        check_keys(self)
        check_relations(self)
        return self

    def resolve_path(self, path):
        """Resolves a data path against `data.root` unless it is absolute."""
        if not path or os.path.isabs(path) or not self.data.root:
            return path
        return os.path.join(self.data.root, path)


def builtin_config_path(name):
    """Path of a config shipped inside the package (e.g. "quickstart")."""
    return str(resources.files("tfiqa") / "configs" / f"{name}.yaml")


def load_config(path=None, overrides=(), base=None):
    """Builds an `ExperimentConfig` from defaults, a YAML file and overrides.

    Args:
        path: str or None. YAML file; `None` uses the defaults (or `base`).
        overrides: iterable of "a.b=value" strings, applied in order.
        base: `ExperimentConfig` to start from instead of the defaults.
    """
    config = base or ExperimentConfig()
    if path:
        content = read_yaml(path)  # its errors name the file already
        try:
            config = merge(config, content)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for text in overrides:
        config = merge(config, parse_override(text))
    return config.validate()


def config_to_dict(config):
    return dataclasses.asdict(config)


def save_config(config, path):
    """Writes the resolved config atomically (write, then rename)."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
