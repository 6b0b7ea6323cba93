"""Summaries of accuracy comparisons: one row per arm, with the protocol
checks that make a comparison worth quoting.

An *arm* is one way of producing a model (a prior plus fine-tuning, say).
Each arm is run on several content-disjoint splits with several seeds and
scored once on each split's **test** part (model selection on validation
only). `summarize_arms` reduces those runs to, per arm:

- the median over splits of the per-split metric (mean over that split's
  seeds), and a bootstrap 95% interval of that median (splits resampled
  with replacement, then seeds within each split);
- with `baseline=`, the median paired difference to the baseline arm over
  the splits both ran, with its own bootstrap interval;
- the budget of the arm (steps, images seen, seconds: medians over runs),
  which the caller counts for the whole arm: a prior's own steps and images
  included, and the images actually seen (an early stop sees fewer than
  the planned cap);
- the protocol checks: >= `min_splits` splits, >= `min_seeds` seeds on every
  split, and budgets (all keys except "seconds") equal across the arms.

A *deterministic* arm (identical metrics for every seed on every split, as
a ridge fit on fixed features) is counted once per split: its repeated
seeds are neither extra evidence in the bootstrap nor a pass of the seed
check, which it is exempt from (it has no seed variance to sample).

It writes `<out_stem>.json` (runs, summary, checks, environment) and
`<out_stem>.md` (a table headed by hardware, versions and commit). A table
whose checks fail says so in its first line.

Example:
```python
from arms import summarize_arms

results = [
    {"arm": "scratch", "split": 0, "seed": 0, "srcc": 0.41, "plcc": 0.45,
     "budget": {"steps": 900, "images_seen": 28800, "seconds": 310.0}},
    ...  # every arm x split x seed
]
summary = summarize_arms(results, "five_arms", baseline="scratch")
```
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    environment_info,
    environment_line,
    markdown_table,
    results_path,
)

from tfiqa.files import write_json_atomic, write_text_atomic  # noqa: E402

UNTIMED = ("seconds",)  # budget keys that may differ between arms


def arm_result(arm, split, seed, predictions, mos, /, **fields):
    """One run as `summarize_arms` reads it: an arm's test SRCC and PLCC on
    one split and seed, then `fields` (chosen settings, budget, ...)."""
    from tfiqa.metrics import evaluate_predictions

    metrics = evaluate_predictions(predictions, mos)
    return {
        "arm": arm,
        "split": split,
        "seed": seed,
        "srcc": float(metrics["srcc"]),
        "plcc": float(metrics["plcc"]),
        **fields,
    }


def _per_split(runs, metric):
    """{split: [value per seed]} of one arm's runs."""
    out = {}
    for run in runs:
        out.setdefault(run["split"], []).append(float(run[metric]))
    return out


def _bootstrap_median(per_split, rng, resamples):
    """(median over splits of seed means, 2.5 and 97.5 percentiles)."""
    splits = sorted(per_split)
    point = float(np.median([np.mean(per_split[s]) for s in splits]))
    draws = np.empty(resamples)
    for b in range(resamples):
        chosen = rng.choice(len(splits), len(splits))
        means = []
        for k in chosen:
            seeds = per_split[splits[k]]
            means.append(np.mean(rng.choice(seeds, len(seeds))))
        draws[b] = np.median(means)
    low, high = np.percentile(draws, [2.5, 97.5])
    return point, float(low), float(high)


def _deterministic(runs, metrics):
    """True when every split has >= 2 seeds and all seeds agree on every
    metric (the arm's runs do not depend on the seed)."""
    per_split = [_per_split(runs, m) for m in metrics]
    return all(
        len(values) >= 2 and len(set(values)) == 1
        for split in per_split
        for values in split.values()
    )


def _once_per_split(runs):
    """The first run of every split."""
    first = {}
    for run in runs:
        first.setdefault(run["split"], run)
    return list(first.values())


def _budget(runs):
    keys = sorted({k for run in runs for k in run.get("budget", {})})
    return {k: float(np.median([run["budget"][k] for run in runs])) for k in keys}


