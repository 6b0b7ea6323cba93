"""Subprocess entry point for the strategy tests.

Trains the tiny regressor with `DistributedLoop` under one strategy and saves
the final weights. Logical devices and TF_CONFIG must be set before
TensorFlow initialises, hence a separate process per configuration.

Usage: python strategy_worker.py STRATEGY OUT.npz [LOGICAL_CPUS]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    strategy_name, out = sys.argv[1], sys.argv[2]
    logical_cpus = int(sys.argv[3]) if len(sys.argv) > 3 else 1

    import helpers

    strategy = helpers.worker_strategy(strategy_name, logical_cpus)

    import numpy as np

    from tfiqa.training.loop import DistributedLoop, make_optimizer

    x, y = helpers.regression_data(n=64)
    with strategy.scope():
        model = helpers.tiny_regressor(seed=3)
        optimizer = make_optimizer(0.05)
    loop = DistributedLoop(
        strategy,
        model,
        helpers.mse_terms_fn(model),
        [(optimizer, model.trainable_variables)],
        stage="test",
        verbose=0,
    )
    result = loop.fit(
        lambda epoch: helpers.regression_dataset(x, y, 16, seed=epoch),
        epochs=2,
        steps_per_epoch=4,
        resume=False,
    )
    np.savez(
        out,
        *[np.asarray(w) for w in model.get_weights()],
        replicas=strategy.num_replicas_in_sync,
        loss=result["history"][-1]["loss"],
    )


if __name__ == "__main__":
    main()
