import numpy as np
import pytest
import tensorflow as tf
from distortion_images import natural_image

from tfiqa.distortions import (
    DISTORTIONS,
    apply_distortion,
    distortion_set,
    fast_types,
    resolve_types,
)
from tfiqa.distortions.measures import (
    level_label,
    ms_ssim,
    num_scales,
    pseudo_mos,
    psnr,
)
from tfiqa.errors import ConfigError

ALL_TYPES = distortion_set("kadid") + distortion_set("live")
# One type per family runs by default; the rest of the monotonicity sweep is slow.
FAST_SUBSET = {
    "gaussian_blur",
    "color_saturation_2",
    "jpeg",
    "white_noise",
    "darken",
    "pixelate",
    "contrast_change",
    "live_white_noise",
}


def as_float(image):
    return tf.constant(image, tf.float32) / 255.0


def test_sets_and_registry():
    kadid = distortion_set("kadid")
    assert len(kadid) == 25 and len(set(kadid)) == 25
    assert len(distortion_set("live")) == 4
    for name in ALL_TYPES:
        d = DISTORTIONS.get(name)
        assert d.name == name
        assert d.measure in ("msssim", "psnr")
        assert len(d.params) == 5
    python_only = {n for n in ALL_TYPES if DISTORTIONS.get(n).python_only}
    assert python_only == {"jpeg2000", "live_jpeg2000"}
    assert "jpeg2000" not in fast_types("kadid")
    assert len(fast_types("kadid")) == 24
    assert fast_types("live") == ["live_gaussian_blur", "live_white_noise", "live_jpeg"]
    assert resolve_types("kadid", []) == fast_types("kadid")
    assert resolve_types("kadid", ["jpeg2000"]) == ["jpeg2000"]


def test_errors_name_the_problem():
    image = tf.zeros((8, 8, 3))
    with pytest.raises(ConfigError, match="Did you mean 'gaussian_blur'"):
        apply_distortion("gausian_blur", image, 1, 0)
    with pytest.raises(ConfigError, match="level=6"):
        apply_distortion("jpeg", image, 6, 0)
    with pytest.raises(ConfigError, match="Received: 'tid'"):
        distortion_set("tid")
    with pytest.raises(ConfigError, match="Did you mean"):
        resolve_types("kadid", ["jpg"])


@pytest.mark.parametrize("name", ALL_TYPES)
def test_shape_range_and_determinism(name):
    # Odd, non-square and smaller than several filters' support.
    image = as_float(natural_image(40, seed=3)[:37, :29])
    a = apply_distortion(name, image, 5, seed=11)
    b = apply_distortion(name, image, 5, seed=11)
    assert a.shape == (37, 29, 3) and a.dtype == tf.float32
    assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 1.0
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Every level changes the image.
    assert float(tf.reduce_max(tf.abs(a - image))) > 0.0
    level1 = apply_distortion(name, image, 1, seed=11)
    assert float(tf.reduce_max(tf.abs(level1 - image))) > 0.0


def test_seed_changes_random_types_only():
    image = as_float(natural_image(48, seed=1))
    for name in ("white_noise", "motion_blur", "color_block", "jitter"):
        a = apply_distortion(name, image, 3, seed=1)
        b = apply_distortion(name, image, 3, seed=2)
        assert float(tf.reduce_max(tf.abs(a - b))) > 0.0, name
    a = apply_distortion("gaussian_blur", image, 3, seed=1)
    b = apply_distortion("gaussian_blur", image, 3, seed=2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_runs_inside_tf_data_and_accepts_uint8():
    images = np.stack([natural_image(32, seed=s) for s in range(3)])

    def distort(image, seed):
        out = apply_distortion("motion_blur", image, 2, seed)
        return apply_distortion("jpeg", out, 2, tf.stack([seed, seed]))

    ds = tf.data.Dataset.from_tensor_slices((images, tf.range(3, dtype=tf.int64)))
    out = list(ds.map(distort).as_numpy_iterator())
    assert len(out) == 3 and out[0].shape == (32, 32, 3)
    eager = apply_distortion(
        "jpeg", apply_distortion("motion_blur", images[0], 2, 0), 2, [0, 0]
    )
    np.testing.assert_allclose(out[0], eager.numpy(), atol=1e-6)


def test_python_only_type_runs_in_tf_data():
    images = np.stack([natural_image(32, seed=s) for s in range(2)])
    ds = tf.data.Dataset.from_tensor_slices(images).map(
        lambda im: apply_distortion("jpeg2000", im, 3, 0)
    )
    out = list(ds.as_numpy_iterator())
    assert out[0].shape == (32, 32, 3)


def full_reference(reference, distorted, measure):
    """The measure a `Distortion.measure` names ("msssim" or "psnr")."""
    return {"psnr": psnr, "msssim": ms_ssim}[measure](reference, distorted)


def _sweep(name, images):
    """(images, 5) full-reference scores, level 1..5."""
    measure = DISTORTIONS.get(name).measure
    rows = []
    for i, image in enumerate(images):
        outs = tf.stack(
            [apply_distortion(name, image, lv, seed=i) for lv in range(1, 6)]
        )
        rows.append(full_reference(tf.stack([image] * 5), outs, measure).numpy())
    return np.array(rows)


@pytest.mark.parametrize(
    "name",
    [
        n if n in FAST_SUBSET else pytest.param(n, marks=pytest.mark.slow)
        for n in ALL_TYPES
    ],
)
def test_severity_strictly_increases_with_level(name):
    images = [as_float(natural_image(64, seed=s)) for s in range(3)]
    scores = _sweep(name, images)
    assert np.all(np.diff(scores, axis=1) < 0), f"{name}: {np.round(scores, 4)}"


def test_measures():
    image = as_float(natural_image(64, seed=0))
    assert num_scales(64, 64) == 3 and num_scales(224, 224) == 5
    assert num_scales(8, 8) == 1
    np.testing.assert_allclose(float(ms_ssim(image, image)), 1.0, atol=1e-5)
    np.testing.assert_allclose(float(pseudo_mos(image, image)), 1.0, atol=1e-4)
    assert float(full_reference(image, image, "psnr")) == 100.0
    noisy = apply_distortion("white_noise", image, 5, 0)
    value = float(pseudo_mos(image, noisy))
    assert 0.0 <= value < 1.0
    np.testing.assert_allclose(
        level_label(tf.constant([0, 1, 5])).numpy(), [1.0, 5 / 6, 1 / 6], rtol=1e-6
    )
