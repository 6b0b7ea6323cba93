"""Tiny synthetic cache rows: content plus a per-type quality direction."""

import numpy as np

from tfiqa.priors.feature_cache import LEVELS, row_index


def synthetic_rows(sources=12, types=4, width=8, shared=1.0, seed=0):
    """float32 (sources, 1 + types * 5, width).

    Each row is a content vector of its source plus `level` times a direction
    of its type; `shared` weights a direction common to all types (what a
    prior could transfer to a new type).
    """
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(sources, width))
    common = rng.normal(size=width)
    directions = rng.normal(size=(types, width)) + shared * common
    rows = np.repeat(content[:, None], 1 + types * len(LEVELS), axis=1)
    for t in range(types):
        for level in LEVELS:
            rows[:, row_index(t, level)] += 0.7 * level * directions[t]
    return rows.astype(np.float32)
