"""SavedModel export: TF Serving layout, both signatures, the predict fn."""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image, python_stdout
from PIL import Image

from tfiqa.data.image_io import decode_image
from tfiqa.errors import DataError
from tfiqa.export import export_model
from tfiqa.inference.backends.keras import model_scorer
from tfiqa.inference.backends.saved_model import (
    resolve_saved_model_dir,
    saved_model_bytes_fn,
    saved_model_predict_fn,
)
from tfiqa.scoring_policy import ScoringPolicy

from .helpers import SIZE, keras_scores, tiny_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    out = tmp_path_factory.mktemp("export")
    manifest = export_model(
        model, str(out), formats=["saved_model"], input_size=SIZE, name="iqa", version=3
    )
    return model, out, manifest


def encode(image, fmt):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


def test_tf_serving_layout(exported):
    _, out, manifest = exported
    version_dir = out / "iqa" / "3"
    assert manifest["saved_model"] == str(version_dir)
    assert (version_dir / "saved_model.pb").is_file()
    config = (out / "models.config").read_text()
    assert 'name: "iqa"' in config
    assert 'base_path: "/models/iqa"' in config
    assert 'model_platform: "tensorflow"' in config
    sidecar = json.loads((version_dir / "assets.extra" / "tfiqa.json").read_text())
    assert sidecar["format"] == "saved_model"
    assert sidecar["input"]["shape"] == [-1, SIZE, SIZE, 3]
    assert sidecar["output"]["direction"] == "higher is better"
    # Nothing half-written is left behind, and a server user can read it.
    assert sorted(os.listdir(out / "iqa")) == ["3"]
    assert os.stat(version_dir / "saved_model.pb").st_mode & 0o044 == 0o044
    saved = json.loads((out / "export.json").read_text())
    assert saved["input_size"] == SIZE


def test_signatures(exported):
    _, out, _ = exported
    loaded = tf.saved_model.load(str(out / "iqa" / "3"))
    assert set(loaded.signatures) == {"serving_default", "score_uint8"}
    bytes_sig = loaded.signatures["serving_default"]
    spec = bytes_sig.structured_input_signature[1]["image_bytes"]
    assert spec.dtype == tf.string
    assert list(bytes_sig.structured_outputs) == ["score"]
    uint8_spec = loaded.signatures["score_uint8"].structured_input_signature[1]
    assert uint8_spec["images"].dtype == tf.uint8
    assert uint8_spec["images"].shape.as_list() == [None, SIZE, SIZE, 3]


def test_predict_fn_matches_keras(exported):
    model, out, _ = exported
    images = np.stack([make_image((SIZE, SIZE), seed=s) for s in range(4)])
    for path in (out, out / "iqa", out / "iqa" / "3"):
        fn, input_size = saved_model_predict_fn(str(path))
        assert input_size == SIZE
        scores = fn(images)
        assert scores.shape == (4,)
        np.testing.assert_allclose(scores, keras_scores(model, images), atol=1e-5)
    # Other sizes follow the export policy: centre crop, never resize.
    big = make_image((SIZE + 10, SIZE + 6), seed=9)
    crop = big[5 : 5 + SIZE, 3 : 3 + SIZE]
    np.testing.assert_allclose(
        fn(big[None]), keras_scores(model, crop[None]), atol=1e-5
    )


def test_image_bytes_scores_as_predict_does(exported):
    model, out, manifest = exported
    fn = saved_model_bytes_fn(str(out))
    # The policy of the export: 5 crops of 32 px, small images upscaled.
    assert manifest["scoring"]["crop_size"] == SIZE
    scorer = model_scorer(model, ScoringPolicy.from_dict(manifest["scoring"]))
    png_image = make_image((SIZE, SIZE), seed=1)
    jpeg = encode(make_image((SIZE + 8, SIZE + 4), seed=2), "JPEG")
    small_gray = make_image((20, 24), seed=3)[..., 0]
    scores = fn([encode(png_image, "PNG"), jpeg, encode(small_gray, "PNG")])
    decoded = decode_image(jpeg)  # what tfiqa predict decodes
    gray_rgb = np.repeat(small_gray[..., None], 3, axis=-1)
    expected = scorer.score([png_image, decoded, gray_rgb])
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    # BMP decodes to the same pixels as PNG; 1-bit BMP is accepted too.
    bmp_scores = fn([encode(png_image, "BMP")])
    np.testing.assert_allclose(bmp_scores, scores[:1], atol=1e-6)
    mono = make_image((SIZE + 3, SIZE + 9), seed=4)[..., 0] > 128
    one_bit = Image.fromarray(mono).convert("1")
    buffer = io.BytesIO()
    one_bit.save(buffer, format="BMP")
    assert buffer.getvalue()[28] == 1  # bits per pixel
    pixels = np.asarray(one_bit.convert("RGB"))
    np.testing.assert_allclose(fn([buffer.getvalue()]), scorer.score(pixels), atol=1e-5)


