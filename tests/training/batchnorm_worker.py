"""Subprocess entry point for the synchronized BatchNorm tests.

Trains a Dense -> BatchNorm -> Dense regressor for a few steps with
`DistributedLoop` on batches whose two halves (one per replica under two
logical CPUs) have different statistics, and saves the weights and the
BatchNorm moving statistics. Logical devices must be set before TensorFlow
initialises, hence a separate process per configuration.

Usage: python batchnorm_worker.py STRATEGY SYNC OUT.npz [LOGICAL_CPUS]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def split_batches(batch_size=16, features=8, steps=3, seed=0):
    """Batches whose first half is centred at -2 and second half at +3,
    each half with its own spread: per-half statistics differ from the
    batch's."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    half = batch_size // 2
    xs, ys = [], []
    for _ in range(steps):
        a = rng.normal(-2.0, 0.5, (half, features))
        b = rng.normal(3.0, 2.0, (half, features))
        x = np.concatenate([a, b]).astype("float32")
        xs.append(x)
        ys.append(x.mean(axis=1).astype("float32"))
    return tf.data.Dataset.from_tensor_slices(
        (np.concatenate(xs), np.concatenate(ys))
    ).batch(batch_size, drop_remainder=True)


def main():
    strategy_name, sync, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    logical_cpus = int(sys.argv[4]) if len(sys.argv) > 4 else 1

    import helpers

    strategy = helpers.worker_strategy(strategy_name, logical_cpus)

    import keras
    import numpy as np

    from tfiqa.training.batchnorm import batchnorm_layers
    from tfiqa.training.loop import DistributedLoop, make_optimizer
    from tfiqa.training.losses import mse_terms
    from tfiqa.training.strategy import synchronize_batchnorm

    with strategy.scope():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((8,))
        # No bias before BatchNorm: its gradient is zero up to rounding, which
        # Adam would blow up into steps of noise.
        x = keras.layers.Dense(8, use_bias=False)(inputs)
        x = keras.layers.BatchNormalization(momentum=0.5)(x)
        x = keras.layers.Dense(1)(keras.layers.Activation("relu")(x))
        model = keras.Model(inputs, keras.layers.Reshape(())(x))
        optimizer = make_optimizer(0.05)
    synchronize_batchnorm(model, sync)

    def compute_terms(batch, training):
        x, y = batch
        return {"loss": mse_terms(model(x, training=training), y)}

    loop = DistributedLoop(
        strategy,
        model,
        compute_terms,
        [(optimizer, model.trainable_variables)],
        stage="test",
        verbose=-1,
    )
    loop.fit(lambda epoch: split_batches(), epochs=1, steps_per_epoch=3, resume=False)
    bn = batchnorm_layers(model)[0]
    np.savez(
        out,
        *[np.asarray(w) for w in model.get_weights()],
        moving_mean=np.asarray(bn.moving_mean),
        moving_variance=np.asarray(bn.moving_variance),
        replicas=strategy.num_replicas_in_sync,
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    main()
