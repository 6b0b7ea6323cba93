"""`tfiqa train` on two local worker processes (MultiWorkerMirroredStrategy).

Each test starts two `tfiqa train` processes with their own TF_CONFIG
(localhost ports) and one shared work directory, as on a cluster with a
shared file system.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from .test_run import ROOT, TINY, deep_update, latest_checkpoint_number
from .test_strategy import free_ports

pytestmark = pytest.mark.slow

STAGES = ("rank", "meta", "finetune")
META = {
    "types": ["gaussian_blur", "white_noise", "jpeg", "darken"],
    "holdout": ["darken"],
    "label": "level",
    "support_size": 4,
    "query_size": 3,
    "meta_batch_size": 2,
    "schedule": {"epochs": 2, "steps_per_epoch": 2, "val_steps": 1},
    "inner_learning_rate": 0.05,
    "optimizer": {"learning_rate": 0.01},
    "bn_recalibration_batches": 1,
}


def write_config(folder, order=STAGES, **changes):
    config = json.loads(json.dumps(TINY))
    config["stages"]["meta"] = dict(META)
    config["stages"]["order"] = list(order)
    config["data"]["pristine_val_ratio"] = 0.34
    config["runtime"]["strategy"] = "multi_worker"
    deep_update(config, changes)
    path = os.path.join(folder, "tiny_multi_worker.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def start_workers(config, workdir, log_dir):
    """Two `tfiqa train` processes, worker 0 (the chief) and worker 1."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "PYTHONPATH": ROOT,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps(tf_config),
        }
        command = [sys.executable, "-m", "tfiqa.cli", "train"]
        command += ["--config", config, "--workdir", str(workdir)]
        with open(os.path.join(log_dir, f"worker{index}.log"), "a") as log:
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
    return procs


def wait_all(procs, log_dir, timeout=900):
    deadline = time.time() + timeout
    for index, proc in enumerate(procs):
        try:
            proc.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
        if proc.returncode != 0:
            with open(os.path.join(log_dir, f"worker{index}.log")) as f:
                pytest.fail(f"worker {index} failed:\n{f.read()[-3000:]}")


def stage_weights(folder, stage):
    import h5py

    values = []
    with h5py.File(os.path.join(folder, "checkpoints", stage, "final.weights.h5")) as f:
        f.visititems(
            lambda name, obj: (
                values.append((name, np.asarray(obj)))
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return values


def test_two_workers_train_every_stage_to_identical_weights(tmp_path):
    workdir = tmp_path / "run"
    config = write_config(str(tmp_path))
    wait_all(start_workers(config, workdir, str(tmp_path)), str(tmp_path))

    for name in ("config.yaml", "model.keras", "metrics.json"):
        assert (workdir / name).is_file(), name
    assert (workdir / "splits" / "splits.json").is_file()
    metrics = json.loads((workdir / "metrics.json").read_text())
    # TF's class behind tf.distribute.MultiWorkerMirroredStrategy.
    assert metrics["strategy"] == "CollectiveAllReduceStrategy"
    assert metrics["replicas"] == 2
    assert metrics["test"]["n"] > 0
    for stage in STAGES:
        assert (workdir / "checkpoints" / stage / "done.json").is_file(), stage
        assert list((workdir / "logs" / stage).glob("events.out.tfevents*")), stage
        chief = stage_weights(workdir, stage)
        other = stage_weights(workdir / "workers" / "worker_1", stage)
        assert [n for n, _ in chief] == [n for n, _ in other]
        for (name, a), (_, b) in zip(chief, other, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{stage}: {name}")
    # Only the chief writes outputs: the other worker has no logs or model.
    scratch = workdir / "workers" / "worker_1"
    assert not (scratch / "model.keras").exists()
    assert not (scratch / "metrics.json").exists()


def test_killed_worker_resumes_from_the_last_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    rank = {"rank": {"schedule": {"epochs": 6, "steps_per_epoch": 3}}}
    config = write_config(str(tmp_path), order=("rank",), stages=rank)
    procs = start_workers(config, workdir, str(tmp_path))
    rank_dir = str(workdir / "checkpoints" / "rank")
    deadline = time.time() + 600
    while latest_checkpoint_number(rank_dir) < 1:
        assert all(p.poll() is None for p in procs), "a worker ended early"
        assert time.time() < deadline, "no checkpoint within 600 s"
        time.sleep(0.05)
    # Kill the non-chief mid-run; the chief cannot go on without it.
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    killed_at = latest_checkpoint_number(rank_dir)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    saved = latest_checkpoint_number(rank_dir)
    assert 1 <= saved < 6 and saved >= killed_at
    assert not (workdir / "metrics.json").exists()

    wait_all(start_workers(config, workdir, str(tmp_path)), str(tmp_path))
    log = (tmp_path / "worker0.log").read_text()
    assert f"[rank] resuming at epoch {saved + 1}/6" in log
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["resumed"] == [
        {
            "stage": "rank",
            "epoch": saved + 1,
            "checkpoint": metrics["resumed"][0]["checkpoint"],
        }
    ]
    rank = metrics["stages"]["rank"]
    assert rank["initial_epoch"] == saved and rank["epochs_done"] == 6
    chief = stage_weights(workdir, "rank")
    other = stage_weights(workdir / "workers" / "worker_1", "rank")
    for (name, a), (_, b) in zip(chief, other, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
