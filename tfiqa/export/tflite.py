"""TFLite conversion (float32, fp16, dynamic-range, int8, int8 I/O).

Every variant has one signature, `score`, with input `image` (B, H, W, 3)
RGB pixels in [0, 255] (H = W = the input size, or any size when it is
dynamic) and output `score` (B,), higher is better. The model normalises
internally, so an app feeds raw pixels:

| quantize | weights | activations | input | output |
|---|---|---|---|---|
| none    | float32 | float32 | float32 0..255 | float32 |
| fp16    | float16 | float32 | float32 0..255 | float32 |
| dynamic | int8    | float32 (int8 matmuls) | float32 0..255 | float32 |
| int8    | int8    | int8 | float32 0..255 | float32 |
| int8_io | int8    | int8 | uint8 (raw pixels) | uint8 (see below) |

`int8` and `int8_io` are calibrated on `calibration` images cropped exactly
like inference images; the calibration includes the pixel values 0 and 255,
so the uint8 input of `int8_io` is the raw pixel (scale 1, zero point 0);
its uint8 output q means score = scale * (q - zero_point) (in the sidecar).

Reading one back (LiteRT alone, no TensorFlow): `tfiqa.inference.backends.tflite`.
"""

import os
import shutil
import warnings

import numpy as np

from tfiqa.errors import ConfigError
from tfiqa.export.work_dirs import make_work_dir, remove_stale_work_dirs
from tfiqa.files import atomic_path
from tfiqa.inference.backends.tflite import (
    INPUT_NAME,
    OUTPUT_NAME,
    SIGNATURE,
    quantization,
)

QUANTIZATIONS = ("none", "fp16", "dynamic", "int8", "int8_io")
# The int8 range an unbounded (linear) score always covers: the MOS scale
# tfiqa trains on, [0, 1], with a margin (a step of 0.006 in uint8).
UNBOUNDED_SCORE_SPAN = (-0.25, 1.25)
CALIBRATED = ("int8", "int8_io")
WORK_PREFIX = ".tmp-tflite-"


def check_quantizations(quantize):
    """Validates a list of quantization names; returns it without duplicates."""
    unknown = [q for q in quantize if q not in QUANTIZATIONS]
    if unknown:
        raise ConfigError(
            f"Unknown quantization {unknown}; valid: {', '.join(QUANTIZATIONS)}. "
            f"Received: {list(quantize)}"
        )
    return list(dict.fromkeys(quantize))


def write_conversion_source(model, directory, input_size):
    """Writes the float SavedModel (signature `score`) that TFLite converts.

    Args:
        model: keras.Model taking (B, H, W, 3) pixels in [0, 255].
        directory: str. Where to write it.
        input_size: int or None. Fixed square side; None/0 is dynamic.
    """
    import tensorflow as tf

    from tfiqa.export.saved_model import save_signatures
    from tfiqa.export.sidecar import score_range

    size = input_size or None
    span = score_range(model) is None

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32, name=INPUT_NAME)
        ]
    )
    def score(image):
        scores = tf.reshape(tf.cast(model(image, training=False), tf.float32), [-1])
        if span:
            # An unbounded score's int8 range would be the calibration
            # images' scores: a photo that scores above the best of them
            # would come out of an int8 file clamped to it. Joining the ends
            # of `UNBOUNDED_SCORE_SPAN` to the scores (one tensor for the
            # quantizer) and slicing them off again makes the range cover
            # them; float variants compute the same scores.
            ends = tf.constant(UNBOUNDED_SCORE_SPAN, tf.float32)
            scores = tf.concat([scores, ends], axis=0)[:-2]
        return {OUTPUT_NAME: scores}

    save_signatures(model, directory, {SIGNATURE: score})
    return directory


def representative_dataset(calibration, label="Calibrating int8", verbose=1):
    """Calibration samples for the converter: {"image": float32 (1, H, W, 3)}.

    The first sample gets one pixel of 0 and one of 255 so that the input's
    calibrated range is exactly [0, 255]: `int8_io` then takes raw pixels.
    Each pass of the converter over the samples shows a progress bar
    (`verbose=0` hides it, see `tfiqa.progress`).
    """
    from tfiqa.progress import progress

    calibration = np.asarray(calibration)

    def generate():
        with progress(len(calibration), label, verbose, unit="image") as bar:
            for i, image in enumerate(calibration):
                image = image.astype(np.float32)
                if i == 0:
                    image = image.copy()
                    image[0, 0, :] = 0.0
                    image[0, -1, :] = 255.0
                yield {INPUT_NAME: image[np.newaxis]}
                bar.add(1)

    return generate


