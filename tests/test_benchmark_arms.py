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


def test_transfer_arms_table_keeps_every_arm_on_file(tmp_path, monkeypatch):
    """A run of one arm (`--arms rank_meta`) summarises every arm on file,
    with the baseline only where it ran."""
    import types

    import common
    import transfer_priors

    monkeypatch.setattr(common, "_results_dir", [str(tmp_path)])
    args = types.SimpleNamespace(
        arms="rank_meta",
        splits=5,
        views=1,
        freeze="block3_pool",
        prior_crop=224,
        prior_images=96,
        precision="float32",
    )
    out = tmp_path / "out"
    out.mkdir()
    rows = out / "arm_rows.json"
    rows.write_text(json.dumps(runs("rank_meta", 0.45)))
    alone = transfer_priors.summarize(args, str(out))
    assert list(alone["arms"]) == ["rank_meta"]
    assert "diff" not in alone["arms"]["rank_meta"]["srcc"]
    rows.write_text(json.dumps(runs("finetune", 0.40) + runs("rank_meta", 0.45)))
    both = transfer_priors.summarize(args, str(out))
    assert set(both["arms"]) == {"finetune", "rank_meta"}
    assert both["arms"]["rank_meta"]["srcc"]["diff"] == pytest.approx(0.05)
    saved = json.loads((tmp_path / "transfer_arms.json").read_text())
    assert set(saved["arms"]) == {"finetune", "rank_meta"}
