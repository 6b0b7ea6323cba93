"""The tables of `seed_priors_lodo.py`: SRCC per arm and k, the claim, the gate.

Uncertainty: for each held-out type, test sources (with all their levels)
and priors are resampled with replacement (`BOOTSTRAP` times, the same
source draws for every arm, so that differences are paired); the statistic
is the median over priors of each prior's SRCC (mean over draws of the k
examples). Across types, the point is the median over types and the
interval comes from resampling types as well.
"""

import os
import sys

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import environment_info, markdown_table, results_path, write_results  # noqa: E402

from tfiqa.files import write_json_atomic  # noqa: E402

ARMS = ("meta", "multitask", "rank", "scratch")
BOOTSTRAP = 300


def _srcc_rows(scores, ranked_labels):
    """SRCC of each row of `scores` (..., n) against ranked labels (n,)."""
    ranks = rankdata(scores, axis=-1)
    a = ranks - ranks.mean(-1, keepdims=True)
    b = ranked_labels - ranked_labels.mean()
    denom = np.sqrt((a**2).sum(-1) * (b**2).sum())
    return np.where(denom > 0, (a * b).sum(-1) / np.where(denom > 0, denom, 1), 0.0)


def _statistic(scores, labels):
    """Median over priors of the mean over draws; scores (P, R, n)."""
    return float(np.median(_srcc_rows(scores, rankdata(labels)).mean(-1)))


def cell_draws(runs, rng):
    """{(held, arm, k): (point, bootstrap draws)} over the used priors."""
    from tfiqa.priors.tasks import level_labels

    cells = {}
    for held in sorted({h for h, _, _ in runs}):
        source = next(v[2] for key, v in runs.items() if key[0] == held)
        labels = np.tile(level_labels(range(1, 6)), len(set(source)))
        n = len(set(source))
        picks = [rng.integers(0, n, n) for _ in range(BOOTSTRAP)]
        images = [
            np.concatenate([np.flatnonzero(source == s) for s in p]) for p in picks
        ]
        for arm in ARMS:
            priors = [v for key, v in runs.items() if key[:2] == (held, arm)]
            for k in sorted({r["k"] for rows, _, _ in priors for r in rows}):
                used = [
                    scores[k]
                    for rows, scores, _ in priors
                    for r in rows
                    if r["k"] == k and r["used"]
                ]
                if not used:
                    cells[(held, arm, k)] = (np.nan, np.full(BOOTSTRAP, np.nan))
                    continue
                stack = np.stack(used)  # (priors, draws, images)
                point = _statistic(stack, labels)
                draws = np.empty(BOOTSTRAP)
                for b, idx in enumerate(images):
                    chosen = stack[rng.integers(0, len(stack), len(stack))]
                    draws[b] = _statistic(chosen[..., idx], labels[idx])
                cells[(held, arm, k)] = (point, draws)
    return cells


def _across_types(cells, arm, k, helds, rng):
    points = np.array([cells[(h, arm, k)][0] for h in helds])
    draws = np.stack([cells[(h, arm, k)][1] for h in helds])  # (types, B)
    pick = rng.integers(0, len(helds), (BOOTSTRAP, len(helds)))
    medians = np.nanmedian(draws[pick, np.arange(BOOTSTRAP)[:, None]], axis=1)
    low, high = np.nanpercentile(medians, [2.5, 97.5])
    return float(np.nanmedian(points)), [float(low), float(high)]


