"""Parity check: score a folder with the Keras model and with every export.

For each export this reports the largest absolute score difference to Keras
and the SRCC between the two score lists, and fails (`TfiqaError`) when the
export disagrees beyond the tolerance of its format:

| export | max abs diff | min SRCC |
|---|---|---|
| SavedModel (`score_uint8` and `serving_default` bytes) | 1e-5 | 0.999 |
| TFLite float32 (`none`) | 1e-5 | 0.999 |
| TFLite `fp16` | 0.02 | 0.99 |
| TFLite `dynamic` | 0.05 | 0.98 |
| TFLite `int8`, `int8_io` | 0.2 | 0.95 |

Full-integer int8 moves single scores by up to 0.15-0.2 on outlying images
(min/max calibration) while keeping the ranking (SRCC ~0.97 with the float
model on biq2021-dev, see benchmarks/README.md), so its check leans on SRCC.

The score scale is the model's ([0, 1] for a sigmoid output). The SRCC
threshold is only enforced with at least `MIN_IMAGES_FOR_SRCC` images whose
Keras scores span at least `MIN_SPREAD_FOR_SRCC`: when all scores lie within a
few quantization steps of each other (an untrained model), their order is
noise and only the absolute difference is meaningful.

The Keras model is scored the way users score it (`tfiqa predict`: the
model's scoring policy), and so is every export (`tfiqa.load` on the
written file, with its sidecar's policy). The bytes row feeds the raw files
to `serving_default` (which applies the policy in the graph) and compares
with Keras on the same pixels decoded in the graph (which, unlike
`load_image`, does not apply EXIF orientation: clients send upright images).
"""

import os

import numpy as np
from scipy import stats

from tfiqa.data.image_io import load_image
from tfiqa.errors import TfiqaError
from tfiqa.export.image_folders import list_image_files
from tfiqa.inference.backends.keras import model_scorer

TOLERANCES = {
    "saved_model": {"max_abs_diff": 1e-5, "min_srcc": 0.999},
    "saved_model_bytes": {"max_abs_diff": 1e-5, "min_srcc": 0.999},
    "none": {"max_abs_diff": 1e-5, "min_srcc": 0.999},
    "fp16": {"max_abs_diff": 0.02, "min_srcc": 0.99},
    "dynamic": {"max_abs_diff": 0.05, "min_srcc": 0.98},
    "int8": {"max_abs_diff": 0.2, "min_srcc": 0.95},
    "int8_io": {"max_abs_diff": 0.2, "min_srcc": 0.95},
}
MIN_IMAGES_FOR_SRCC = 8
MIN_SPREAD_FOR_SRCC = 0.1
# File types tf.io.decode_image reads (the serving_default signature).
BYTES_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif")


def compare(reference, scores, tolerance):
    """Max |diff| and SRCC of `scores` against `reference`, with a verdict."""
    reference = np.asarray(reference, np.float64)
    scores = np.asarray(scores, np.float64)
    diff = float(np.max(np.abs(reference - scores))) if len(scores) else 0.0
    finite = bool(np.all(np.isfinite(scores)))
    srcc = float("nan")
    if len(scores) >= 3 and np.ptp(reference) > 0 and np.ptp(scores) > 0:
        srcc = float(stats.spearmanr(reference, scores)[0])
    srcc_checked = (
        len(scores) >= MIN_IMAGES_FOR_SRCC
        and float(np.ptp(reference)) >= MIN_SPREAD_FOR_SRCC
    )
    ok = finite and diff <= tolerance["max_abs_diff"]
    if srcc_checked:
        ok = ok and not np.isnan(srcc) and srcc >= tolerance["min_srcc"]
    return {
        "max_abs_diff": diff if finite else float("inf"),
        "srcc": srcc,
        "srcc_checked": srcc_checked,
        "tolerance": dict(tolerance),
        "ok": bool(ok),
    }


