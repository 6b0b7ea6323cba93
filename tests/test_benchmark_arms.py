"""benchmarks/arms.py: medians, bootstrap intervals and protocol checks."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from arms import summarize_arms  # noqa: E402


def runs(arm, base, splits=5, seeds=2, steps=100):
    return [
        {
            "arm": arm,
            "split": s,
            "seed": k,
            "srcc": base + 0.01 * s + 0.001 * k,
            "plcc": base,
            "budget": {"steps": steps, "images_seen": 32 * steps, "seconds": 9.0 + k},
        }
        for s in range(splits)
        for k in range(seeds)
    ]


def test_summary_medians_intervals_paired_differences_and_files(tmp_path):
    results = runs("scratch", 0.40) + runs("prior", 0.45)
    out = summarize_arms(results, str(tmp_path / "t"), baseline="scratch")
    scratch, prior = out["arms"]["scratch"], out["arms"]["prior"]
    # Per-split seed means 0.4005 + 0.01 s; the median split is s = 2.
    assert scratch["srcc"]["median"] == pytest.approx(0.4205)
    low, high = scratch["srcc"]["ci95"]
    assert 0.4005 <= low <= 0.4205 <= high <= 0.4405
    assert prior["srcc"]["diff"] == pytest.approx(0.05)
    assert prior["srcc"]["diff_ci95"] == pytest.approx([0.05, 0.05])
    assert out["checks"]["passed"]
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["arms"]["prior"]["budget"]["steps"] == 100
    assert "commit" in saved["environment"]
    text = (tmp_path / "t.md").read_text()
    assert "Protocol checks passed" in text and "| prior |" in text


def test_protocol_checks_fail_on_few_splits_one_seed_or_unequal_budgets(tmp_path):
    out = summarize_arms(
        runs("a", 0.4, splits=3) + runs("b", 0.4, seeds=1, steps=200),
        str(tmp_path / "bad"),
    )
    assert out["checks"] == {
        "min_splits": False,
        "min_seeds": False,
        "equal_budgets": False,
        "passed": False,
    }
    assert "FAILED" in (tmp_path / "bad.md").read_text()


def test_a_deterministic_arm_counts_once_per_split(tmp_path):
    ridge = [dict(r, srcc=0.5 + 0.01 * r["split"]) for r in runs("ridge", 0.5)]
    out = summarize_arms(runs("mlp", 0.4) + ridge, str(tmp_path / "d"))
    entry = out["arms"]["ridge"]
    assert entry["deterministic"] and not out["arms"]["mlp"]["deterministic"]
    # One run per split: the seeds are no extra evidence ...
    assert entry["min_seeds"] == 1 and entry["srcc"]["median"] == pytest.approx(0.52)
    # ... and, having no seed variance, the arm passes the seed check.
    assert out["checks"]["min_seeds"] and out["checks"]["passed"]
    assert "| ridge | 5 x 1 (deterministic) |" in (tmp_path / "d.md").read_text()
    # One seed per split is not a deterministic arm.
    lone = summarize_arms(runs("a", 0.4, seeds=1), str(tmp_path / "e"))
    assert not lone["arms"]["a"]["deterministic"]
    assert not lone["checks"]["min_seeds"]


def prior_run(out, name, seed, epochs_done, steps_per_epoch):
    """A finished prior run as `transfer_priors.train_prior` leaves it."""
    import yaml

    run = out / "priors" / f"{name}_seed{seed}"
    run.mkdir(parents=True)
    stage = "rank" if name == "rank" else "meta"
    schedule = {"schedule": {"steps_per_epoch": steps_per_epoch}}
    (run / "config.yaml").write_text(yaml.safe_dump({"stages": {stage: schedule}}))
    (run / "metrics.json").write_text(
        json.dumps({"stages": {stage: {"epochs_done": epochs_done}}})
    )


def arm_rows(arm, prior, base, epochs_done=3):
    """Rows as `transfer.run_arm` returns them: planned 4 x 10 steps."""
    return [
        {
            **row,
            "prior": prior,
            "epochs_done": epochs_done,
            "budget": {
                "epochs": 4,
                "steps_per_epoch": 10,
                "images_seen": 4 * 10 * 32,
                "seconds": 5.0,
            },
        }
        for row in runs(arm, base)
    ]


def transfer_args(**changes):
    import types

    values = dict(
        arms="rank_meta",
        splits=5,
        views=1,
        freeze="block3_pool",
        prior_crop=224,
        prior_images=96,
        precision="float32",
    )
    return types.SimpleNamespace(**{**values, **changes})


def test_transfer_arm_budgets_count_priors_and_what_ran(tmp_path, monkeypatch):
    import common
    import transfer_priors

    from tfiqa.config import load_config

    monkeypatch.setattr(common, "_results_dir", [str(tmp_path)])
    monkeypatch.setattr(transfer_priors, "prior_drift", lambda priors: None)
    out = tmp_path / "out"
    args = transfer_args(out=str(out))
    prior_run(out, "rank", 0, epochs_done=2, steps_per_epoch=5)  # stopped early
    prior_run(out, "rank", 1, epochs_done=2, steps_per_epoch=5)
    prior_run(out, "rank_meta", 0, epochs_done=1, steps_per_epoch=4)
    prior_run(out, "rank_meta", 1, epochs_done=1, steps_per_epoch=4)
    priors = [
        {"prior": p, "seed": k, "steps": 999, "seconds": 1.0, "val": {}, "weights": ""}
        for p in ("rank", "rank_meta")
        for k in (0, 1)
    ]
    (out / "priors.json").write_text(json.dumps(priors))
    rows = arm_rows("finetune", None, 0.40, epochs_done=3)
    rows += arm_rows("rank", "rank", 0.45) + arm_rows("rank_meta", "rank_meta", 0.46)
    (out / "arm_rows.json").write_text(json.dumps(rows))
    summary = transfer_priors.summarize(args, str(out))
    batch = load_config(transfer_priors.CONFIG).data.batch_size
    budget = {arm: s["budget"] for arm, s in summary["arms"].items()}
    # Fine-tuning: the 3 epochs that ran, not the 4 planned.
    assert budget["finetune"]["steps"] == 30
    assert budget["finetune"]["images_seen"] == 30 * batch
    # A ranking prior: 2 epochs x 5 steps of 4 groups x 6 images.
    assert budget["rank"]["steps"] == 30 + 10
    assert budget["rank"]["images_seen"] == 30 * batch + 10 * 24
    # rank_meta: its meta steps (2 tasks x 12 images) on top of the rank prior.
    assert budget["rank_meta"]["steps"] == 30 + 10 + 4
    assert budget["rank_meta"]["images_seen"] == 30 * batch + 10 * 24 + 4 * 24
    assert not summary["checks"]["equal_budgets"]


def test_transfer_arms_table_keeps_every_arm_on_file(tmp_path, monkeypatch):
    """A run of one arm (`--arms rank_meta`) summarises every arm on file,
    with the baseline only where it ran."""
    import common
    import transfer_priors

    monkeypatch.setattr(common, "_results_dir", [str(tmp_path)])
    out = tmp_path / "out"
    args = transfer_args(out=str(out))
    prior_run(out, "rank", 0, epochs_done=2, steps_per_epoch=5)
    prior_run(out, "rank", 1, epochs_done=2, steps_per_epoch=5)
    prior_run(out, "rank_meta", 0, epochs_done=2, steps_per_epoch=5)
    prior_run(out, "rank_meta", 1, epochs_done=2, steps_per_epoch=5)
    rows = out / "arm_rows.json"
    rows.write_text(json.dumps(arm_rows("rank_meta", "rank_meta", 0.45)))
    alone = transfer_priors.summarize(args, str(out))
    assert list(alone["arms"]) == ["rank_meta"]
    assert "diff" not in alone["arms"]["rank_meta"]["srcc"]
    rows.write_text(
        json.dumps(
            arm_rows("finetune", None, 0.40) + arm_rows("rank_meta", "rank_meta", 0.45)
        )
    )
    both = transfer_priors.summarize(args, str(out))
    assert set(both["arms"]) == {"finetune", "rank_meta"}
    assert both["arms"]["rank_meta"]["srcc"]["diff"] == pytest.approx(0.05)
    saved = json.loads((tmp_path / "transfer_arms.json").read_text())
    assert set(saved["arms"]) == {"finetune", "rank_meta"}
