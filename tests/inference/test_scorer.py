import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image
from PIL import Image

import tfiqa
from tfiqa.data.crops import eval_crops
from tfiqa.errors import ImageError, TfiqaError
from tfiqa.inference import Scorer, load
from tfiqa.models.scoring import predict, upscale_to_crop
from tfiqa.scoring_policy import ScoringPolicy

from .conftest import CROP


@pytest.fixture(scope="module")
def scorer(model_path):
    return load(model_path)


def direct(model, batch):
    return np.asarray(model(np.asarray(batch), training=False))


def test_load_reads_crop_size_and_range(scorer):
    assert scorer.backend == "keras"
    assert scorer.policy.crop_size == CROP
    assert scorer.score_range == (0.0, 1.0)


def test_tfiqa_load_is_the_inference_loader():
    assert tfiqa.load is load


def test_scorer_is_callable_and_says_higher_is_better(scorer, tiny_model):
    image = make_image((40, 52), seed=3)
    assert scorer.higher_is_better is True
    np.testing.assert_allclose(scorer(image, crops=2), scorer.score(image, crops=2))
    np.testing.assert_allclose(
        scorer(image, full=True), direct(tiny_model, image[None]), rtol=1e-5
    )
    assert tfiqa.Scorer is Scorer


def test_importing_tfiqa_does_not_import_tensorflow():
    code = (
        "import sys, tfiqa; assert 'tensorflow' not in sys.modules; tfiqa.__version__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_and_unknown_models_are_user_errors(tmp_path):
    with pytest.raises(TfiqaError, match="Model not found"):
        load(tmp_path / "nope.keras")
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(TfiqaError, match="Unknown model format"):
        load(other)


def test_corrupt_keras_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TfiqaError, match="bad.keras"):
        load(bad)


def test_full_mode_matches_the_model(scorer, tiny_model):
    image = make_image((40, 56), seed=1)
    got = scorer.score(image, full=True)
    assert got.shape == (1,) and got.dtype == np.float32
    np.testing.assert_allclose(got, direct(tiny_model, image[None]), rtol=1e-5)


def test_crops_average_the_deterministic_crops(scorer, tiny_model):
    image = make_image((48, 64), seed=2)
    for n in (1, 5):
        expected = direct(tiny_model, eval_crops(image, CROP, n)).mean()
        np.testing.assert_allclose(scorer.score(image, crops=n), [expected], rtol=1e-5)
    np.testing.assert_allclose(scorer.score(image), scorer.score(image, crops=5))


def test_paths_arrays_and_tensors_agree(scorer, tmp_path):
    images = [make_image((48, 48), seed=s) for s in range(3)]
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    from_paths = scorer.score(paths, crops=2)
    assert from_paths.shape == (3,)
    batch = np.stack(images)
    np.testing.assert_allclose(scorer.score(batch, crops=2), from_paths, rtol=1e-6)
    np.testing.assert_allclose(
        scorer.score(tf.constant(batch), crops=2), from_paths, rtol=1e-6
    )
    np.testing.assert_allclose(
        scorer.score(batch.astype("float32"), crops=2), from_paths, rtol=1e-6
    )
    np.testing.assert_allclose(scorer.score(paths[1], crops=2), from_paths[1:2])


def test_mixed_sizes_in_full_mode_and_small_batches(scorer):
    images = [make_image(size, seed=i) for i, size in enumerate([(32, 40), (48, 36)])]
    images.append(images[0])
    together = scorer.score(images, full=True, batch_size=1)
    alone = [scorer.score(image, full=True)[0] for image in images]
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    assert together[0] == pytest.approx(together[2])


def test_image_smaller_than_the_crop_is_upscaled_by_default(scorer, tiny_model):
    small = make_image((20, 60), seed=3)
    # Short side 20 -> 32, long side 60 -> ceil(60 * 32 / 20) = 96.
    upscaled = upscale_to_crop(small, CROP).numpy()
    assert upscaled.shape == (32, 96, 3)
    expected = direct(tiny_model, eval_crops(upscaled, CROP, 5)).mean()
    np.testing.assert_allclose(scorer.score(small), [expected], rtol=1e-5)
    assert scorer.score(small)[0] != pytest.approx(scorer.score(small, full=True)[0])


