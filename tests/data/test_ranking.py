import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image
from PIL import Image

from tfiqa.data.pristine import split_sources
from tfiqa.data.ranking import ranking_dataset
from tfiqa.distortions import apply_distortion
from tfiqa.errors import ConfigError, DataError, ImageError


def _paths(folder):
    return sorted(str(p) for p in folder.iterdir())


def test_split_sources_disjoint_deterministic_and_complete():
    paths = [f"/data/a/img_{i}.png" for i in range(10)] + ["/data/b/img_3.jpg"]
    train, val = split_sources(paths, 0.2, seed=1)
    assert sorted(train + val) == sorted(paths)
    assert not set(train) & set(val)
    # The two files of source img_3 stay together.
    assert ("/data/b/img_3.jpg" in val) == ("/data/a/img_3.png" in val)
    assert (train, val) == split_sources(list(reversed(paths)), 0.2, seed=1)
    assert split_sources(paths, 0.2, seed=2) != (train, val)
    stems = {p.rsplit("/", 1)[1].split(".")[0] for p in val}
    assert len(stems) == 2
    # Tiny sets still give both sides something.
    assert [len(x) for x in split_sources(["/x/a.png", "/x/b.png"], 0.1, 0)] == [1, 1]
    assert split_sources(["/x/a.png"], 0.0, 0) == (["/x/a.png"], [])
    with pytest.raises(ConfigError, match="val_ratio=1.5"):
        split_sources(paths, 1.5, 0)
    with pytest.raises(DataError):
        split_sources([], 0.2, 0)


def _find(image, crop):
    """Top-left corner of `crop` inside `image` (exact match), or None."""
    c = crop.shape[0]
    for y in range(image.shape[0] - c + 1):
        for x in range(image.shape[1] - c + 1):
            if np.array_equal(image[y : y + c, x : x + c], crop):
                return y, x
    return None


def test_group_layout_and_shared_crop_position(image_folder):
    paths = _paths(image_folder)
    sources = {p: np.asarray(Image.open(p).convert("RGB")) for p in paths}
    ds = ranking_dataset(paths, ["darken"], 32, groups_per_batch=3, seed=0)
    images, labels = next(iter(ds))
    assert images.shape == (18, 32, 32, 3) and images.dtype == tf.uint8
    np.testing.assert_array_equal(labels["group"], np.repeat([0, 1, 2], 6))
    np.testing.assert_array_equal(labels["level"], np.tile(np.arange(6), 3))
    images = images.numpy()
    for g in range(3):
        group = images[g * 6 : g * 6 + 6]
        pristine = group[0]
        # Level 0 is an undistorted crop of one source image (PNGs are exact).
        png_hits = [
            p for p in paths if p.endswith(".png") and _find(sources[p], pristine)
        ]
        jpg = [p for p in paths if p.endswith(".jpg")]
        assert png_hits or jpg
        # darken is pointwise: equal to darkening the level-0 crop means the
        # same crop position for every level; quality falls with the level.
        for level in range(1, 6):
            expected = apply_distortion("darken", pristine, level, 0).numpy() * 255
            np.testing.assert_allclose(group[level], expected, atol=1.0)
        err = [np.mean((group[k].astype(float) - pristine) ** 2) for k in range(6)]
        assert np.all(np.diff(err) > 0)


def test_deterministic_and_seed_dependent(image_folder):
    paths = _paths(image_folder)
    types = ["white_noise", "mean_shift"]

    def first(seed):
        ds = ranking_dataset(paths, types, 24, groups_per_batch=2, seed=seed)
        return [b[0].numpy() for b in ds.take(1)]

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_levels_subset_without_pristine(image_folder):
    ds = ranking_dataset(
        _paths(image_folder),
        ["jpeg"],
        16,
        groups_per_batch=2,
        seed=0,
        levels=(5, 1, 3),
        include_pristine=False,
    )
    images, labels = next(iter(ds))
    assert images.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(labels["level"], [1, 3, 5, 1, 3, 5])
    with pytest.raises(ConfigError, match="levels"):
        ranking_dataset(_paths(image_folder), ["jpeg"], 16, 2, 0, levels=(0, 1))


def test_bad_inputs(tmp_path, image_folder):
    small = tmp_path / "small.png"
    Image.fromarray(make_image((20, 20))).save(small)
    with pytest.raises(ImageError, match="smaller than the crop"):
        ranking_dataset([str(small)], ["jpeg"], 32, 2, 0)
    with pytest.raises(ConfigError, match="Did you mean 'jpeg'"):
        ranking_dataset(_paths(image_folder), ["jpg"], 16, 2, 0)
    with pytest.raises(DataError):
        ranking_dataset([], ["jpeg"], 16, 2, 0)


def test_in_memory_cache_matches_decoding_and_order_option(tmp_path):
    # Sources of different sizes and orientations, so the flat in-memory
    # layout (offsets, row strides) is exercised.
    paths = []
    for i, size in enumerate([(40, 56), (56, 40), (48, 48)]):
        path = tmp_path / f"src_{i}.png"
        Image.fromarray(make_image(size, seed=i)).save(path)
        paths.append(str(path))
    types = ["white_noise", "pixelate"]

    def batches(**options):
        ds = ranking_dataset(paths, types, 24, groups_per_batch=2, seed=3, **options)
        return [images.numpy() for images, _ in ds.take(4)]

    cached, decoded = batches(cache_mb=64), batches(cache_mb=0)
    for x, y in zip(cached, decoded, strict=True):
        np.testing.assert_array_equal(x, y)
    # deterministic=False may reorder groups, never change them.
    groups = lambda bs: sorted(g.tobytes() for b in bs for g in np.split(b, 2))  # noqa: E731
    unordered = batches(cache_mb=64, deterministic=False)
    assert groups(unordered) == groups(cached)
