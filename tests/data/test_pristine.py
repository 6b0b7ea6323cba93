import numpy as np
import pytest
from PIL import Image

from tfiqa.data.image_io import load_image
from tfiqa.data.pristine import generate_pristine, list_images
from tfiqa.errors import DataError


def test_list_images_recursive_sorted(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    for name in ["b/c/z.JPG", "a.png", "b/y.tif", ".hidden.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    found = list_images(tmp_path)
    assert found == sorted(str(tmp_path / n) for n in ["a.png", "b/y.tif", "b/c/z.JPG"])


def test_list_images_empty_or_missing(tmp_path):
    with pytest.raises(DataError, match="No images"):
        list_images(tmp_path)
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "missing")


def test_generate_pristine_is_structured_and_seeded(tmp_path):
    paths = generate_pristine(tmp_path / "p", count=3, size=(48, 64), seed=1)
    assert len(paths) == 3 and list_images(tmp_path / "p") == paths
    images = [load_image(p) for p in paths]
    assert all(im.shape == (48, 64, 3) for im in images)
    # Structure: plenty of distinct colours and real edges, not noise only.
    for im in images:
        gray = im.astype(float).mean(-1)
        assert len(np.unique(im.reshape(-1, 3), axis=0)) > 200
        assert np.abs(np.diff(gray, axis=1)).max() > 30
        assert np.abs(np.diff(gray, axis=1)).mean() < 20
    again = generate_pristine(tmp_path / "q", count=3, size=(48, 64), seed=1)
    np.testing.assert_array_equal(load_image(again[2]), images[2])
    other = generate_pristine(tmp_path / "r", count=1, size=(48, 64), seed=2)
    assert not np.array_equal(load_image(other[0]), images[0])
    assert Image.open(paths[0]).format == "PNG"
