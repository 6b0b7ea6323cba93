"""Synchronized BatchNorm: replicas normalise with the global batch's statistics."""

import os
import subprocess
import sys

import numpy as np
import pytest

from .helpers import ROOT, WORKER_TIMEOUT

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "batchnorm_worker.py")


def train(tmp_path, strategy, sync, logical_cpus=1):
    out = tmp_path / f"{strategy}_{sync}.npz"
    command = [sys.executable, WORKER, strategy, str(int(sync)), str(out)]
    result = subprocess.run(
        command + [str(logical_cpus)],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(out)
    return {k: data[k] for k in data.files}


def test_synchronize_batchnorm_sets_every_layer():
    import keras

    from tfiqa.training.strategy import synchronize_batchnorm

    inner = keras.Sequential([keras.layers.BatchNormalization()])
    model = keras.Sequential([inner, keras.layers.BatchNormalization()])
    assert synchronize_batchnorm(model, True) == 2
    assert all(layer.synchronized for layer in [inner.layers[0], model.layers[1]])
    synchronize_batchnorm(model, False)
    assert not inner.layers[0].synchronized


@pytest.mark.slow
def test_two_replicas_with_sync_batchnorm_match_one_device(tmp_path):
    one = train(tmp_path, "default", sync=False)
    synced = train(tmp_path, "mirrored", sync=True, logical_cpus=2)
    apart = train(tmp_path, "mirrored", sync=False, logical_cpus=2)
    assert int(synced["replicas"]) == 2 and int(apart["replicas"]) == 2
    for key in set(one) - {"replicas"}:
        np.testing.assert_allclose(synced[key], one[key], rtol=1e-4, atol=1e-5)
    # Per-replica statistics: the two halves' variances are far below the
    # batch's, so the moving variance (and the training) comes out different.
    assert np.all(apart["moving_variance"] < 0.8 * one["moving_variance"])
