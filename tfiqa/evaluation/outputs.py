"""Writing an evaluation: metrics.json, scatter.png, predictions.csv."""

import csv
import io
import os

import numpy as np

from tfiqa.csv_names import csv_name
from tfiqa.files import (
    atomic_path,
    reporting_write_errors,
    write_json_atomic,
    write_text_atomic,
)
from tfiqa.metrics import logistic4
from tfiqa.write_failures import check_output_folder


def write_outputs(result, output_dir, predictions_csv=False):
    """Writes `metrics.json` and `scatter.png` (and `predictions.csv` if asked).

    Each file is written atomically: a failed write (full disk, read-only
    file system) leaves the previous file as it was.

    Returns:
        dict name -> path written.

    Raises:
        DataError: `output_dir` is not a folder or cannot be written, a
            file there is not a regular file, or a write failed; one line
            naming the path.
    """
    check_output_folder(output_dir, "--output")
    paths = {
        "metrics": os.path.join(output_dir, "metrics.json"),
        "scatter": os.path.join(output_dir, "scatter.png"),
    }
    if predictions_csv:
        paths["predictions"] = os.path.join(output_dir, "predictions.csv")
    writers = {
        "metrics": lambda path: write_json_atomic(path, result.metrics),
        "scatter": lambda path: save_scatter_plot(path, result),
        "predictions": lambda path: write_predictions_csv(path, result),
    }
    for name, path in paths.items():
        with reporting_write_errors(path):
            writers[name](path)
    return paths


def write_predictions_csv(path, result):
    """Writes the matched `image,score,mos` rows (names as `tfiqa.csv_name`
    writes them, like `tfiqa predict`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", "score", "mos"])
    for image, p, m in zip(result.images, result.pred, result.mos, strict=True):
        writer.writerow([csv_name(image), f"{p:.6f}", f"{m:.6f}"])
    write_text_atomic(path, buffer.getvalue())


def _title_number(value):
    return "n/a" if value is None else f"{value:.3f}"


def save_scatter_plot(path, result):
    """Prediction vs MOS scatter with the fitted logistic, written atomically.

    Uses matplotlib's Agg canvas directly, so no display and no global
    backend change are needed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = result.metrics
    fig = Figure(figsize=(6.4, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n = len(result.pred)
    ax.scatter(
        result.pred,
        result.mos,
        s=max(6, min(30, 6000 / max(n, 1))),
        alpha=0.45 if n > 200 else 0.8,
        color="tab:blue",
        edgecolors="none",
        label=f"images (n={n})",
    )
    if result.params is not None:
        lo, hi = float(np.min(result.pred)), float(np.max(result.pred))
        x = np.linspace(lo, hi, 300)
        ax.plot(
            x,
            logistic4(x, *result.params),
            color="tab:red",
            linewidth=2,
            label="4-parameter logistic fit",
        )
    elif m.get("fit") == "failed":
        ax.text(
            0.02,
            0.98,
            "logistic fit failed",
            transform=ax.transAxes,
            va="top",
            color="tab:red",
        )
    name = os.path.basename(os.path.normpath(m.get("data_dir") or "")) or "dataset"
    split = "" if m.get("split") in (None, "all") else f", {m['split']} split"
    ax.set_title(
        f"{name} ({m.get('dataset', '?')}{split}): "
        f"SRCC {_title_number(m.get('srcc'))}, PLCC {_title_number(m.get('plcc'))}",
        fontsize=11,
    )
    ax.set_xlabel("Predicted score")
    ax.set_ylabel("MOS (normalised to [0, 1], higher is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
