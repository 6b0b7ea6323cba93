"""Tiny models and datasets for training-loop tests (no tfiqa.models needed)."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A safety net, not a speed check: a multi-replica worker on a loaded 2-core
# machine can take several minutes (each replica runs its own tf.function).
WORKER_TIMEOUT = 900


def run_script(script, timeout=WORKER_TIMEOUT):
    """Runs a Python file in a fresh process with the repository importable;
    returns the finished `subprocess.CompletedProcess` (text output)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def worker_strategy(strategy_name, logical_cpus=1):
    """The strategy of a worker process, after splitting the CPU into
    `logical_cpus` devices (only possible before TensorFlow initialises)."""
    import tensorflow as tf

    from tfiqa.config import RuntimeConfig
    from tfiqa.training.strategy import get_strategy

    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus
        )
    return get_strategy(RuntimeConfig(strategy=strategy_name))


def tiny_regressor(seed=0, features=8):
    """Dense regressor on (B, features) float inputs -> (B,) scores."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = keras.layers.Reshape(())(keras.layers.Dense(1)(x))
    return keras.Model(inputs, outputs)


def regression_data(n=64, features=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = rng.normal(size=(features,)).astype(np.float32)
    y = (x @ w / np.sqrt(features)).astype(np.float32)
    return x, y


def mse_terms_fn(model):
    from tfiqa.training.losses import mse_terms

    def compute_terms(batch, training):
        x, y = batch
        return {"loss": mse_terms(model(x, training=training), y)}

    return compute_terms


def regression_dataset(x, y, batch_size, seed=0):
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed)
        .batch(batch_size, drop_remainder=True)
        .repeat()
    )
