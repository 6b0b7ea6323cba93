"""The type and range of every config key, checked one key at a time.

`check_keys` runs before any check that relates two keys, so a config
reports its first real mistake (an unknown backbone, a ratio above 1)
rather than a consequence of it. Every size and count has an upper bound:
`data.pristine_size=1000000` is a typo, not a 14 TiB allocation to attempt.
A test walks the schema so that a new field cannot go without a rule.
"""

import dataclasses
import math

from tfiqa.errors import ConfigError

# Bounds shared by keys of the same kind.
MAX_IMAGE_SIDE = 4096
MAX_BATCH = 4096
MAX_EPOCHS = 100_000
MAX_STEPS = 10_000_000
MAX_COUNT = 1_000_000
MAX_LIST = 1_000
# Same bound as the `--crops` option of the scoring commands.
MAX_CROPS = 100
MAX_SEED = 2**31 - 1
# Learning rates, margins and weights beyond this are typos, not settings.
MAX_RATE = 1e3


@dataclasses.dataclass(frozen=True)
class Number:
    """An int (`integer=True`) or finite float in [low, high] (`open_low`,
    `open_high`: strictly inside); `zero` also allows 0, the "off" value of
    a key whose other values start higher."""

    low: float
    high: float
    integer: bool = True
    open_low: bool = False
    open_high: bool = False
    zero: bool = False

    def check(self, key, value):
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "an integer" if self.integer else "a number"
            raise ConfigError(f"{key} must be {kind}. Received: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number. Received: {value!r}")
        if self.zero and value == 0:
            return
        below = value <= self.low if self.open_low else value < self.low
        above = value >= self.high if self.open_high else value > self.high
        if below or above:
            low = f"> {self.low}" if self.open_low else f">= {self.low}"
            high = f"< {self.high}" if self.open_high else f"<= {self.high}"
            zero = "0 or " if self.zero else ""
            raise ConfigError(
                f"{key} must be {zero}{low} and {high}. Received: {value!r}"
            )


@dataclasses.dataclass(frozen=True)
class OneOf:
    """A name among `names()` (called when checked: registries load late)."""

    names: object

    def check(self, key, value):
        names = self.names()
        # Only str and int can be names (True == 1; a list is unhashable).
        if type(value) in (str, int) and value in names:
            return
        if hasattr(names, "unknown_message"):
            shown = (
                value if isinstance(value, str) and value.isprintable() else repr(value)
            )
            raise ConfigError(f"{key}: {names.unknown_message(shown)}")
        raise ConfigError(f"{key} must be one of {list(names)}. Received: {value!r}")


@dataclasses.dataclass(frozen=True)
class Text:
    def check(self, key, value):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string. Received: {value!r}")


@dataclasses.dataclass(frozen=True)
class Flag:
    def check(self, key, value):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false. Received: {value!r}")


