"""Distortion-specific tasks drawn from cached feature rows.

A task is one distortion type; its examples are (source, level) pairs of
that type, labelled by level: `(5 - level) / 4`, 1 for the mildest level and
0 for the strongest. Why levels and not a full-reference pseudo-MOS? The
levels of one type on one source are nested and strictly worsening (the
distortion tests prove it), so within a source the order is exact; across
sources a level is the same distortion strength. An absolute MS-SSIM score
of different crops instead varies with content (a flat crop keeps a high
MS-SSIM under blur), so a head trained on it learns content, not quality.
Scores are compared within one type (SRCC), so the levels of different
types need not be on one scale.

Support and query examples of an episode come from disjoint sources, so
adaptation cannot succeed by recognising the source.
"""

import numpy as np

from tfiqa.errors import ConfigError
from tfiqa.priors.feature_cache import LEVELS, row_index


def level_labels(levels):
    """float32 labels of levels: 1 at level 1, 0 at level 5."""
    return (5.0 - np.asarray(levels, np.float32)) / 4.0


def lodo_types(types, held_out):
    """The training types when `held_out` is left out (ConfigError if unknown)."""
    if held_out not in types:
        raise ConfigError(
            f"The held-out type must be one of the cached types {list(types)}. "
            f"Received: {held_out!r}"
        )
    return [t for t in types if t != held_out]


def standardiser(rows, type_indices, levels=LEVELS):
    """(mean, std) per feature over the pristine rows and the rows of
    `type_indices` (the training types only: a held-out type informs nothing)."""
    keep = [0] + [row_index(t, level, levels) for t in type_indices for level in levels]
    flat = rows[:, keep].reshape(-1, rows.shape[-1])
    mean, std = flat.mean(0), flat.std(0)
    return mean, np.where(std > 1e-6, std, 1.0).astype(np.float32)


class TaskSampler:
    """Episodes of distortion-specific tasks on cached rows of some sources.

    Args:
        rows: float32 (sources, 1 + types * levels, width), standardised.
        type_indices: list of int. The types (columns of the cache) tasks are
            drawn from.
        levels: the cache's levels.
    """

    def __init__(self, rows, type_indices, levels=LEVELS):
        if len(rows) < 2:
            raise ConfigError(f"Tasks need >= 2 sources. Received: {len(rows)}")
        if not type_indices:
            raise ConfigError("Tasks need >= 1 type. Received: []")
        self.rows = rows
        self.type_indices = list(type_indices)
        self.levels = tuple(levels)

    def examples(self, type_index, sources, count, rng):
        """(x (count, width), y (count,), levels (count,)): `count` random
        (source, level) pairs of one type, without repeats while they last."""
        pairs = [(s, level) for s in sources for level in self.levels]
        chosen = rng.permutation(len(pairs))
        if count > len(pairs):
            chosen = np.concatenate(
                [chosen, rng.integers(0, len(pairs), count - len(pairs))]
            )
        chosen = [pairs[i] for i in chosen[:count]]
        index = [row_index(type_index, level, self.levels) for _, level in chosen]
        x = self.rows[[s for s, _ in chosen], index]
        levels = np.array([level for _, level in chosen])
        return x, level_labels(levels), levels

    def episode(self, support, query, rng, type_index=None):
        """One task: support and query examples from disjoint source halves.

        Returns dict: type, support_x, support_y, query_x, query_y,
        query_levels.
        """
        if type_index is None:
            type_index = self.type_indices[rng.integers(len(self.type_indices))]
        elif type_index not in self.type_indices:
            raise ConfigError(
                f"Type {type_index} is not one of this sampler's types "
                f"{self.type_indices}. Received: {type_index}"
            )
        order = rng.permutation(len(self.rows))
        half = len(order) // 2
        sx, sy, _ = self.examples(type_index, order[:half], support, rng)
        qx, qy, ql = self.examples(type_index, order[half:], query, rng)
        return {
            "type": type_index,
            "support_x": sx,
            "support_y": sy,
            "query_x": qx,
            "query_y": qy,
            "query_levels": ql,
        }

    def meta_batch(self, tasks, support, query, rng):
        """`tasks` episodes stacked on axis 0 (arrays (T, S, width) ...)."""
        episodes = [self.episode(support, query, rng) for _ in range(tasks)]
        return {k: np.stack([e[k] for e in episodes]) for k in episodes[0]}

    def ranking_batch(self, tasks, sources_per_task, rng):
        """Every level of one type on a few sources, per task.

        Returns (x (T, sources * levels, width), y (T, sources * levels)
        labels, group (T, sources * levels) source number within the task).
        """
        xs, ys, groups = [], [], []
        for _ in range(tasks):
            type_index = self.type_indices[rng.integers(len(self.type_indices))]
            few = sources_per_task > len(self.rows)  # tiny runs: repeat sources
            chosen = rng.choice(len(self.rows), sources_per_task, replace=few)
            index = [row_index(type_index, level, self.levels) for level in self.levels]
            xs.append(self.rows[chosen][:, index].reshape(-1, self.rows.shape[-1]))
            ys.append(np.tile(level_labels(self.levels), sources_per_task))
            groups.append(np.repeat(np.arange(sources_per_task), len(self.levels)))
        return np.stack(xs), np.stack(ys), np.stack(groups)
