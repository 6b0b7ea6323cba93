"""Score images with an exported tfiqa model, without tfiqa installed.

What a deployment does with the output of `tfiqa export`:

- a SavedModel folder (`<output>/<name>/<version>`): needs only TensorFlow.
  Its `serving_default` signature (what TF Serving runs) takes the encoded
  files and applies the model's scoring policy in the graph;
- a `.tflite` file: needs only LiteRT (`ai-edge-litert`), numpy and Pillow.
  The app follows the `scoring` policy of the sidecar JSON next to the file
  (docs/deployment.md, "Using the TFLite file on a phone"): upscale an image
  smaller than the crop, cut the crops without resizing, average the scores.

Usage:
    python export/serve_example.py export/out/tfiqa/1 photo1.jpg photo2.png
    python export/serve_example.py export/out/tflite/tfiqa_int8.tflite photos/*.jpg

Prints `image,score` lines (higher is better).
"""

import json
import math
import os
import sys

import numpy as np


def score_saved_model(model_dir, image_paths):
    """Scores of encoded image files through `serving_default`."""
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    files = []
    for path in image_paths:
        with open(path, "rb") as f:
            files.append(f.read())
    return serve(image_bytes=tf.constant(files))["score"].numpy().tolist()


def crop_offsets(height, width, crop, crops):
    """Top-left corners of the policy's crops: the centre for 1, the centre
    and the corners for 5, else a grid (rows along the shorter side)."""
    if crops == 1:
        spots = [(0.5, 0.5)]
    elif crops == 5:
        spots = [(0.5, 0.5), (0, 0), (0, 1), (1, 0), (1, 1)]
    else:
        rows = int(math.floor(math.sqrt(crops)))
        cols = math.ceil(crops / rows)
        along = [np.linspace(0, 1, n) if n > 1 else [0.5] for n in (rows, cols)]
        spots = [(a, b) for a in along[0] for b in along[1]][:crops]
    portrait = height > width  # the first value runs along the shorter side
    offsets = []
    for short, long in spots:
        fy, fx = (long, short) if portrait else (short, long)
        offsets.append((round(fy * (height - crop)), round(fx * (width - crop))))
    return offsets


def _bilinear_taps(size_out, size_in):
    """Source rows (or columns) and weights of a half-pixel-centred bilinear
    resize, as TensorFlow's `tf.image.resize` computes them."""
    scale = np.float32(size_in) / np.float32(size_out)  # float32, as TF does
    x = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - 0.5
    low = np.floor(x)
    lerp = (x - low).astype(np.float32)
    low_i = np.clip(low, 0, size_in - 1).astype(int)
    high_i = np.clip(np.ceil(x), 0, size_in - 1).astype(int)
    return low_i, high_i, lerp


def upscaled(image, crop):
    """Bilinear upscale (aspect kept) until the short side equals `crop`;
    larger images are returned as they are."""
    height, width = image.shape[:2]
    short = min(height, width)
    if short >= crop:
        return image
    # The long side rounds up, so it never falls below the crop.
    new_h, new_w = (
        crop if n == short else -(-n * crop // short) for n in image.shape[:2]
    )
    y0, y1, fy = _bilinear_taps(new_h, height)
    x0, x1, fx = _bilinear_taps(new_w, width)
    pixels = image.astype(np.float32)
    fx = fx[None, :, None]
    top = pixels[y0][:, x0] + (pixels[y0][:, x1] - pixels[y0][:, x0]) * fx
    bottom = pixels[y1][:, x0] + (pixels[y1][:, x1] - pixels[y1][:, x0]) * fx
    out = top + (bottom - top) * fy[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def score_tflite(model_path, image_paths):
    """Scores of image files through a `.tflite` file and its sidecar."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    with open(os.path.splitext(model_path)[0] + ".json") as f:
        sidecar = json.load(f)
    crop, crops = sidecar["scoring"]["crop_size"], sidecar["scoring"]["crops"]
    quant_in = sidecar["input"]["quantization"]
    quant_out = sidecar["output"]["quantization"]
    runner = Interpreter(model_path).get_signature_runner("score")
    scores = []
    for path in image_paths:
        image = upscaled(np.asarray(Image.open(path).convert("RGB")), crop)
        batch = np.stack(
            [
                image[y : y + crop, x : x + crop]
                for y, x in crop_offsets(*image.shape[:2], crop, crops)
            ]
        ).astype(np.float32)  # (crops, crop, crop, 3), pixels 0..255
        if quant_in:  # int8_io: uint8 input (scale 1, zero point 0: raw bytes)
            batch = batch / quant_in["scale"] + quant_in["zero_point"]
            batch = np.clip(np.rint(batch), 0, 255).astype(np.uint8)
        out = runner(image=batch)["score"].astype(np.float32)
        if quant_out:
            out = quant_out["scale"] * (out - quant_out["zero_point"])
        scores.append(float(out.mean()))
    return scores


def score(model_path, image_paths):
    """Scores (floats, higher is better) of `image_paths` with an export."""
    if model_path.endswith(".tflite"):
        return score_tflite(model_path, image_paths)
    return score_saved_model(model_path, image_paths)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    for path, value in zip(argv[1:], score(argv[0], argv[1:]), strict=True):
        print(f"{path},{value:.6f}")


if __name__ == "__main__":
    main(sys.argv[1:])
