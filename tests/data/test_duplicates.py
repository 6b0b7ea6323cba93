"""Near-duplicate grouping: burst shots whose hashes disagree, different
scenes, blends, and twins across datasets."""

import os

import numpy as np
from PIL import Image

from tfiqa.data.readers import read_dataset
from tfiqa.data.readers.duplicates import (
    detail,
    group_datasets,
    group_near_duplicates,
    matching_pairs,
    thumbnail,
)


def banded_scene(seed, texture_seed=None, size=96):
    """A scene that changes from top to bottom (horizontal bands) under a
    fine texture of 3 px grains: neighbouring columns of a 9 x 8 thumbnail
    are nearly equal, so any flicker flips the bits of a difference hash
    while the picture stays the same. `texture_seed` (default `seed`) gives
    the texture: another one makes a different scene of the same layout."""
    rng = np.random.default_rng(seed)
    profile = rng.uniform(20, 235, 8)
    rows = np.interp(np.linspace(0, 7, size), np.arange(8), profile)
    bands = np.repeat(rows[:, None, None], size, axis=1).repeat(3, axis=2)
    grains = seed if texture_seed is None else texture_seed
    texture = np.random.default_rng(500 + grains).normal(
        0, 15, (size // 3, size // 3, 1)
    )
    return bands + texture.repeat(3, axis=0).repeat(3, axis=1)


def shot(scene, k, sigma=2.0):
    """Shot `k` of `scene`: its own sensor noise and a faint flicker across
    the columns (3 grey levels, phase `k` x pi), which sets the sign of
    every difference between neighbouring columns."""
    x = np.arange(scene.shape[1])
    flicker = 3.0 * np.sin(2 * np.pi * x / 21.0 + np.pi * k)[None, :, None]
    noise = np.random.default_rng(1000 + k).normal(0, sigma, scene.shape)
    return np.clip(scene + flicker + noise, 0, 255).round().astype(np.uint8)


def difference_hash(path):
    """A 64-bit difference hash (8 x 9 grayscale thumbnail, Krawetz 2013)."""
    with Image.open(path) as image:
        small = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, np.int16)
    return int(np.packbits(pixels[:, 1:] > pixels[:, :-1]).view(">u8")[0])


def save(folder, name, pixels, **options):
    folder.mkdir(exist_ok=True)
    Image.fromarray(pixels).save(folder / name, **options)
    return str(folder / name)


def records(paths):
    return [{"image_path": p, "ref_id": os.path.basename(p)} for p in paths]


def test_burst_shots_group_even_when_their_hashes_disagree(tmp_path):
    scene = banded_scene(0)
    paths = [save(tmp_path, f"burst{k}.png", shot(scene, k)) for k in range(3)]
    # Far beyond a hash threshold of 8 bits, yet the same picture.
    bits = bin(difference_hash(paths[0]) ^ difference_hash(paths[1])).count("1")
    assert bits > 8
    assert float(thumbnail(paths[0]) @ thumbnail(paths[1])) > 0.99
    # Also the same scene brightened and re-encoded.
    brighter = np.clip(scene + 12, 0, 255)
    paths.append(save(tmp_path, "bright.jpg", shot(brighter, 7), quality=80))
    others = [save(tmp_path, f"other{k}.png", shot(banded_scene(k), k)) for k in (1, 2)]
    grouped = group_near_duplicates(records(paths + others))
    refs = [r["ref_id"] for r in grouped]
    assert refs[:4] == ["burst0.png"] * 4
    assert refs[4:] == ["other1.png", "other2.png"]


def test_scenes_of_one_layout_but_other_detail_stay_apart(tmp_path):
    """Two horizons under the same sky correlate above 0.95 as thumbnails;
    their fine detail tells them apart."""
    paths = [
        save(tmp_path, "one.png", shot(banded_scene(5), 0)),
        save(tmp_path, "other.png", shot(banded_scene(5, texture_seed=6), 0)),
        save(tmp_path, "again.png", shot(banded_scene(5), 1)),
    ]
    thumbs = [thumbnail(p) for p in paths]
    assert float(thumbs[0] @ thumbs[1]) > 0.95
    assert float(detail(paths[0]) @ detail(paths[1])) < 0.25
    refs = [r["ref_id"] for r in group_near_duplicates(records(paths))]
    assert refs == ["one.png", "other.png", "one.png"]


