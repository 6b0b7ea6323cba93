"""The numpy resize gives the pixels TF's resize gives, without TensorFlow."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfiqa.data.resize import resize_short_side


def tf_resize_short_side(image, side, downscale=True):
    from tfiqa.models.scoring import resize_short_side as graph_resize

    return graph_resize(tf.constant(image), side, downscale).numpy()


def smooth_image(shape, seed):
    """A photo-like image: random blobs, so rounding meets real gradients."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, shape[0] // 8), max(2, shape[1] // 8), 3))
    big = tf.image.resize(small[np.newaxis], shape[:2], method="bicubic")[0]
    noise = rng.normal(0, 8, (*shape[:2], 3))
    return np.clip(np.round(big.numpy() + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "shape, side", [((30, 12), 32), ((7, 9), 224), ((45, 45), 64), ((63, 20), 64)]
)
def test_enlarging_gives_tf_pixels_exactly(shape, side):
    image = smooth_image((*shape, 3), seed=sum(shape))
    got = resize_short_side(image, side)
    np.testing.assert_array_equal(got, tf_resize_short_side(image, side))
    assert min(got.shape[:2]) == side


@pytest.mark.parametrize(
    "shape, side",
    [((600, 800), 512), ((1000, 513), 512), ((333, 777), 100), ((90, 91), 89)],
)
def test_shrinking_gives_tf_pixels_up_to_float_rounding(shape, side):
    image = smooth_image((*shape, 3), seed=sum(shape))
    got = resize_short_side(image, side).astype(int)
    want = tf_resize_short_side(image, side).astype(int)
    assert got.shape == want.shape and min(got.shape[:2]) == side
    # Sums in another order can land a pixel on the other side of .5.
    assert np.abs(got - want).max() <= 1
    assert np.mean(got != want) < 1e-3


def test_antialiasing_removes_a_pattern_plain_sampling_keeps():
    stripes = np.zeros((400, 400, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes average to grey when shrunk
    out = resize_short_side(stripes, 100)[:, 1:-1]  # borders: one-sided taps
    np.testing.assert_array_equal(out, 128)
    assert np.all(stripes[:, ::4] == 255)  # what sampling every 4th column sees


def test_same_side_and_no_downscale_return_the_image_itself():
    image = smooth_image((50, 80, 3), seed=1)
    assert resize_short_side(image, 50) is image
    assert resize_short_side(image, 40, downscale=False) is image


def test_the_numpy_scoring_path_does_not_import_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from tfiqa.scoring_policy import ScoringPolicy\n"
        "policy = ScoringPolicy(crop_size=32, crops=3, resize=48)\n"
        "crops = policy.crops_of(np.zeros((40, 90, 3), np.uint8))\n"
        "assert crops.shape == (3, 32, 32, 3), crops.shape\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
