"""A resumed finetune stage records the epoch it really resumed at."""

import json
import os

import pytest

from tests.training.test_transfer import transfer_config
from tfiqa.training.fit_summary import fit_summary
from tfiqa.training.stages.finetune import _merge


def phase(first, count, resumed_at=None):
    """A phase result as `TrainingLoop.fit` returns it: epochs
    `first..first+count-1`, resumed (from a checkpoint) at `resumed_at`."""
    logs = [{"epoch": e} for e in range(first, first + count)]
    split = (resumed_at or first) - first
    return {
        "earlier_history": logs[:split],
        "history": logs[split:],
        "initial_epoch": resumed_at or first,
        "resumed_from": f"ckpt-{resumed_at}" if resumed_at else None,
        "stopped_early": False,
    }


def test_resume_in_the_second_phase_is_recorded_at_its_epoch():
    merged = _merge({"warmup": phase(0, 2), "finetune": phase(2, 4, resumed_at=3)})
    summary = fit_summary(merged, 6)
    assert summary["initial_epoch"] == 3 and summary["resumed_from"] == "ckpt-3"
    assert summary["epochs_done"] == 6
    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2, 3, 4, 5]


def test_a_run_that_did_not_resume_starts_at_zero():
    summary = fit_summary(_merge({"finetune": phase(0, 3)}), 3)
    assert summary["initial_epoch"] == 0 and summary["resumed_from"] is None
    assert summary["epochs_done"] == 3


@pytest.mark.slow
def test_metrics_json_records_the_resumed_epoch(tmp_path):
    from tfiqa.training.run import run_experiment

    workdir = str(tmp_path / "run")
    run_experiment(
        transfer_config(
            tmp_path, "stages.finetune.schedule.epochs=2", "data.num_splits=1"
        ),
        workdir,
    )
    # Stage marked unfinished, more epochs asked for: the rerun resumes at 3.
    stage_dir = os.path.join(workdir, "checkpoints", "finetune")
    os.remove(os.path.join(stage_dir, "done.json"))
    metrics = run_experiment(
        transfer_config(
            tmp_path, "stages.finetune.schedule.epochs=3", "data.num_splits=1"
        ),
        workdir,
    )
    assert [r["epoch"] for r in metrics["resumed"]] == [3]
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["resumed"][0]["epoch"] == 3
    assert metrics["stages"]["finetune"]["epochs_done"] == 3