@dataclasses.dataclass(frozen=True)
class Mapping:
    def check(self, key, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(
                f"{key} must be a mapping with string keys. Received: {value!r}"
            )


@dataclasses.dataclass(frozen=True)
class ListOf:
    """A list of at most `MAX_LIST` items, each passing `item`'s check."""

    item: object
    min_length: int = 0
    unique: bool = False

    def check(self, key, value):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list. Received: {value!r}")
        if not self.min_length <= len(value) <= MAX_LIST:
            raise ConfigError(
                f"{key} must list {self.min_length} to {MAX_LIST} items. "
                f"Received: {len(value)} items"
            )
        for item in value:
            self.item.check(key, item)
        if self.unique:
            repeated = sorted({str(v) for v in value if value.count(v) > 1})
            if repeated:
                raise ConfigError(
                    f"{key} lists {', '.join(repeated)} more than once. "
                    f"Received: {value!r}"
                )


@dataclasses.dataclass(frozen=True)
class Optional:
    """null, or a value passing `rule`."""

    rule: object

    def check(self, key, value):
        if value is not None:
            self.rule.check(key, value)


@dataclasses.dataclass(frozen=True)
class Precision:
    """`runtime.mixed_precision`: true, false or a dtype policy name."""

    def check(self, key, value):
        from tfiqa.training.strategy import precision_policy

        if not isinstance(value, (bool, str)):
            raise ConfigError(
                f"{key} must be true, false or a policy name. Received: {value!r}"
            )
        precision_policy(value)


def _stages():
    from tfiqa.training.stages import STAGES

    return STAGES


def _backbones():
    from tfiqa.models.backbones import BACKBONES

    return BACKBONES


def _levels():
    from tfiqa.models.backbones import LEVELS

    return LEVELS


def _poolings():
    from tfiqa.models.head import POOLINGS

    return POOLINGS


def _readers():
    from tfiqa.data.readers import READERS

    return READERS


def _distortions():
    from tfiqa.distortions.registry import DISTORTIONS

    return DISTORTIONS


def _distortion_sets():
    from tfiqa.distortions.registry import DISTORTION_SETS

    return tuple(DISTORTION_SETS)


def _distortion_levels():
    from tfiqa.distortions.registry import LEVELS

    return LEVELS


def _task_sources():
    return ("synthetic", *_readers().names())


def _labels():
    from tfiqa.data.episodes import LABELS

    return LABELS


def _losses():
    from tfiqa.training.finetune_trainer import LOSSES

    return LOSSES


def _strategies():
    from tfiqa.training.strategy import STRATEGIES

    return STRATEGIES


def _formats():
    from tfiqa.export import FORMATS

    return FORMATS


def _quantizations():
    from tfiqa.export.tflite import QUANTIZATIONS

    return QUANTIZATIONS


def _freeze_choices():
    from tfiqa.training.transfer import FREEZE_CHOICES

    return FREEZE_CHOICES


def _choices(*names):
    return lambda: names


FREEZE = OneOf(_freeze_choices)
# A fraction held out: all of the data would leave none to train on.
RATIO = Number(0, 1, integer=False, open_high=True)
RATE = Number(0, MAX_RATE, integer=False)
POSITIVE_RATE = Number(0, MAX_RATE, integer=False, open_low=True)
EPOCHS = Number(1, MAX_EPOCHS)
STEPS = Number(1, MAX_STEPS)
VAL_STEPS = Number(0, MAX_STEPS)
IMAGE_SIDE = Number(32, MAX_IMAGE_SIDE)
DISTORTION_TYPES = ListOf(OneOf(_distortions), unique=True)

RULES = {
    "data.root": Text(),
    "data.dataset": OneOf(_readers),
    "data.dataset_dir": Text(),
    "data.reader_options": Mapping(),
    "data.pristine_dir": Text(),
    "data.pristine_val_ratio": RATIO,
    "data.pristine_val_dirs": ListOf(Text()),
    "data.pristine_count": Number(1, 100_000),
    "data.pristine_size": IMAGE_SIDE,
    "data.synthetic_types": DISTORTION_TYPES,
    "data.synthetic_levels": ListOf(OneOf(_distortion_levels), unique=True),
    "data.crop_size": IMAGE_SIDE,
    "data.batch_size": Number(1, MAX_BATCH),
    "data.val_ratio": RATIO,
    "data.test_ratio": RATIO,
    "data.split_file": Text(),
    "data.num_splits": Number(1, MAX_LIST),
    "data.split_index": Number(0, MAX_LIST),
    "data.split_seed": Number(-1, MAX_SEED),
    "data.skip_bad": Flag(),
    "model.backbone": OneOf(_backbones),
    "model.weights": Text(),
    "model.levels": ListOf(OneOf(_levels), min_length=1, unique=True),
    "model.pooling": ListOf(OneOf(_poolings), min_length=1, unique=True),
    "model.head_units": ListOf(Number(1, 65_536)),
    "model.dropout": Number(0, 1, integer=False, open_high=True),
    "model.output_activation": OneOf(_choices("sigmoid", "linear")),
    "model.head_activation": OneOf(_choices("relu", "prelu")),
    "model.batch_norm": Flag(),
    "model.head_input_norm": Flag(),
    "model.scoring.mode": OneOf(_choices("crops", "full")),
    "model.scoring.crops": Number(1, MAX_CROPS),
    "model.scoring.resize": Number(32, 2 * MAX_IMAGE_SIDE, zero=True),
    "stages.rank.distortion_set": OneOf(_distortion_sets),
    "stages.rank.types": DISTORTION_TYPES,
    "stages.rank.groups_per_batch": Number(1, MAX_BATCH),
    "stages.rank.margin": RATE,
    "stages.rank.logit_margin": RATE,
    "stages.rank.schedule.epochs": EPOCHS,
    "stages.rank.schedule.steps_per_epoch": STEPS,
    "stages.rank.schedule.val_steps": VAL_STEPS,
    "stages.rank.optimizer.learning_rate": POSITIVE_RATE,
    "stages.rank.device_distortions": Flag(),
    "stages.rank.freeze_backbone": FREEZE,
    "stages.meta.task_source": OneOf(_task_sources),
    "stages.meta.distortion_set": OneOf(_distortion_sets),
    "stages.meta.types": DISTORTION_TYPES,
    "stages.meta.holdout": DISTORTION_TYPES,
    "stages.meta.label": OneOf(_labels),
    "stages.meta.support_size": Number(1, MAX_BATCH),
    "stages.meta.query_size": Number(1, MAX_BATCH),
    "stages.meta.meta_batch_size": Number(1, MAX_BATCH),
    "stages.meta.inner_steps": Number(0, 100),
    "stages.meta.inner_learning_rate": RATE,
    "stages.meta.optimizer.learning_rate": POSITIVE_RATE,
    "stages.meta.order": OneOf(_choices("first", "second")),
    "stages.meta.learn_inner_lr": Flag(),
    "stages.meta.schedule.epochs": EPOCHS,
    "stages.meta.schedule.steps_per_epoch": STEPS,
    "stages.meta.schedule.val_steps": VAL_STEPS,
    "stages.meta.adapt": OneOf(_choices("all", "head")),
    "stages.meta.freeze_backbone": FREEZE,
    "stages.meta.optimizer.head_learning_rate": RATE,
    "stages.meta.val_query_size": Number(0, MAX_BATCH),
    "stages.meta.batchnorm": OneOf(_choices("batch", "moving")),
    "stages.meta.bn_recalibration_batches": Number(0, 10_000),
    "stages.meta.task_dir": Text(),
    "stages.meta.task_reader_options": Mapping(),
    "stages.meta.val_ratio": RATIO,
    "protocols.lodo.shots": ListOf(Number(0, MAX_COUNT), min_length=1),
    "protocols.lodo.types": DISTORTION_TYPES,
    "protocols.lodo.test_size": Number(1, MAX_COUNT),
    "stages.finetune.schedule.epochs": EPOCHS,
    "stages.finetune.optimizer.learning_rate": POSITIVE_RATE,
    "stages.finetune.optimizer.head_learning_rate": RATE,
    "stages.finetune.loss": OneOf(_losses),
    "stages.finetune.rank_weight": RATE,
    "stages.finetune.schedule.patience": Number(0, MAX_EPOCHS),
    "stages.finetune.schedule.steps_per_epoch": VAL_STEPS,
    "stages.finetune.freeze_backbone": FREEZE,
    "stages.finetune.schedule.warmup_epochs": Number(0, MAX_EPOCHS),
    "stages.finetune.cache_views": Number(0, MAX_CROPS),
    "stages.finetune.cache_dir": Text(),
    "stages.finetune.reinit_score": Flag(),
    "stages.order": ListOf(OneOf(_stages), min_length=1, unique=True),
    "runtime.seed": Number(0, MAX_SEED),
    "runtime.strategy": OneOf(_strategies),
    "runtime.mixed_precision": Precision(),
    "runtime.sync_batchnorm": Flag(),
    "runtime.weight_decay": RATE,
    # -1 also hides the epoch lines.
    "runtime.verbose": Number(-1, 2),
    "runtime.precise_bn_batches": Number(0, 10_000),
    "runtime.init_from": Text(),
    "export.name": Text(),
    "export.version": Number(1, MAX_SEED),
    "export.formats": ListOf(OneOf(_formats), min_length=1, unique=True),
    "export.quantize": ListOf(OneOf(_quantizations), unique=True),
    "export.input_size": Optional(Number(32, MAX_IMAGE_SIDE, zero=True)),
    "export.calibration_images": Number(1, 100_000),
    "export.serving_base_path": Text(),
}


def leaf_fields(values, section=""):
    """`(dotted key, dataclass field, value)` of every key in `values` (a
    config or one of its sections named `section`), sub-sections walked."""
    for field in dataclasses.fields(values):
        key = f"{section}.{field.name}" if section else field.name
        value = getattr(values, field.name)
        if dataclasses.is_dataclass(value):
            yield from leaf_fields(value, key)
        else:
            yield key, field, value


def check_section(values, section):
    """Checks every key of one section's values (e.g. `config.stages.meta`,
    "stages.meta"), and of its sub-sections, against `RULES`."""
    for key, _, value in leaf_fields(values, section):
        RULES[key].check(key, value)


def check_keys(config):
    """Checks every key of `config`, in the schema's order; the first bad
    key raises `ConfigError` naming it."""
    check_section(config, "")