def summarize(runs, args, train_shape, val_shape):
    rng = np.random.default_rng(0)
    cells = cell_draws(runs, rng)
    helds = sorted({h for h, _, _ in runs})
    shots = sorted({k for _, _, k in cells})
    summary, claim = [], {}
    for arm in ARMS:
        for k in shots:
            if (helds[0], arm, k) not in cells:
                continue
            point, ci = _across_types(cells, arm, k, helds, rng)
            ci = f"[{ci[0]:.3f}, {ci[1]:.3f}]"
            row = {"arm": arm, "k": k, "srcc": point, "ci95": ci, "types": len(helds)}
            if arm == "meta":
                wins = [
                    cells[(h, "meta", k)][0] > cells[(h, "multitask", k)][0]
                    for h in helds
                ]
                sure = [
                    np.nanpercentile(
                        cells[(h, "meta", k)][1] - cells[(h, "multitask", k)][1], 2.5
                    )
                    > 0
                    for h in helds
                ]
                row["beats_multitask"] = f"{sum(wins)}/{len(helds)}"
                row["beats_ci_excl_0"] = f"{sum(sure)}/{len(helds)}"
                claim[k] = sum(wins) / len(helds)
            summary.append(row)
    priors = [r for rows, _, _ in runs.values() for r in rows]
    gate = []
    for arm in ARMS[:3]:
        first = [r for r in priors if r["arm"] == arm and r["k"] == 0]
        if not first:
            continue
        gate.append(
            {
                "arm": arm,
                "priors": len(first),
                "passed": sum(r["gate_passed"] for r in first),
                "zero_shot_srcc": np.median(
                    [r["gate_zero_shot"]["srcc"] for r in first]
                ),
                "adapted_srcc": np.median([r["gate_adapted"]["srcc"] for r in first]),
                "zero_shot_loss": np.median(
                    [r["gate_zero_shot"]["loss"] for r in first]
                ),
                "adapted_loss": np.median([r["gate_adapted"]["loss"] for r in first]),
                "median_scale": np.median([r["gate_scale"] for r in first]),
                "seconds": np.median([r["seconds"] for r in first]),
            }
        )
    per_type = []
    for h in helds:
        row = {"held_out": h}
        for k in (5, 10):
            for arm in ARMS:
                if (h, arm, k) in cells:
                    row[f"{arm}@{k}"] = round(cells[(h, arm, k)][0], 3)
        per_type.append(row)
    few = [k for k in claim if 0 < k <= 10]
    holds = bool(few) and all(claim[k] >= 2 / 3 for k in few)
    verdict = (
        "Claim 'meta beats multitask at k <= 10 on >= 2/3 of held-out types': "
        + ("HOLDS" if holds else "DOES NOT HOLD")
        + " ("
        + ", ".join(f"k={k}: {claim[k]:.2f}" for k in sorted(claim))
        + f" of {len(helds)} types)."
    )
    notes = (
        f"{verdict}\n\nSRCC between scores and levels over all test images of the "
        "held-out type; median over types of the median over priors; 95% bootstrap "
        "interval (test sources and priors within a type, then types). "
        f"Cache: train {train_shape[0]} sources, validation {val_shape[0]} "
        f"(half adaptation, half test), {train_shape[1]} rows x {train_shape[2]} "
        f"features. Priors per arm and type: {args.priors}; outer steps "
        f"{args.meta_steps} x {args.meta_batch} tasks x "
        f"{args.support}+{args.query} examples for every arm (equal budgets); "
        f"inner steps {args.inner_steps}; gate scales {args.gate_scales}; "
        f"draws of the k examples: {args.repeats}. "
        "Adapted rows of priors that failed the gate are left out.\n\n"
        "#### The gate (validation tasks: other types, adaptation sources)\n\n"
        + markdown_table(gate, list(gate[0]) if gate else ["arm"])
        + "\n\n#### Per held-out type (k = 5 and 10)\n\n"
        + markdown_table(per_type, list(per_type[0]) if per_type else ["held_out"])
    )
    columns = [
        "arm",
        "k",
        "srcc",
        "ci95",
        "types",
        "beats_multitask",
        "beats_ci_excl_0",
    ]
    write_results(
        args.name,
        summary,
        columns,
        "Seed priors on cached Lite0 features, leave one distortion type out",
        notes=notes,
    )
    write_json_atomic(
        results_path(args.name + "_priors", ".json"),
        {"environment": environment_info(), "rows": priors, "gate": gate},
    )
    print(verdict)
