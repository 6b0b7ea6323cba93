"""Typed experiment configuration: defaults, YAML merge, overrides.

Every setting has a default here; YAML files in `configs/` state only what
differs. Sections by role: `data`, `model` (with its `scoring` policy),
`stages` (order, then `rank`, `meta`, `finetune`, each with a `schedule` and
an `optimizer`), `runtime`, `protocols` and `export`. Keys of the layout
before (`finetune.epochs`, `trainer.seed`, ...) still load: each is moved
to its new place with a `DeprecationWarning` (`tfiqa.config_migration`).

Merging is strict: an unknown key is an error that lists the valid keys,
and values are coerced to the field's type (YAML reads `1e-3` as a
string). `--set a.b=value` overrides are parsed as YAML, never evaluated.

Example:
```python
config = load_config(
    "configs/resnet18_multilevel.yaml", ["stages.finetune.schedule.epochs=3"]
)
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
from tfiqa.config_migration import migrate
from tfiqa.config_stages import StagesConfig
from tfiqa.errors import ConfigError
from tfiqa.files import write_text_atomic
from tfiqa.scoring_policy import ScoringPolicy


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
    # Seed of the content splits; -1 uses runtime.seed. Fix it to compare
    # training seeds on the same splits.
    split_seed: int = -1
    skip_bad: bool = False


@dataclasses.dataclass
class ScoringConfig:
    """How a photo is scored: the config side of the model's
    `tfiqa.scoring_policy.ScoringPolicy` (`policy` builds it)."""

    # "crops" averages `crops` deterministic crops, "full" scores the whole
    # image at its own resolution (evaluation of the test split).
    mode: str = "crops"
    crops: int = 5
    # 0, or the short side every image is resized to (antialiased, aspect
    # kept) before its crops are cut, when scoring and in the feature cache:
    # photos of any resolution are then seen at the training scale.
    resize: int = 0

    def policy(self, crop_size):
        """The model's `ScoringPolicy`: this section with `data.crop_size`."""
        return ScoringPolicy(crop_size=crop_size, crops=self.crops, resize=self.resize)


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
    scoring: ScoringConfig = dataclasses.field(default_factory=ScoringConfig)


@dataclasses.dataclass
class RuntimeConfig:
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
class LODOConfig:
    """Leave-one-distortion-out protocol (`tfiqa lodo`)."""

    # Labelled examples of the held-out type used to adapt (0 = score the
    # prior as is).
    shots: list = dataclasses.field(default_factory=lambda: [0, 10, 50])
    # Types swept (empty = all of `stages.meta.types`).
    types: list = dataclasses.field(default_factory=list)
    # Test images per held-out type.
    test_size: int = 100


@dataclasses.dataclass
class ProtocolsConfig:
    lodo: LODOConfig = dataclasses.field(default_factory=LODOConfig)


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
    stages: StagesConfig = dataclasses.field(default_factory=StagesConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    protocols: ProtocolsConfig = dataclasses.field(default_factory=ProtocolsConfig)
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
            config = merge(config, migrate(content))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for text in overrides:
        config = merge(config, migrate(parse_override(text)))
    return config.validate()


def config_to_dict(config):
    return dataclasses.asdict(config)


def save_config(config, path):
    """Writes the resolved config atomically (write, then rename)."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
