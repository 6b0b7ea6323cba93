"""Config keys of the layout before sections by role, and where they moved.

`MOVES` is the one table of old dotted keys and their new ones; `migrate`
rewrites a YAML mapping (a config file, a `--set` override, a work dir's
saved `config.yaml`) from the old layout to the new, with one
`ConfigDeprecationWarning` (a `DeprecationWarning`) per old key that names
the new key. A mapping giving both an old key and its new key is an error
naming both: which one should win is not clear.

Example:
```python
migrate({"finetune": {"epochs": 3}})
# DeprecationWarning: finetune.epochs is deprecated: use
# stages.finetune.schedule.epochs
# -> {"stages": {"finetune": {"schedule": {"epochs": 3}}}}
```
"""

import warnings

from tfiqa.errors import ConfigDeprecationWarning, ConfigError

MOVES = {
    "data.eval_mode": "model.scoring.mode",
    "data.eval_crops": "model.scoring.crops",
    "model.input_resize": "model.scoring.resize",
    "ranking.distortion_set": "stages.rank.distortion_set",
    "ranking.types": "stages.rank.types",
    "ranking.groups_per_batch": "stages.rank.groups_per_batch",
    "ranking.margin": "stages.rank.margin",
    "ranking.logit_margin": "stages.rank.logit_margin",
    "ranking.epochs": "stages.rank.schedule.epochs",
    "ranking.steps_per_epoch": "stages.rank.schedule.steps_per_epoch",
    "ranking.val_steps": "stages.rank.schedule.val_steps",
    "ranking.learning_rate": "stages.rank.optimizer.learning_rate",
    "ranking.device_distortions": "stages.rank.device_distortions",
    "ranking.freeze_backbone": "stages.rank.freeze_backbone",
    "meta.task_source": "stages.meta.task_source",
    "meta.distortion_set": "stages.meta.distortion_set",
    "meta.types": "stages.meta.types",
    "meta.holdout": "stages.meta.holdout",
    "meta.label": "stages.meta.label",
    "meta.support_size": "stages.meta.support_size",
    "meta.query_size": "stages.meta.query_size",
    "meta.meta_batch_size": "stages.meta.meta_batch_size",
    "meta.inner_steps": "stages.meta.inner_steps",
    "meta.inner_learning_rate": "stages.meta.inner_learning_rate",
    "meta.learning_rate": "stages.meta.optimizer.learning_rate",
    "meta.order": "stages.meta.order",
    "meta.learn_inner_lr": "stages.meta.learn_inner_lr",
    "meta.epochs": "stages.meta.schedule.epochs",
    "meta.steps_per_epoch": "stages.meta.schedule.steps_per_epoch",
    "meta.val_steps": "stages.meta.schedule.val_steps",
    "meta.adapt": "stages.meta.adapt",
    "meta.freeze_backbone": "stages.meta.freeze_backbone",
    "meta.head_learning_rate": "stages.meta.optimizer.head_learning_rate",
    "meta.val_query_size": "stages.meta.val_query_size",
    "meta.batchnorm": "stages.meta.batchnorm",
    "meta.bn_recalibration_batches": "stages.meta.bn_recalibration_batches",
    "meta.task_dir": "stages.meta.task_dir",
    "meta.task_reader_options": "stages.meta.task_reader_options",
    "meta.val_ratio": "stages.meta.val_ratio",
    "meta.lodo_shots": "protocols.lodo.shots",
    "meta.lodo_types": "protocols.lodo.types",
    "meta.lodo_test_size": "protocols.lodo.test_size",
    "finetune.epochs": "stages.finetune.schedule.epochs",
    "finetune.learning_rate": "stages.finetune.optimizer.learning_rate",
    "finetune.head_learning_rate": "stages.finetune.optimizer.head_learning_rate",
    "finetune.loss": "stages.finetune.loss",
    "finetune.rank_weight": "stages.finetune.rank_weight",
    "finetune.patience": "stages.finetune.schedule.patience",
    "finetune.steps_per_epoch": "stages.finetune.schedule.steps_per_epoch",
    "finetune.freeze_backbone": "stages.finetune.freeze_backbone",
    "finetune.warmup_epochs": "stages.finetune.schedule.warmup_epochs",
    "finetune.cache_views": "stages.finetune.cache_views",
    "finetune.cache_dir": "stages.finetune.cache_dir",
    "finetune.reinit_score": "stages.finetune.reinit_score",
    "trainer.stages": "stages.order",
    "trainer.seed": "runtime.seed",
    "trainer.strategy": "runtime.strategy",
    "trainer.mixed_precision": "runtime.mixed_precision",
    "trainer.sync_batchnorm": "runtime.sync_batchnorm",
    "trainer.weight_decay": "runtime.weight_decay",
    "trainer.verbose": "runtime.verbose",
    "trainer.precise_bn_batches": "runtime.precise_bn_batches",
    "trainer.init_from": "runtime.init_from",
}

# Old sections that moved as a whole; any other key in them is unknown.
OLD_SECTIONS = ("ranking", "meta", "finetune", "trainer")


def migrate(content, stacklevel=3):
    """`content` (a nested dict) in the current layout; warns once per old
    key. `stacklevel` points the warning at the caller of `load_config`."""
    if not isinstance(content, dict):
        return content  # `merge` reports it
    content = {k: dict(v) if isinstance(v, dict) else v for k, v in content.items()}
    for old, new in MOVES.items():
        section, key = old.split(".")
        values = content.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        _place(content, new, values.pop(key), old)
        warnings.warn(
            f"{old} is deprecated: use {new}",
            ConfigDeprecationWarning,
            stacklevel=stacklevel,
        )
    for section in OLD_SECTIONS:
        if section not in content:
            continue
        values = content.pop(section)
        if not isinstance(values, dict):
            raise ConfigError(
                f"{section} must be a mapping of keys to values. Received: {values!r}"
            )
        if values:
            valid = [o.split(".")[1] for o in MOVES if o.startswith(f"{section}.")]
            raise ConfigError(
                f"Unknown config key '{section}.{next(iter(values))}'. Valid keys "
                f"here: {', '.join(valid)} (deprecated: see tfiqa.config_migration)."
            )
    return content


def _place(content, new, value, old):
    """Sets dotted key `new` in `content` to `value`, unless it is set."""
    *sections, key = new.split(".")
    node = content
    for i, name in enumerate(sections):
        child = node.get(name, {})
        if not isinstance(child, dict):
            where = ".".join(sections[: i + 1])
            raise ConfigError(
                f"{where} must be a mapping of keys to values. Received: {child!r}"
            )
        node[name] = child = dict(child)
        node = child
    if key in node:
        raise ConfigError(
            f"{old} and {new} are the same setting (the old and the new name); "
            f"give only {new}. Received: {old}={value!r}, {new}={node[key]!r}"
        )
    node[key] = value
