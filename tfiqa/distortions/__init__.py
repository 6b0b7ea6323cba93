"""Synthetic distortions: KADID-10k's 25 types and RankIQA's 4 LIVE-style types.

Importing this package registers every type in `DISTORTIONS`.
"""

from tfiqa.distortions import (  # noqa: E402,F401  (importing registers)
    blur,
    brightness,
    color,
    compression,
    live,
    noise,
    sharpness,
    spatial,
)
from tfiqa.distortions.registry import (
    DISTORTION_SETS,
    DISTORTIONS,
    LEVELS,
    Distortion,
    apply_distortion,
    as_seed,
    cpu_only,
    distortion_set,
    fast_types,
    register_distortion,
    resolve_types,
)

__all__ = [
    "DISTORTIONS",
    "DISTORTION_SETS",
    "LEVELS",
    "Distortion",
    "apply_distortion",
    "as_seed",
    "cpu_only",
    "distortion_set",
    "fast_types",
    "register_distortion",
    "resolve_types",
]