def test_image_bytes_empty_batch_and_pixel_cap(exported):
    _, out, _ = exported
    fn = saved_model_bytes_fn(str(out))
    assert fn([]).shape == (0,)
    good = encode(make_image((SIZE, SIZE)), "PNG")
    # A PNG header claiming 20000 x 20000 pixels: rejected before decoding.
    huge = bytearray(good)
    huge[16:24] = (20000).to_bytes(4, "big") * 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
        fn([bytes(huge)])
    strip = bytearray(good)
    strip[16:24] = (5000).to_bytes(4, "big") + (1).to_bytes(4, "big")
    with pytest.raises(tf.errors.InvalidArgumentError, match="aspect ratio"):
        fn([bytes(strip)])
    assert fn([good]).shape == (1,)


def test_image_bytes_rejects_garbage(exported):
    _, out, _ = exported
    fn = saved_model_bytes_fn(str(out))
    good = encode(make_image((SIZE, SIZE)), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn([good, b"this is not an image"])
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn([good[: len(good) // 3]])  # truncated PNG
    # The model still serves the next request.
    assert fn([good]).shape == (1,)


def test_reexport_replaces_version(exported, tmp_path):
    model, _, _ = exported
    export_model(model, str(tmp_path), formats=["saved_model"], input_size=SIZE)
    other = tiny_model(seed=0, bias=3.0)
    export_model(other, str(tmp_path), formats=["saved_model"], input_size=SIZE)
    fn, _ = saved_model_predict_fn(str(tmp_path))
    image = make_image((SIZE, SIZE))[None]
    np.testing.assert_allclose(fn(image), keras_scores(other, image), atol=1e-5)
    assert sorted(os.listdir(tmp_path / "tfiqa")) == ["1"]


def test_dynamic_size_export(tmp_path):
    model = tiny_model()
    manifest = export_model(model, str(tmp_path), formats=["saved_model"], input_size=0)
    fn, input_size = saved_model_predict_fn(str(tmp_path))
    assert input_size is None
    for size in [(33, 47), (64, 40)]:
        image = make_image(size)[None]
        np.testing.assert_allclose(fn(image), keras_scores(model, image), atol=1e-5)
    images = [make_image((40, 36), seed=1), make_image((50, 62), seed=2)]
    scores = saved_model_bytes_fn(str(tmp_path))([encode(i, "PNG") for i in images])
    # serving_default applies the policy (the default 224 px crops here).
    policy = ScoringPolicy.from_dict(manifest["scoring"])
    expected = model_scorer(model, policy).score(images)
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_resolve_errors(tmp_path):
    with pytest.raises(DataError, match="Not a SavedModel"):
        resolve_saved_model_dir(str(tmp_path))
    for name in ("a", "b"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(DataError, match="several models"):
        resolve_saved_model_dir(str(tmp_path))
    (tmp_path / "a" / "7").mkdir()
    (tmp_path / "a" / "7" / "saved_model.pb").write_bytes(b"")
    assert resolve_saved_model_dir(str(tmp_path / "a")).endswith(os.path.join("a", "7"))


BAD_UINT8_SHAPES = [(64, 64, 3), (64, 64), (SIZE,), (1, SIZE, SIZE, 3, 1)]
BAD_UINT8_SHAPES += [(1, 64, 64, 3), (1, SIZE, SIZE, 1)]  # not the fixed crop


def test_score_uint8_rejects_bad_shapes_without_aborting(exported):
    # In a subprocess: a TF check that aborts would kill pytest itself.
    _, out, _ = exported
    expected = f"(batch, {SIZE}, {SIZE}, 3)"
    code = f"""
import tensorflow as tf
signature = tf.saved_model.load({str(out / "iqa" / "3")!r}).signatures["score_uint8"]
for shape in {BAD_UINT8_SHAPES!r}:
    try:
        signature(images=tf.zeros(shape, tf.uint8))
        print(shape, "scored")
    except tf.errors.InvalidArgumentError as e:
        print(shape, "score_uint8 takes" in e.message and {expected!r} in e.message)
empty = signature(images=tf.zeros((0, {SIZE}, {SIZE}, 3), tf.uint8))
print("empty", empty["score"].shape)
"""
    lines = python_stdout(code).splitlines()
    assert lines == [f"{shape} True" for shape in BAD_UINT8_SHAPES] + ["empty (0,)"]