def convert(source_dir, quantize, calibration=None):
    """Converts the SavedModel in `source_dir` to TFLite bytes.

    Args:
        source_dir: str, from `write_conversion_source`.
        quantize: one of `QUANTIZATIONS`.
        calibration: uint8 array (N, H, W, 3), required for int8/int8_io.

    Returns:
        (bytes, info) where info["float_fallback"] is True when a fully
        integer graph was impossible and some ops stayed float.
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert_phase import ConverterError

    check_quantizations([quantize])
    if quantize in CALIBRATED and (calibration is None or len(calibration) == 0):
        raise ConfigError(
            f"Quantization '{quantize}' needs calibration images "
            "(--calibration-dir). Received: none"
        )

    def converter():
        c = tf.lite.TFLiteConverter.from_saved_model(
            source_dir, signature_keys=[SIGNATURE]
        )
        if quantize != "none":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            c.target_spec.supported_types = [tf.float16]
        if quantize in CALIBRATED:
            c.representative_dataset = representative_dataset(
                calibration, f"Calibrating {quantize}"
            )
        if quantize == "int8_io":
            c.inference_input_type = tf.uint8
            c.inference_output_type = tf.uint8
        return c

    info = {"float_fallback": False}
    if quantize not in CALIBRATED:
        return converter().convert(), info
    strict = converter()
    strict.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        return _calibrate_and_convert(strict), info
    except ConverterError as e:
        if quantize == "int8_io":
            raise ConfigError(
                "int8_io needs every op quantizable to int8, but conversion "
                f"failed; use --quantize int8 instead. Received: {e}"
            ) from None
    mixed = converter()
    mixed.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    info["float_fallback"] = True
    return _calibrate_and_convert(mixed), info


def _calibrate_and_convert(converter):
    with warnings.catch_warnings():
        # The calibrator runs TensorFlow's own deprecated interpreter; its
        # deprecation notice is not something a user of tfiqa can act on.
        warnings.filterwarnings(
            "ignore",
            message=r"\s*Warning: tf.lite.Interpreter is deprecated",
            category=UserWarning,
        )
        return converter.convert()


def io_specs(content):
    """Input and output specs of a converted model's `score` signature."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    runner = interpreter.get_signature_runner(SIGNATURE)
    specs = []
    for details in (runner.get_input_details(), runner.get_output_details()):
        name, d = next(iter(details.items()))
        specs.append(
            {
                "name": name,
                "dtype": np.dtype(d["dtype"]).name,
                "shape": [int(v) for v in d["shape_signature"]],
                "quantization": quantization(d),
            }
        )
    return specs[0], specs[1]


def export_tflite(source_dir, path, quantize, calibration=None):
    """Converts and writes one `.tflite` file atomically; returns its info."""
    content, info = convert(source_dir, quantize, calibration)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
    info["input"], info["output"] = io_specs(content)
    info["bytes"] = len(content)
    return info


def export_tflite_variants(model, paths, input_size, calibration=None):
    """Writes one `.tflite` per quantization.

    Args:
        model: keras.Model.
        paths: dict quantize -> output path.
        input_size: int or None (dynamic).
        calibration: uint8 array (N, c, c, 3) for int8/int8_io.

    Returns:
        dict quantize -> info (see `export_tflite`).
    """
    # The conversion source lives next to the outputs, not in /tmp: a killed
    # export leaves it where the next export into that folder removes it.
    folder = os.path.dirname(os.path.abspath(next(iter(paths.values()))))
    os.makedirs(folder, exist_ok=True)
    remove_stale_work_dirs(folder, WORK_PREFIX)
    tmp = make_work_dir(folder, WORK_PREFIX)
    try:
        source = write_conversion_source(model, os.path.join(tmp, "source"), input_size)
        return {
            q: export_tflite(source, path, q, calibration) for q, path in paths.items()
        }
    finally:
        shutil.rmtree(tmp)
