"""int8 calibration that spans the model's score range, and its check.

The converter's calibration is min/max: each tensor's int8 range is what the
calibration images produce. If they all score high (pristine photos such as
Kodak24), the score's logit is never negative, its range is [0, max], and
every image that the float model scores below 0.5 comes out of the int8 file
as exactly 0.500. So each calibration crop also gets a distorted copy (blur,
pixelation, compression, low contrast or exposure: what a quality model
scores lower), the float model scores them all, and the copies that score
lowest and highest join the calibration set whenever they lie outside the
originals' score range. After conversion, `int8_agreement` compares the int8
file with the float model on every crop and copy; `tfiqa export` records it
in the sidecar and warns when they differ by more than `INT8_TOLERANCE`.

Example:
```python
crops = calibration_images("calib/", 100, policy)     # uint8 (N, c, c, 3)
calibration = spanning_calibration(model, crops)
calibration["samples"]   # the converter's representative images
int8_agreement("out/int8.tflite", calibration["check"], calibration["check_scores"])
```
"""

import numpy as np

# Cycled over the calibration crops, one copy each; levels cycle too. Types
# that lose detail (what quality models score low) and add none: noise or
# sharpening would widen every activation's range, costing resolution.
SPAN_TYPES = (
    "gaussian_blur",
    "pixelate",
    "jpeg",
    "contrast_change",
    "motion_blur",
    "darken",
    "lens_blur",
    "denoise",
)
SPAN_LEVELS = (5, 3)
# Largest |int8 - float| score on the check crops before export warns.
INT8_TOLERANCE = 0.05


def calibration_images(folder, count, policy):
    """One centre crop (N, c, c, 3) per image, as inference cuts them under
    `policy` (a `ScoringPolicy`), of up to `count` images in `folder`."""
    from tfiqa.data.image_io import load_image
    from tfiqa.export.image_folders import list_image_files

    files = list_image_files(folder, count)
    return np.stack([policy.crops_of(load_image(f), 1)[0] for f in files])


def distorted_copies(crops):
    """One distorted copy per crop, uint8 (N, c, c, 3), deterministic."""
    from tfiqa.distortions import apply_distortion

    copies = []
    for i, crop in enumerate(crops):
        kind = SPAN_TYPES[i % len(SPAN_TYPES)]
        level = SPAN_LEVELS[(i // len(SPAN_TYPES)) % len(SPAN_LEVELS)]
        image = apply_distortion(kind, crop, level, seed=i).numpy()
        copies.append(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8))
    return np.stack(copies)


def _batched_scores(model, images, batch=32):
    from tfiqa.models.scoring import predict

    return np.concatenate(
        [predict(model, images[i : i + batch]) for i in range(0, len(images), batch)]
    )


def spanning_calibration(model, crops, extremes=None):
    """The calibration crops plus the distorted copies that widen their score
    range (the `extremes` lowest and highest, default 1 per 20 crops).

    Args:
        model: keras.Model, the float scoring model.
        crops: uint8 (N, c, c, 3), from `calibration_images`.
        extremes: int or None. Copies taken at each end of the score range.

    Returns:
        dict: "samples" uint8 (N + k, c, c, 3) for the converter (the crops
        first), "check" uint8 (2N, c, c, 3) crops and all copies, their
        float "check_scores" (2N,), and "copies" k.
    """
    crops = np.asarray(crops, np.uint8)
    copies = distorted_copies(crops)
    scores = _batched_scores(model, crops)
    copy_scores = _batched_scores(model, copies)
    k = extremes or max(1, len(crops) // 20)
    order = np.argsort(copy_scores, kind="stable")
    low = [i for i in order[:k] if copy_scores[i] < scores.min()]
    high = [i for i in order[::-1][:k] if copy_scores[i] > scores.max()]
    extra = copies[sorted(set(low + high))]
    return {
        "samples": np.concatenate([crops, extra]),
        "check": np.concatenate([crops, copies]),
        "check_scores": np.concatenate([scores, copy_scores]),
        "copies": len(extra),
    }


def int8_agreement(path, check, check_scores):
    """How a quantized `.tflite` file's scores compare with the float model's
    on the calibration check crops.

    Returns:
        dict: "images", "float_range" [min, max], "max_abs_error",
        "mean_abs_error" (scores, not logits).
    """
    from tfiqa.inference.backends.tflite import tflite_predict_fn

    fn, _ = tflite_predict_fn(path)
    quantized = np.concatenate([fn(check[i : i + 1]) for i in range(len(check))])
    error = np.abs(quantized - check_scores)
    return {
        "images": len(check),
        "float_range": [float(check_scores.min()), float(check_scores.max())],
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
    }