def test_whole_rule_scores_a_small_image_at_its_own_size(tiny_model):
    policy = ScoringPolicy(crop_size=CROP, small_images="whole")
    scorer = Scorer(lambda b: predict(tiny_model, b), policy=policy)
    small = make_image((20, 60), seed=3)
    np.testing.assert_allclose(
        scorer.score(small), scorer.score(small, full=True), rtol=1e-6
    )
    fixed = Scorer(lambda b: predict(tiny_model, b), input_size=CROP, policy=policy)
    with pytest.raises(TfiqaError, match="small-image rule is 'whole'"):
        fixed.score(small)


def test_bad_arguments(scorer):
    image = make_image((40, 40))
    with pytest.raises(TfiqaError, match="either crops or full"):
        scorer.score(image, crops=2, full=True)
    with pytest.raises(TfiqaError, match="crops must be a positive"):
        scorer.score(image, crops=0)
    with pytest.raises(TfiqaError, match="shape"):
        scorer.score(np.zeros((40, 40), np.uint8))


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.nan, "finite"),
        (np.inf, "finite"),
        (-1.0, r"\[0, 255\]"),
        (255.5, r"\[0, 255\]"),
        (300, r"\[0, 255\]"),
        ("unit", r"floats in \[0, 1\]"),
    ],
)
def test_arrays_outside_0_255_are_refused(scorer, pixels, message):
    image = make_image((40, 40)).astype("float32")
    if pixels == "unit":
        bad = image / 255
    else:
        bad = image.copy()
        bad[3, 5, 1] = pixels
        bad = bad.astype("int16" if pixels == 300 else "float32")
    for inputs in (bad, bad[None], [bad], tf.constant(bad)):
        with pytest.raises(TfiqaError, match=message):
            scorer.score(inputs, crops=1)


def test_accepted_arrays_score_as_uint8(scorer):
    image = make_image((40, 40))
    expected = scorer.score(image, crops=1)
    for inputs in (image.astype("float64"), image.astype("int32"), image + 0.2):
        np.testing.assert_allclose(scorer.score(inputs, crops=1), expected)


def test_unreadable_path_raises_image_error(scorer, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageError):
        scorer.score([str(bad)])


def mean_pixel(batch):
    # (N, H, W, 3) -> (N,): a stand-in model for the fixed-input-size path.
    assert batch.dtype == np.uint8
    return batch.reshape(len(batch), -1).mean(-1) / 255.0


def test_fixed_size_backend_crops_and_refuses_full():
    calls = []

    def fn(batch):
        calls.append(batch.shape)
        return mean_pixel(batch)

    policy = ScoringPolicy(crop_size=99)
    scorer = Scorer(fn, input_size=16, policy=policy, backend="tflite", path="m")
    assert scorer.policy.crop_size == 16
    image = make_image((32, 48), seed=4)
    expected = mean_pixel(eval_crops(image, 16, 5)).mean()
    np.testing.assert_allclose(scorer.score(image), [expected], rtol=1e-6)
    assert set(calls) == {(5, 16, 16, 3)}
    with pytest.raises(TfiqaError, match="fixed 16x16"):
        scorer.score(image, full=True)
    # Too small for the crop: upscaled to it, never zero-padded.
    small = make_image((8, 10), seed=5)
    upscaled = upscale_to_crop(small, 16).numpy()
    expected = mean_pixel(eval_crops(upscaled, 16, 5)).mean()
    np.testing.assert_allclose(scorer.score(small), [expected], rtol=1e-6)


def test_score_each_isolates_images_the_policy_cannot_score(tmp_path):
    """A fixed-input model with the "whole" small-image rule cannot score a
    small image: that image gets its error, the others their scores, also
    when it is alone in its batch (`score_files` yields its row)."""
    scorer = Scorer(
        lambda batch: np.asarray(batch, np.float32).mean(axis=(1, 2, 3)) / 255,
        input_size=16,
        policy=ScoringPolicy(crop_size=16, crops=1, small_images="whole"),
    )
    big, small = make_image((20, 24), seed=1), make_image((8, 8), seed=2)
    results = scorer.score_each([big, small, big])
    assert [e is None for _, e in results] == [True, False, True]
    assert results[0][0] == pytest.approx(float(scorer.score(big)[0]))
    assert results[1][0] is None and isinstance(results[1][1], TfiqaError)
    assert scorer.score_each([small])[0][0] is None
    path = str(tmp_path / "small.png")
    Image.fromarray(small).save(path)
    (row,) = scorer.score_files([path], batch_size=1)
    assert row["score"] is None and "smaller than that" in row["error"]
