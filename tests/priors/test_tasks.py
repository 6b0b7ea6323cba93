"""Tasks from cached rows: labels by level, disjoint sources, LODO types."""

import numpy as np
import pytest

from tfiqa.errors import ConfigError
from tfiqa.priors.feature_cache import row_index
from tfiqa.priors.tasks import TaskSampler, level_labels, lodo_types, standardiser

from .synthetic import synthetic_rows


def tagged_rows(sources=6, types=3):
    """Rows whose features say which (source, type, level) they are."""
    rows = np.zeros((sources, 1 + types * 5, 3), np.float32)
    for s in range(sources):
        for t in range(types):
            for level in range(1, 6):
                rows[s, row_index(t, level)] = (s, t, level)
    return rows


def test_labels_fall_with_level():
    np.testing.assert_allclose(level_labels([1, 2, 3, 4, 5]), [1, 0.75, 0.5, 0.25, 0])


def test_held_out_type_is_never_drawn_for_training():
    types = ["a", "b", "c"]
    rows = tagged_rows()
    for held in types:
        train = lodo_types(types, held)
        sampler = TaskSampler(rows, [types.index(t) for t in train])
        rng = np.random.default_rng(0)
        batch = sampler.meta_batch(30, 5, 10, rng)
        drawn = np.concatenate([batch["support_x"], batch["query_x"]], axis=1)
        x, _, _ = sampler.ranking_batch(30, 3, rng)
        seen = set(drawn[..., 1].ravel()) | set(x[..., 1].ravel())
        assert types.index(held) not in seen
        assert seen == {types.index(t) for t in train}


def test_unknown_held_out_type_is_an_error():
    with pytest.raises(ConfigError, match="Received: 'z'"):
        lodo_types(["a", "b"], "z")
    with pytest.raises(ConfigError, match="not one of"):
        TaskSampler(tagged_rows(), [0, 1]).episode(2, 2, np.random.default_rng(0), 2)


def test_episode_labels_match_levels_and_sources_are_disjoint():
    sampler = TaskSampler(tagged_rows(sources=8), [0, 1, 2])
    episode = sampler.episode(10, 10, np.random.default_rng(1))
    for part in ("support", "query"):
        x, y = episode[f"{part}_x"], episode[f"{part}_y"]
        np.testing.assert_allclose(y, level_labels(x[:, 2]))
        assert set(x[:, 1]) == {episode["type"]}
    assert not set(episode["support_x"][:, 0]) & set(episode["query_x"][:, 0])


def test_standardiser_ignores_the_held_out_type():
    rows = synthetic_rows(types=3)
    rows_changed = rows.copy()
    rows_changed[:, [row_index(2, level) for level in range(1, 6)]] += 100.0
    for a, b in zip(
        standardiser(rows, [0, 1]), standardiser(rows_changed, [0, 1]), strict=True
    ):
        np.testing.assert_allclose(a, b)