def summarize_arms(
    results,
    out_stem,
    metrics=("srcc", "plcc"),
    baseline=None,
    title="Accuracy on test splits",
    notes="",
    min_splits=5,
    min_seeds=2,
    resamples=2000,
    seed=0,
):
    """Summarises per-split, per-seed test metrics of several arms.

    Args:
        results: list of dicts, one per run: "arm" (str), "split" (id of the
            content-disjoint split), "seed" (int), one float per name in
            `metrics` (test-split values), "budget" (dict: "steps",
            "images_seen", "seconds", ... for the whole arm, priors
            included).
        out_stem: str. Output path without extension; a bare name goes to
            the results folder (`benchmarks/results/` by default).
        metrics: names of the metrics to summarise.
        baseline: str or None. Arm to report paired differences against.
        title, notes: markdown heading and text under the table.
        min_splits, min_seeds: the protocol's minimum numbers of splits and
            of seeds on every split.
        resamples: int. Bootstrap resamples.
        seed: int. Seed of the bootstrap.

    Returns:
        dict: "arms" (per arm: splits, seeds, per-metric median / ci95 /
        (vs baseline) diff and diff_ci95, budget), "checks", "environment".
    """
    arms = list(dict.fromkeys(r["arm"] for r in results))
    if not arms:
        raise ValueError("summarize_arms needs at least one result. Received: []")
    if baseline is not None and baseline not in arms:
        raise ValueError(f"baseline must be one of {arms}. Received: {baseline!r}")
    rng = np.random.default_rng(seed)
    runs = {a: [r for r in results if r["arm"] == a] for a in arms}
    summary = {}
    for arm in arms:
        deterministic = _deterministic(runs[arm], metrics)
        if deterministic:
            runs[arm] = _once_per_split(runs[arm])
        per_split = {m: _per_split(runs[arm], m) for m in metrics}
        first = per_split[metrics[0]]
        entry = {
            "splits": len(first),
            "min_seeds": min(len(v) for v in first.values()),
            "deterministic": deterministic,
            "budget": _budget(runs[arm]),
        }
        for m in metrics:
            point, low, high = _bootstrap_median(per_split[m], rng, resamples)
            entry[m] = {"median": point, "ci95": [low, high]}
            if baseline is not None and arm != baseline:
                base = _per_split(runs[baseline], m)
                shared = sorted(set(base) & set(per_split[m]))
                diffs = {
                    s: [np.mean(per_split[m][s]) - np.mean(base[s])] for s in shared
                }
                if diffs:
                    d, dl, dh = _bootstrap_median(diffs, rng, resamples)
                    entry[m].update(diff=d, diff_ci95=[dl, dh])
        summary[arm] = entry
    timed = [
        {k: v for k, v in s["budget"].items() if k not in UNTIMED}
        for s in summary.values()
    ]
    checks = {
        "min_splits": all(s["splits"] >= min_splits for s in summary.values()),
        "min_seeds": all(
            s["min_seeds"] >= min_seeds or s["deterministic"] for s in summary.values()
        ),
        "equal_budgets": all(b == timed[0] for b in timed) and bool(timed[0]),
    }
    checks["passed"] = all(checks.values())
    out = {
        "title": title,
        "arms": summary,
        "checks": checks,
        "protocol": {"min_splits": min_splits, "min_seeds": min_seeds},
        "baseline": baseline,
        "runs": results,
        "environment": environment_info(),
    }
    _write(out, out_stem, metrics, notes)
    return out


def _write(out, out_stem, metrics, notes):
    if not os.path.dirname(out_stem):
        out_stem = results_path(out_stem, "")
    write_json_atomic(out_stem + ".json", out)
    rows = []
    for arm, s in out["arms"].items():
        seeds = "1 (deterministic)" if s["deterministic"] else f">={s['min_seeds']}"
        row = {"arm": arm, "splits x seeds": f"{s['splits']} x {seeds}"}
        for m in metrics:
            v = s[m]
            row[f"{m} median [95% CI]"] = (
                f"{v['median']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
            )
            if "diff" in v:
                row[f"{m} vs {out['baseline']}"] = (
                    f"{v['diff']:+.3f} [{v['diff_ci95'][0]:+.3f}, "
                    f"{v['diff_ci95'][1]:+.3f}]"
                )
        row["budget"] = ", ".join(f"{k} {v:g}" for k, v in s["budget"].items())
        rows.append(row)
    columns = list(dict.fromkeys(c for row in rows for c in row))
    checks = out["checks"]
    status = (
        "Protocol checks passed."
        if checks["passed"]
        else "**Protocol checks FAILED** (not a quotable result): "
        + ", ".join(k for k, ok in checks.items() if k != "passed" and not ok)
    )
    text = (
        f"### {out['title']}\n\n{status}\n\n{environment_line(out['environment'])}"
        f"\n\n{markdown_table(rows, columns)}\n"
    )
    if notes:
        text += f"\n{notes}\n"
    write_text_atomic(out_stem + ".md", text)
