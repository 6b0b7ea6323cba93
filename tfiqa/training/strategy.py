"""Choosing a `tf.distribute` strategy and the mixed-precision policy.

- "auto": `MirroredStrategy` over all visible GPUs when there are any,
  otherwise the default (single-device) strategy.
- "mirrored": `MirroredStrategy` over all visible devices of one machine
  (GPUs, or every logical CPU device when there is no GPU).
- "multi_worker": `MultiWorkerMirroredStrategy`; the cluster comes from the
  `TF_CONFIG` environment variable.
- "default": the single-device default strategy.

Batch sizes in the config are global: each of R replicas gets 1/R of it.

Example:
```python
strategy = get_strategy(config.runtime)
with strategy.scope():
    model = build_model(config.model)
```
"""

import json
import os

from tfiqa.errors import ConfigError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def get_strategy(trainer_config):
    """Returns the `tf.distribute.Strategy` named by `trainer_config.strategy`."""
    import tensorflow as tf

    name = trainer_config.strategy
    if name not in STRATEGIES:
        raise ConfigError(
            f"runtime.strategy must be one of {list(STRATEGIES)}. Received: {name!r}"
        )
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "runtime.strategy=multi_worker needs the TF_CONFIG environment "
                "variable describing the cluster. Received: TF_CONFIG unset"
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise ConfigError(
                "TF_CONFIG is not valid JSON. Received: "
                f"{os.environ['TF_CONFIG'][:200]!r}"
            ) from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices=cpus,
            cross_device_ops=tf.distribute.ReductionToOneDevice(),
        )
    if name == "auto" and gpus:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """True on the worker that writes outputs (always True off multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_id(strategy):
    """ "chief" or "<task_type>_<task_id>" for per-worker scratch folders."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return "chief"
    return f"{resolver.task_type}_{resolver.task_id}"


def synchronize_batchnorm(model, enabled):
    """Makes every BatchNormalization layer of `model` compute its batch
    statistics over all replicas (`enabled`) or per replica; returns the
    number of layers. Takes effect in steps traced afterwards."""
    from tfiqa.training.batchnorm import batchnorm_layers

    layers = batchnorm_layers(model)
    for layer in layers:
        layer.synchronized = bool(enabled)
    return len(layers)


POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def precision_policy(value):
    """The Keras dtype policy named by `runtime.mixed_precision`: false ->
    "float32", true -> "mixed_float16" (GPUs), or a policy name
    ("mixed_bfloat16" for CPUs with bf16 instructions and TPUs)."""
    if value is None or value is False or value == "false":
        return "float32"
    if value is True or value == "true":
        return "mixed_float16"
    if value not in POLICIES:
        raise ConfigError(
            "runtime.mixed_precision must be true, false or one of "
            f"{list(POLICIES)}. Received: {value!r}"
        )
    return value


def set_mixed_precision(value):
    """Sets the Keras global dtype policy (see `precision_policy`).

    Returns the policy name. Models must be built after this call.
    """
    import keras

    policy = precision_policy(value)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def worker_write_root(strategy, workdir):
    """Where this worker writes: the workdir on the chief, a scratch folder
    elsewhere, so that workers never overwrite the chief's files."""
    if is_chief(strategy):
        return workdir
    return os.path.join(workdir, "workers", worker_id(strategy))
