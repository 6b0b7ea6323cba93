"""Tiny scoring models and image folders for the export tests."""

import keras
import numpy as np
from conftest import make_image
from PIL import Image

SIZE = 32  # the input size the export tests export at


def tiny_model(seed=0, bias=0.0):
    """A small functional scorer with the IQAModel interface: pixels in
    [0, 255] (B, H, W, 3) of any size -> sigmoid score (B,).

    `bias` shifts the logit, giving a deliberately different model.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3), dtype="float32")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=seed),
        bias_initializer=keras.initializers.Constant(bias),
    )(x)
    return keras.Model(inputs, keras.layers.Reshape(())(x), name="tiny_scorer")


def export_tflite(model, out, quantize, calibration_dir, input_size=SIZE, **options):
    """`export_model` to TFLite only, calibrated on the images in `calibration_dir`."""
    from tfiqa.export import export_model

    return export_model(
        model,
        str(out),
        formats=["tflite"],
        quantize=list(quantize),
        input_size=input_size,
        calibration_dir=str(calibration_dir),
        **options,
    )


def keras_scores(model, images):
    return np.asarray(model(np.asarray(images, np.float32), training=False))


def write_images(folder, count=10, seed=0):
    """JPEG and PNG images of varied sizes (some smaller than 32 px)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = (30 + 7 * i, 44 - i)
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(make_image(size, seed=seed + i)).save(folder / f"im_{i}.{ext}")
    return folder
