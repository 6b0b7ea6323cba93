"""Checks of config values that span sections or depend on the stages run.

`ExperimentConfig.validate` runs `check_training_values` when a config is
loaded; `run_experiment` runs `check_stage_values` too (values that matter
only when training: an export or predict config may leave them unset).
Either way a bad value fails in one line before any data is read or any
model built.
"""

import dataclasses
import math

from tfiqa.errors import ConfigError


def check_training_values(config):
    """Values that would otherwise fail (or train nothing) after minutes."""
    from tfiqa.config import STAGES
    from tfiqa.data.readers import READERS
    from tfiqa.models.backbones import LEVELS

    if not config.trainer.stages:
        raise ConfigError(
            f"trainer.stages is empty: nothing to train; valid stages are "
            f"{list(STAGES)}. Received: []"
        )
    check_learning_rates_finite(config)
    for section in ("ranking", "meta", "finetune"):
        for field in dataclasses.fields(getattr(config, section)):
            value = getattr(getattr(config, section), field.name)
            key = f"{section}.{field.name}"
            if field.name.endswith("learning_rate") and value < 0:
                raise ConfigError(f"{key} must not be negative. Received: {value}")
            if field.name in ("learning_rate", "epochs") and value <= 0:
                raise ConfigError(f"{key} must be positive. Received: {value}")
    bad_levels = [lv for lv in config.model.levels if lv not in LEVELS]
    if bad_levels or not config.model.levels:
        raise ConfigError(
            f"model.levels must be a non-empty list of {', '.join(LEVELS)}. "
            f"Received: {config.model.levels}"
        )
    repeated = sorted(
        {lv for lv in config.model.levels if config.model.levels.count(lv) > 1}
    )
    if repeated:
        raise ConfigError(
            f"model.levels lists {', '.join(repeated)} more than once; each level "
            f"is pooled once. Received: {config.model.levels}"
        )
    if config.data.dataset not in READERS:
        raise ConfigError(
            f"data.dataset: {READERS.unknown_message(config.data.dataset)}"
        )
    if config.data.eval_crops < 1:
        raise ConfigError(
            f"data.eval_crops must be positive. Received: {config.data.eval_crops}"
        )


def check_learning_rates_finite(config):
    """Every `*learning_rate*` field of every section must be finite.

    A NaN or inf rate fails here, at load, not as a NaN loss at step 2.
    """
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        for field in dataclasses.fields(values):
            if "learning_rate" not in field.name:
                continue
            value = getattr(values, field.name)
            if not math.isfinite(value):
                raise ConfigError(
                    f"{section.name}.{field.name} must be a finite number. "
                    f"Received: {value}"
                )


def check_stage_values(config):
    """Values of the stages `trainer.stages` runs, before any work."""
    for stage in config.trainer.stages:
        if config.trainer.stages.count(stage) > 1:
            raise ConfigError(
                f"trainer.stages lists '{stage}' twice. "
                f"Received: {config.trainer.stages}"
            )
    ranking = config.ranking
    if "rank" in config.trainer.stages and (
        ranking.epochs < 1 or ranking.steps_per_epoch < 1
    ):
        raise ConfigError(
            "ranking.epochs and ranking.steps_per_epoch must be >= 1. Received: "
            f"epochs={ranking.epochs}, steps_per_epoch={ranking.steps_per_epoch}"
        )
    if "finetune" in config.trainer.stages and config.finetune.epochs < 1:
        raise ConfigError(
            f"finetune.epochs must be >= 1. Received: {config.finetune.epochs}"
        )
    if config.data.eval_mode not in ("crops", "full"):
        raise ConfigError(
            "data.eval_mode must be 'crops' or 'full'. "
            f"Received: {config.data.eval_mode!r}"
        )
    data, stages = config.data, config.trainer.stages
    generated = not data.pristine_dir and (
        "rank" in stages
        or ("meta" in stages and config.meta.task_source == "synthetic")
        or (data.dataset == "distorted" and not data.dataset_dir)
    )
    if generated and data.pristine_size < data.crop_size:
        # Before minutes of image generation, not after.
        raise ConfigError(
            f"data.crop_size {data.crop_size} is larger than the generated images "
            f"(data.pristine_size {data.pristine_size}). Received: "
            f"crop_size={data.crop_size}"
        )
    if "meta" in stages:
        check_meta_values(config.meta)


def check_meta_values(meta):
    """The meta section, for the meta stage and `tfiqa lodo`."""
    from tfiqa.data.episodes import LABELS

    for key in ("epochs", "steps_per_epoch", "support_size", "query_size"):
        if int(getattr(meta, key)) < 1:
            raise ConfigError(
                f"meta.{key} must be >= 1. Received: {key}={getattr(meta, key)}"
            )
    if int(meta.meta_batch_size) < 1:
        raise ConfigError(
            f"meta.meta_batch_size must be >= 1. Received: {meta.meta_batch_size}"
        )
    if meta.label not in LABELS:
        raise ConfigError(
            f"meta.label must be one of {list(LABELS)}. Received: {meta.label!r}"
        )
    if int(meta.val_steps) < 0:
        raise ConfigError(f"meta.val_steps must be >= 0. Received: {meta.val_steps}")
