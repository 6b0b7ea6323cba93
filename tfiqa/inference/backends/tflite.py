"""`.tflite` files, scored with LiteRT alone: TensorFlow is never imported.

Every file `tfiqa export` writes has one signature, `score`, with input
`image` (B, H, W, 3) RGB pixels in [0, 255] and output `score` (B,); an int8
input or output is (de)quantized here with the scale and zero point the file
records.

Example:
```python
fn, input_size = tflite_predict_fn("out/tflite/tfiqa_int8.tflite")
scores = fn(images_uint8)  # (N,)
```
"""

import os

import numpy as np

from tfiqa.data.crops import fit_to_size
from tfiqa.errors import DataError
from tfiqa.inference.backends.sidecar import read_sidecar, scorer_settings
from tfiqa.inference.scorer import Scorer

SIGNATURE = "score"
INPUT_NAME = "image"
OUTPUT_NAME = "score"


def quantization(details):
    """{"scale", "zero_point"} of a quantized tensor, or None for a float one."""
    scale, zero_point = details["quantization"]
    if not scale:
        return None
    return {"scale": float(scale), "zero_point": int(zero_point)}


def tflite_predict_fn(path, num_threads=None):
    """A scoring function for an exported `.tflite` file.

    Args:
        path: str. The `.tflite` file.
        num_threads: int or None. Interpreter threads (None: runtime default).

    Returns:
        (fn, input_size): `fn(uint8 array (N, H, W, 3)) -> np.ndarray (N,)`
        float32 scores (integer outputs dequantized); `input_size` is the
        fixed square input side, or None when the model takes any size. With
        a fixed size, other sizes are centre-cropped / zero-padded to it.
    """
    from ai_edge_litert.interpreter import Interpreter

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"TFLite model not found. Received: {path}")
    try:
        interpreter = Interpreter(model_path=path, num_threads=num_threads)
    except ValueError as e:
        raise DataError(f"Cannot load TFLite model {path}. Received: {e}") from None
    signatures = interpreter.get_signature_list()
    name = SIGNATURE if SIGNATURE in signatures else next(iter(signatures), None)
    if name is None:
        raise DataError(f"TFLite model has no signature. Received: {path}")
    runner = interpreter.get_signature_runner(name)
    input_name, input_details = next(iter(runner.get_input_details().items()))
    output_name, output_details = next(iter(runner.get_output_details().items()))
    shape = input_details["shape_signature"]
    input_size = int(shape[1]) if shape[1] > 0 else None
    in_dtype = np.dtype(input_details["dtype"])
    in_quant = quantization(input_details)
    out_quant = quantization(output_details)

    def fn(images):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[np.newaxis]
        if input_size and images.shape[1:3] != (input_size, input_size):
            images = fit_to_size(np.asarray(images, np.uint8), input_size)
        x = images.astype(np.float32)
        if in_quant:
            x = x / in_quant["scale"] + in_quant["zero_point"]
        if np.issubdtype(in_dtype, np.integer):
            info = np.iinfo(in_dtype)
            x = np.clip(np.rint(x), info.min, info.max)
        out = runner(**{input_name: x.astype(in_dtype)})[output_name]
        out = out.astype(np.float32)
        if out_quant:
            out = (out - out_quant["zero_point"]) * out_quant["scale"]
        return out.reshape(-1)

    fn.interpreter = interpreter  # keeps the interpreter alive with `fn`
    return fn, input_size


def tflite_scorer(path):
    """A `Scorer` for a `.tflite` file, under the policy of its sidecar."""
    fn, input_size = tflite_predict_fn(path)
    sidecar_path = os.path.splitext(path)[0] + ".json"
    settings = scorer_settings(read_sidecar(sidecar_path), input_size, sidecar_path)
    return Scorer(fn, backend="tflite", path=path, **settings)
