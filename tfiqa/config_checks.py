"""Checks of config values that relate keys or depend on the stages run.

`ExperimentConfig.validate` checks each key alone (`tfiqa.config_limits`)
and then `check_relations`; `run_experiment` runs `check_stage_values` too
(values that matter only when training: an export or predict config may
leave them unset). Either way a bad value fails in one line before any data
is read or any model built.
"""

from tfiqa.errors import ConfigError


def check_relations(config):
    """Relations between keys that are each valid alone."""
    data = config.data
    if data.val_ratio + data.test_ratio >= 1:
        raise ConfigError(
            "data.val_ratio + data.test_ratio must be below 1 (the rest trains). "
            f"Received: val_ratio={data.val_ratio}, test_ratio={data.test_ratio}"
        )


def check_stage_values(config):
    """Values of the stages `stages.order` runs, before any work: each
    stage's `StageSpec.validate`.

    Runs after `ExperimentConfig.validate`: each key is already valid alone.
    """
    from tfiqa.training.stages import STAGES, shared_data

    data, stages = config.data, config.stages.order
    generated = not data.pristine_dir and "pristine" in shared_data(config, stages)
    if generated and data.pristine_size < data.crop_size:
        # Before minutes of image generation, not after.
        raise ConfigError(
            f"data.crop_size {data.crop_size} is larger than the generated images "
            f"(data.pristine_size {data.pristine_size}). Received: "
            f"crop_size={data.crop_size}"
        )
    for stage in stages:
        STAGES.get(stage).validate(config)
