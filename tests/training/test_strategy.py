import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tfiqa.config import RuntimeConfig
from tfiqa.errors import ConfigError

from .helpers import WORKER_TIMEOUT

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strategy_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(WORKER)))


def run_worker(args, env=None):
    env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc, timeout=WORKER_TIMEOUT):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker timed out:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]


def load_weights(path):
    data = np.load(path)
    weights = [data[f"arr_{i}"] for i in range(len(data.files) - 2)]
    return weights, int(data["replicas"]), float(data["loss"])


def test_get_strategy_default_and_errors(monkeypatch):
    import tensorflow as tf

    from tfiqa.training.strategy import get_strategy, is_chief

    strategy = get_strategy(RuntimeConfig(strategy="auto"))
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)
    assert isinstance(
        get_strategy(RuntimeConfig(strategy="default")), tf.distribute.Strategy
    )
    with pytest.raises(ConfigError, match="Received: 'bogus'"):
        get_strategy(RuntimeConfig(strategy="bogus"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        get_strategy(RuntimeConfig(strategy="multi_worker"))


@pytest.mark.slow
def test_mirrored_two_cpu_devices_matches_one_device(tmp_path):
    single = run_worker(["default", str(tmp_path / "one.npz")])
    finish(single)
    mirrored = run_worker(["mirrored", str(tmp_path / "two.npz"), "2"])
    finish(mirrored)
    one, replicas_one, loss_one = load_weights(tmp_path / "one.npz")
    two, replicas_two, loss_two = load_weights(tmp_path / "two.npz")
    assert (replicas_one, replicas_two) == (1, 2)
    np.testing.assert_allclose(loss_one, loss_two, rtol=1e-4)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def free_ports(count):
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_local_workers_end_identical(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        procs.append(
            run_worker(
                ["multi_worker", str(tmp_path / f"w{index}.npz")],
                env={"TF_CONFIG": json.dumps(tf_config)},
            )
        )
    for proc in procs:
        finish(proc)
    w0, replicas, _ = load_weights(tmp_path / "w0.npz")
    w1, _, _ = load_weights(tmp_path / "w1.npz")
    assert replicas == 2
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    # Same global batches as one device: the result matches it too.
    finish(run_worker(["default", str(tmp_path / "one.npz")]))
    one, _, _ = load_weights(tmp_path / "one.npz")
    for a, b in zip(one, w0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