def test_different_scenes_and_their_blend_stay_apart(tmp_path):
    """A blend of two scenes resembles both (correlation about 0.7), so a
    rule that merged on resemblance would chain the two scenes through it;
    every merge needs a confirmed pair of its own."""
    a, b = banded_scene(3), np.transpose(banded_scene(4), (1, 0, 2))
    paths = [
        save(tmp_path, "a.png", shot(a, 0)),
        save(tmp_path, "blend.png", shot((a + b) / 2, 1)),
        save(tmp_path, "b.png", shot(b, 2)),
    ]
    thumbs = [thumbnail(p) for p in paths]
    assert 0.5 < float(thumbs[0] @ thumbs[1]) < 0.9
    assert 0.5 < float(thumbs[1] @ thumbs[2]) < 0.9
    refs = [r["ref_id"] for r in group_near_duplicates(records(paths))]
    assert refs == ["a.png", "blend.png", "b.png"]


def test_matching_pairs_finds_every_pair_a_full_search_finds():
    rng = np.random.default_rng(0)
    scenes = rng.normal(size=(40, 1024)).astype(np.float32)
    # Smooth the scenes so that the coarse filter is not trivially empty.
    scenes = scenes.reshape(40, 32, 32).cumsum(1).cumsum(2).reshape(40, -1)
    copies = scenes[rng.integers(0, 40, 60)]
    # Noise from 0.02 to 0.6 of the signal: correlations from 0.9998 to 0.86.
    # Half of it is constant over 4 x 4 blocks, where the coarse filter
    # sees the whole difference and any looser bound would miss pairs.
    sigma = rng.uniform(0.02, 0.6, (60, 1)) * copies.std(1, keepdims=True)
    fine = rng.normal(size=(30, 1024))
    coarse = rng.normal(size=(30, 8, 1, 8, 1)) * np.ones((1, 1, 4, 1, 4))
    noise = np.concatenate([fine, coarse.reshape(30, 1024)])
    vectors = np.concatenate([scenes, copies + noise * sigma])
    vectors -= vectors.mean(1, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float32)
    gram = vectors @ vectors.T
    for threshold in (0.9, 0.95, 0.99):
        rows, columns = np.nonzero(np.triu(gram >= threshold, 1))
        expected = set(zip(rows.tolist(), columns.tolist(), strict=True))
        found = matching_pairs(vectors, threshold)
        assert {(i, j) for _, i, j in found} == expected
        assert len(expected) >= 8
        similarities = [s for s, _, _ in found]
        assert similarities == sorted(similarities, reverse=True)


def test_group_datasets_joins_twins_across_folders_only(tmp_path):
    dev, more = tmp_path / "dev", tmp_path / "more"
    for folder, names in ((dev, ["x.png", "y.png"]), (more, ["x.png", "z.png"])):
        save(folder, names[0], shot(banded_scene(10 + len(names[1])), 0))
        folder.mkdir(exist_ok=True)
    # The same name in both folders holds different scenes ...
    save(dev, "x.png", shot(banded_scene(20), 0))
    save(more, "x.png", shot(banded_scene(21), 0))
    # ... while dev's y.png and more's z.png are two shots of one scene.
    save(dev, "y.png", shot(banded_scene(22), 1))
    save(more, "z.png", shot(banded_scene(22), 2))
    for folder in (dev, more):
        names = sorted(p.name for p in folder.glob("*.png"))
        (folder / "mos.csv").write_text(
            "image,mos\n" + "".join(f"{n},0.5\n" for n in names)
        )
    parts = [read_dataset("csv", str(f), group_duplicates=False) for f in (dev, more)]
    grouped = group_datasets(parts)
    refs = [[r["ref_id"] for r in p] for p in grouped]
    assert refs == [["0:x.png", "0:y.png"], ["1:x.png", "0:y.png"]]
    assert [len(p) for p in grouped] == [2, 2]
    assert grouped[1][1]["image_path"] == parts[1][1]["image_path"]
