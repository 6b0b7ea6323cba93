import numpy as np
import pytest
import tensorflow as tf

from tfiqa.data.episodes import (
    _source_index,
    _task_of,
    records_episodes,
    task_episodes,
)
from tfiqa.errors import ConfigError, DataError


def _paths(folder):
    return sorted(str(p) for p in folder.iterdir())


def test_task_episodes_structure_and_pseudo_mos(image_folder):
    ds = task_episodes(
        _paths(image_folder),
        ["white_noise", "gaussian_blur", "jpeg"],
        crop_size=24,
        support_size=4,
        query_size=2,
        meta_batch_size=2,
        label="pseudo_mos",
        seed=0,
    )
    episode = next(iter(ds))
    assert episode["support_images"].shape == (2, 4, 24, 24, 3)
    assert episode["support_images"].dtype == tf.uint8
    assert episode["query_images"].shape == (2, 2, 24, 24, 3)
    assert episode["support_labels"].shape == (2, 4)
    assert episode["query_labels"].dtype == tf.float32
    labels = np.concatenate(
        [
            episode["support_labels"].numpy().ravel(),
            episode["query_labels"].numpy().ravel(),
        ]
    )
    assert np.all((labels >= 0) & (labels < 1)) and labels.std() > 0


def test_level_labels_and_determinism(image_folder):
    def make(seed):
        return task_episodes(
            _paths(image_folder), ["darken"], 16, 3, 2, 2, label="level", seed=seed
        )

    a = [e["support_labels"].numpy() for e in make(1).take(2)]
    b = [e["support_labels"].numpy() for e in make(1).take(2)]
    np.testing.assert_array_equal(a, b)
    allowed = 1 - np.arange(1, 6) / 6
    distance = np.abs(np.array(a)[..., None] - allowed).min(axis=-1)
    assert np.all(distance < 1e-5)
    with pytest.raises(ConfigError, match="label='mos'"):
        task_episodes(_paths(image_folder), ["jpeg"], 16, 2, 2, 1, label="mos")


def test_tasks_are_distinct_types_within_an_element():
    per_task, meta_batch, n_types = 5, 3, 4
    for element in range(4):
        first = element * meta_batch * per_task
        tasks = [
            int(
                _task_of(
                    tf.constant(first + t * per_task + k, tf.int64),
                    per_task,
                    meta_batch,
                    n_types,
                    seed=3,
                )
            )
            for t in range(meta_batch)
            for k in range(per_task)
        ]
        per = np.array(tasks).reshape(meta_batch, per_task)
        assert np.all(per == per[:, :1])  # one type per task
        assert len(set(per[:, 0])) == meta_batch  # distinct tasks


def _records(folder):
    paths = _paths(folder)
    # Two distortion labels with non-overlapping MOS, plus an authentic image.
    records = []
    for i, p in enumerate(paths[:4]):
        records.append(
            {
                "image_path": p,
                "mos": 0.1 + 0.01 * i,
                "distortion": "blur",
                "mos_raw": 0.0,
                "ref_id": "a",
                "level": 1,
            }
        )
    for i, p in enumerate(paths[4:]):
        records.append(
            {
                "image_path": p,
                "mos": 0.9 - 0.01 * i,
                "distortion": "noise",
                "mos_raw": 0.0,
                "ref_id": "b",
                "level": 1,
            }
        )
    records.append(
        {
            "image_path": paths[0],
            "mos": 0.5,
            "distortion": "",
            "mos_raw": 0.0,
            "ref_id": "c",
            "level": 0,
        }
    )
    return records


def test_records_episodes_one_distortion_per_task(image_folder):
    ds = records_episodes(_records(image_folder), 16, 3, 2, 2, seed=0)
    for episode in ds.take(3):
        assert episode["support_images"].shape == (2, 3, 16, 16, 3)
        labels = np.concatenate(
            [episode["support_labels"].numpy(), episode["query_labels"].numpy()], axis=1
        )
        for task in labels:
            assert np.all(task < 0.5) or np.all(task > 0.5)
        assert {bool(t[0] < 0.5) for t in labels} == {True, False}
    only = records_episodes(_records(image_folder), 16, 2, 1, 1, distortions=["noise"])
    assert np.all(next(iter(only))["support_labels"].numpy() > 0.5)
    with pytest.raises(ConfigError, match="Valid: blur, noise"):
        records_episodes(_records(image_folder), 16, 2, 1, 1, distortions=["jpeg"])
    with pytest.raises(DataError, match="distortion"):
        records_episodes(
            [{"image_path": "x", "mos": 0.5, "distortion": ""}], 16, 2, 1, 1
        )


def test_in_memory_cache_matches_decoding(image_folder):
    def images(cache_mb):
        ds = task_episodes(
            _paths(image_folder), ["jpeg"], 16, 2, 1, 2, seed=4, cache_mb=cache_mb
        )
        return next(iter(ds))["support_images"].numpy()

    np.testing.assert_array_equal(images(64), images(0))


def test_support_and_query_sources_are_disjoint_in_every_task():
    per_task, support = 7, 4
    for n_sources in (2, 3, 10):
        for task in range(20):
            sources = [
                int(
                    _source_index(
                        tf.constant(task * per_task + k, tf.int64),
                        per_task,
                        support,
                        n_sources,
                        seed=5,
                    )
                )
                for k in range(per_task)
            ]
            assert all(0 <= s < n_sources for s in sources)
            assert not set(sources[:support]) & set(sources[support:])


def test_records_episodes_never_share_a_reference_between_support_and_query(
    tmp_path,
):
    from PIL import Image

    records = []
    for i in range(8):
        path = str(tmp_path / f"flat_{i}.png")
        # A flat image whose value names its reference (two images per ref).
        Image.fromarray(np.full((20, 20, 3), 20 * (i // 2), np.uint8)).save(path)
        records.append(
            {"image_path": path, "mos": i / 8, "distortion": "d", "ref_id": i // 2}
        )
    ds = records_episodes(records, 16, 3, 2, 1, seed=1)
    for episode in ds.take(10):
        support = set(np.unique(episode["support_images"].numpy()))
        query = set(np.unique(episode["query_images"].numpy()))
        assert support and query and not support & query
    # One reference only: support and query are still different images.
    one_ref = [{**r, "ref_id": "same"} for r in records]
    for episode in records_episodes(one_ref, 16, 3, 2, 1, seed=1).take(10):
        support = set(episode["support_labels"].numpy().ravel())
        assert not support & set(episode["query_labels"].numpy().ravel())