def verify_exports(model, exports, image_dir, limit=None, policy=None):
    """Scores `image_dir` with Keras and every export and compares.

    Args:
        model: the Keras model that was exported.
        exports: list of dicts {"name": str, "kind": a `TOLERANCES` key,
            "scorer": `tfiqa.inference.Scorer` of the export}; a "bytes_fn"
            (list of encoded files -> scores) adds a row for the in-graph
            decoding signature.
        image_dir: str. Folder of images.
        limit: int or None. Use at most this many images.
        policy: `ScoringPolicy` or None. The policy the exports were
            written with (default: the model's own).

    Returns:
        dict {"images": N, "keras": [...], "rows": [...]}; each row has name,
        kind, max_abs_diff, srcc, srcc_checked, tolerance, ok.
    """
    from tfiqa.export.decode import decode_image_bytes

    files = list_image_files(image_dir, limit)
    images = [load_image(f) for f in files]
    keras = model_scorer(model, policy)
    reference = keras.score(images)
    rows = []
    for export in exports:
        scores = export["scorer"].score(images)
        row = {"name": export["name"], "kind": export["kind"]}
        row.update(compare(reference, scores, TOLERANCES[export["kind"]]))
        rows.append(row)
        if export.get("bytes_fn") is None:
            continue
        byte_files = [f for f in files if f.lower().endswith(BYTES_EXTENSIONS)]
        if not byte_files:
            continue
        blobs = []
        for f in byte_files:
            with open(f, "rb") as fh:
                blobs.append(fh.read())
        decoded = [decode_image_bytes(b).numpy() for b in blobs]
        ref_bytes = keras.score(decoded)
        scores = np.asarray(export["bytes_fn"](blobs)).reshape(-1)
        row = {"name": f"{export['name']} (image_bytes)", "kind": "saved_model_bytes"}
        row.update(compare(ref_bytes, scores, TOLERANCES["saved_model_bytes"]))
        rows.append(row)
    return {
        "image_dir": os.path.abspath(image_dir),
        "images": len(files),
        "keras_scores": [float(s) for s in reference],
        "rows": rows,
    }


def format_report(report):
    """A plain-text table of a `verify_exports` report."""
    lines = [
        f"Verified on {report['images']} images from {report['image_dir']}",
        f"{'export':<40} {'max|diff|':>10} {'SRCC':>7}  {'tolerance':<20} result",
    ]
    for row in report["rows"]:
        tol = row["tolerance"]
        srcc = "nan" if np.isnan(row["srcc"]) else f"{row['srcc']:.4f}"
        if not row["srcc_checked"]:
            srcc += "*"
        tol_text = f"{tol['max_abs_diff']:g} / {tol['min_srcc']:g}"
        lines.append(
            f"{row['name']:<40} {row['max_abs_diff']:>10.2e} {srcc:>7}  "
            f"{tol_text:<20} {'ok' if row['ok'] else 'FAIL'}"
        )
    if any(not r["srcc_checked"] for r in report["rows"]):
        lines.append(
            f"* SRCC not enforced: fewer than {MIN_IMAGES_FOR_SRCC} images or Keras "
            f"scores spanning less than {MIN_SPREAD_FOR_SRCC}."
        )
    return "\n".join(lines)


def check_report(report):
    """Raises TfiqaError naming the exports that disagree with Keras."""
    failed = [r for r in report["rows"] if not r["ok"]]
    if failed:
        details = "; ".join(
            f"{r['name']}: max|diff|={r['max_abs_diff']:.3g} "
            f"(tolerance {r['tolerance']['max_abs_diff']:g}), SRCC={r['srcc']:.3f} "
            f"(min {r['tolerance']['min_srcc']:g})"
            for r in failed
        )
        raise TfiqaError(
            f"Export verification failed for {len(failed)} export(s) against the "
            f"Keras model on {report['image_dir']}. Received: {details}"
        )
