"""Parity check: score a folder with the Keras model and with every export.

For each export this reports the largest absolute score difference to Keras
and the SRCC between the two score lists, and fails (`TfiqaError`) when the
export disagrees beyond the tolerance of its format:

| export | max abs diff | min SRCC |
|---|---|---|
| SavedModel (`score_uint8` and `serving_default` bytes) | 1e-3 | 0.999 |
| TFLite float32 (`none`) | 1e-3 | 0.999 |
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

Images are prepared with the export input policy (`fit_to_size`). The bytes
row feeds the raw files to `serving_default` and compares with Keras on the
same pixels decoded by `tf.io.decode_image` (which, unlike `load_image`, does
not apply EXIF orientation: clients send upright images).
"""

import os

import numpy as np
from scipy import stats

from tfiqa.data.image_io import load_image
from tfiqa.errors import TfiqaError
from tfiqa.export.preprocess import fit_to_size, list_image_files

TOLERANCES = {
    "saved_model": {"max_abs_diff": 1e-3, "min_srcc": 0.999},
    "saved_model_bytes": {"max_abs_diff": 1e-3, "min_srcc": 0.999},
    "none": {"max_abs_diff": 1e-3, "min_srcc": 0.999},
    "fp16": {"max_abs_diff": 0.02, "min_srcc": 0.99},
    "dynamic": {"max_abs_diff": 0.05, "min_srcc": 0.98},
    "int8": {"max_abs_diff": 0.2, "min_srcc": 0.95},
    "int8_io": {"max_abs_diff": 0.2, "min_srcc": 0.95},
}
MIN_IMAGES_FOR_SRCC = 8
MIN_SPREAD_FOR_SRCC = 0.1
# File types tf.io.decode_image reads (the serving_default signature).
BYTES_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif")


def score_batches(fn, images, input_size, batch_size=16):
    """Scores a list of uint8 images with `fn` (uint8 batch -> (N,))."""
    if not images:
        return np.zeros((0,), np.float32)
    if not input_size:
        # Sizes differ: one image per call.
        return np.concatenate([np.asarray(fn(im[np.newaxis])) for im in images])
    out = [
        np.asarray(fn(np.stack(images[i : i + batch_size])))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out).reshape(-1).astype(np.float32)


def keras_predict_fn(model):
    """`fn(uint8 batch) -> (N,)` for a Keras model, in graph mode."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def score(images):
        out = model(tf.cast(images, tf.float32), training=False)
        return tf.reshape(tf.cast(out, tf.float32), [-1])

    return lambda images: score(tf.constant(images)).numpy()


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


def verify_exports(model, exports, image_dir, input_size, limit=None):
    """Scores `image_dir` with Keras and every export and compares.

    Args:
        model: the Keras model that was exported.
        exports: list of dicts {"name": str, "kind": a `TOLERANCES` key,
            "fn": uint8 batch -> scores, "input_size": int or None}; a
            "bytes_fn" (list of encoded files -> scores) adds a row for the
            in-graph decoding signature.
        image_dir: str. Folder of images.
        input_size: int or None. The Keras reference's input policy.
        limit: int or None. Use at most this many images.

    Returns:
        dict {"images": N, "keras": [...], "rows": [...]}; each row has name,
        kind, max_abs_diff, srcc, srcc_checked, tolerance, ok.
    """
    import tensorflow as tf

    files = list_image_files(image_dir, limit)
    images = [fit_to_size(load_image(f), input_size) for f in files]
    keras_fn = keras_predict_fn(model)
    reference = score_batches(keras_fn, images, input_size)
    rows = []
    for export in exports:
        scores = score_batches(export["fn"], images, export.get("input_size"))
        row = {"name": export["name"], "kind": export["kind"]}
        row.update(compare(reference, scores, TOLERANCES[export["kind"]]))
        rows.append(row)
        if export.get("bytes_fn") is None:
            continue
        byte_files = [f for f in files if f.lower().endswith(BYTES_EXTENSIONS)]
        if not byte_files:
            continue
        blobs = []
        decoded = []
        for f in byte_files:
            with open(f, "rb") as fh:
                blobs.append(fh.read())
            image = tf.io.decode_image(blobs[-1], channels=3, expand_animations=False)
            decoded.append(fit_to_size(image.numpy(), input_size))
        ref_bytes = score_batches(keras_fn, decoded, input_size)
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
