"""The leave-one-distortion-out tables: lodo.csv, lodo.md and lodo.json."""

import csv
import io
import os

import numpy as np

from tfiqa.files import write_json_atomic, write_text_atomic


def format_table(rows, priors, shots):
    """Markdown: one row per held-out type, a column per prior and k."""
    columns = [f"{p} k={k}" for p in priors for k in shots]
    by_key = {(r["type"], r["prior"], r["k"]): r["srcc"] for r in rows}
    types = list(dict.fromkeys(r["type"] for r in rows))
    lines = [
        "| held-out type | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]

    def cell(value):
        return "nan" if value is None or not np.isfinite(value) else f"{value:.3f}"

    for t in types:
        values = [by_key.get((t, p, k)) for p in priors for k in shots]
        lines.append(f"| {t} | " + " | ".join(cell(v) for v in values) + " |")
    means = []
    for p in priors:
        for k in shots:
            vals = [by_key.get((t, p, k)) for t in types]
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            means.append(float(np.mean(vals)) if vals else float("nan"))
    lines.append("| **mean** | " + " | ".join(cell(v) for v in means) + " |")
    return "\n".join(lines) + "\n"


def _adaptation_note(adaptations):
    seen = {}
    for a in adaptations:
        rate = (
            f"learned Meta-SGD rates (mean {a['learned_rate_mean']:.3g})"
            if a["learned_rates"]
            else f"lr {a['learning_rate']}"
        )
        seen.setdefault(
            a["prior"],
            f"{a['prior']}: {a['steps']} SGD step(s) on {a['variables']} "
            f"variables ({a['parameters']} parameters), {rate}",
        )
    return "; ".join(seen.values())


def write_outputs(
    workdir, rows, priors, shots, config, adaptations, repeats, seeds=None
):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["type", "prior", "k", "srcc", "n_test"])
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(os.path.join(workdir, "lodo.csv"), buffer.getvalue())
    note = (
        f"SRCC on {config.protocols.lodo.test_size} test crops of each held-out type "
        f"(validation sources, label {config.stages.meta.label}); k > 0: adapted to "
        f"k labelled crops from training sources, mean of {repeats} draws, "
        f"with the meta prior's adaptation ({_adaptation_note(adaptations)}).\n"
    )
    write_text_atomic(
        os.path.join(workdir, "lodo.md"),
        "# Leave-one-distortion-out SRCC\n\n"
        + note
        + "\n"
        + format_table(rows, priors, shots),
    )
    write_json_atomic(
        os.path.join(workdir, "lodo.json"),
        {
            "rows": rows,
            "priors": list(priors),
            "shots": list(shots),
            "adaptation": adaptations,
            "repeats": repeats,
            "seeds": seeds or {},
        },
    )
