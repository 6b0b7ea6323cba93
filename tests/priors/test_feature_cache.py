"""The distorted-feature cache: row layout, resuming, keyed by its parameters."""

import os

import numpy as np
import pytest
from conftest import make_image

from tfiqa.errors import ConfigError, DataError
from tfiqa.priors.feature_cache import DistortedFeatureCache, row_index


class CountingExtractor:
    """Mean colour of each image; counts the images it was given."""

    def __init__(self):
        self.images = 0

    def __call__(self, images):
        self.images += len(images)
        return np.asarray(images, np.float32).mean(axis=(1, 2))


@pytest.fixture
def sources(tmp_path):
    from PIL import Image

    paths = []
    for i in range(2):
        path = tmp_path / f"s{i}.png"
        Image.fromarray(make_image((40, 36), seed=i)).save(path)
        paths.append(str(path))
    return paths


def test_rows_hold_pristine_then_every_type_and_level(tmp_path, sources):
    extract = CountingExtractor()
    types = ["brighten", "darken"]
    cache = DistortedFeatureCache(
        tmp_path / "c", extract, {"x": 1}, types, crop_size=32
    )
    rows = cache.features(sources)
    assert rows.shape == (2, 1 + 2 * 5, 3)
    assert extract.images == 2 * 11
    brighter = rows[:, [row_index(0, level) for level in range(1, 6)]].mean(-1)
    darker = rows[:, [row_index(1, level) for level in range(1, 6)]].mean(-1)
    assert np.all(np.diff(brighter, axis=1) > 0) and np.all(np.diff(darker, axis=1) < 0)
    assert np.all(brighter[:, 0] > rows[:, 0].mean(-1))


def test_an_interrupted_cache_resumes_and_new_parameters_start_anew(tmp_path, sources):
    first = CountingExtractor()
    cache = DistortedFeatureCache(
        tmp_path / "c", first, {"x": 1}, ["brighten"], crop_size=32
    )
    rows = cache.features(sources[:1])
    again = CountingExtractor()
    resumed = DistortedFeatureCache(
        tmp_path / "c", again, {"x": 1}, ["brighten"], crop_size=32
    )
    both = resumed.features(sources)
    assert again.images == 6  # only the second source was computed
    np.testing.assert_array_equal(both[0], rows[0])
    for changed in (
        dict(key={"x": 2}, types=["brighten"], crop_size=32),
        dict(key={"x": 1}, types=["darken"], crop_size=32),
        dict(key={"x": 1}, types=["brighten"], crop_size=24),
    ):
        other = DistortedFeatureCache(tmp_path / "c", CountingExtractor(), **changed)
        assert other.folder != cache.folder
    assert sorted(os.listdir(cache.folder))[-1] == "parameters.json"
    assert not [
        f for f in os.listdir(cache.folder) if f.startswith(".")
    ]  # no leftovers


def test_bad_types_and_sources_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="blurr"):
        DistortedFeatureCache(tmp_path, CountingExtractor(), {}, ["blurr"])
    cache = DistortedFeatureCache(tmp_path, CountingExtractor(), {}, ["jpeg"])
    with pytest.raises(DataError, match="missing.png"):
        cache.features([str(tmp_path / "missing.png")])
