import numpy as np
import pytest
import tensorflow as tf

from tfiqa.data.crops import crop_positions, eval_crops
from tfiqa.errors import ConfigError, ImageError


def _ramp(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y, x, (x + y) % 256], axis=-1).astype(np.uint8)


def test_center_crop():
    crops = eval_crops(_ramp(40, 60), 20, 1)
    assert crops.shape == (1, 20, 20, 3) and crops.dtype == np.uint8
    assert crops[0, 0, 0, 0] == 10 and crops[0, 0, 0, 1] == 20


def test_five_crops_are_center_and_corners():
    image = _ramp(40, 60)
    crops = eval_crops(image, 20, 5)
    assert crops.shape == (5, 20, 20, 3)
    corners = {(int(c[0, 0, 0]), int(c[0, 0, 1])) for c in crops}
    assert corners == {(10, 20), (0, 0), (0, 40), (20, 0), (20, 40)}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 9])
def test_numpy_and_tensor_agree(n):
    image = _ramp(37, 53)
    expected = eval_crops(image, 16, n)
    got = eval_crops(tf.constant(image), 16, n)
    assert isinstance(got, tf.Tensor)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert len({c.tobytes() for c in expected}) == n  # all different


def test_errors():
    with pytest.raises(ImageError, match="Received: 10x30") as info:
        eval_crops(np.zeros((10, 30, 3), np.uint8), 16, 1, path="tiny.png")
    assert "tiny.png" in str(info.value)
    with pytest.raises(ConfigError, match="num_crops"):
        crop_positions(0)


def test_portrait_images_spread_crops_vertically():
    image = _ramp(60, 20)
    crops = eval_crops(image, 20, 3)
    assert [int(c[0, 0, 0]) for c in crops] == [0, 20, 40]
    np.testing.assert_array_equal(eval_crops(tf.constant(image), 20, 3), crops)
