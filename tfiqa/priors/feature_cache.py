"""Pooled backbone features of pristine crops at every distortion type and level.

A quality prior trained on a frozen backbone only ever sees the backbone's
pooled features, so the distorted images are passed through it once: for
each source image, one centre crop, its pristine version and every
(type, level) of it, pooled into one row each. The rows of a source are
stored as one `.npz` file named by the source's bytes, in a folder named by
every parameter the rows depend on (the extractor's key, the crop size, the
types, levels and seed), written atomically, so an interrupted run resumes
and a changed parameter never reads stale rows.

Row layout of a source, (1 + types * levels, width): row 0 is the pristine
crop, row `1 + t * len(levels) + (l - 1)` is type `t` at level `l`.

Example:
```python
extract, key = lite0_extractor(crop_size=224)
cache = DistortedFeatureCache("out/priors", extract, key, types=["jpeg"])
rows = cache.features(paths)  # (N, 1 + 5, width)
```
"""

import hashlib
import json
import logging
import os
import time

import numpy as np

from tfiqa.errors import ConfigError, DataError
from tfiqa.files import atomic_path

logger = logging.getLogger("tfiqa.priors")

LEVELS = (1, 2, 3, 4, 5)
LITE0_LEVELS = ("P2", "P3", "P4", "P5")
LITE0_POOLING = ("avg", "std")


def row_index(type_index, level, levels=LEVELS):
    """The row of (type number, level) in a source's rows (row 0: pristine)."""
    return 1 + type_index * len(levels) + levels.index(level)


def lite0_extractor(crop_size=224, weights="imagenet"):
    """(extract, key) for the frozen ImageNet EfficientNet-Lite0.

    `extract(uint8 (N, c, c, 3)) -> float32 (N, width)`: mean and std pooling
    of P2..P5, in the multi-level head's layout. `key` names the backbone,
    levels, pooling, crop size and a digest of the weights.
    """
    import tensorflow as tf

    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy
    from tfiqa.training.transfer import fingerprint

    model = IQAModel(
        backbone="efficientnet_lite0",
        weights=weights,
        levels=list(LITE0_LEVELS),
        pooling=LITE0_POOLING,
        scoring_policy=ScoringPolicy(crop_size=crop_size),
    )

    @tf.function(reduce_retracing=True)
    def pooled(images):
        maps = model.features(images)
        return model.head.pool({level: maps[level] for level in LITE0_LEVELS})

    def extract(images):
        return pooled(tf.convert_to_tensor(images, tf.uint8)).numpy()

    key = {
        "backbone": "efficientnet_lite0",
        "levels": list(LITE0_LEVELS),
        "pooling": list(LITE0_POOLING),
        "weights": fingerprint(model, crop_size),
    }
    return extract, key


def distorted_crops(crop, types, levels, seed):
    """uint8 (1 + types * levels, c, c, 3): the crop, then each type's levels.

    One seed per source serves every type and level (common random numbers:
    the level scales one random pattern, so levels are nested).
    """
    import tensorflow as tf

    from tfiqa.distortions import apply_distortion

    image = tf.convert_to_tensor(crop, tf.float32) / 255.0
    out = [np.asarray(crop, np.uint8)]
    for name in types:
        for level in levels:
            distorted = apply_distortion(name, image, level, seed)
            out.append(np.uint8(np.round(distorted.numpy() * 255.0)))
    return np.stack(out)


class DistortedFeatureCache:
    """Per-source pooled features of a centre crop at every type and level.

    Args:
        folder: str. Cache root; rows go to `folder/<parameters digest>/`.
        extract: callable uint8 (N, c, c, 3) -> float32 (N, width).
        key: dict (JSON-serialisable). Identifies `extract` (backbone,
            weights, pooling); part of the folder name.
        types: list of registered distortion names.
        levels: tuple of levels in 1..5.
        crop_size: int. Side of the centre crop.
        seed: int. Mixed with each source's digest into its distortion seed.
    """

    def __init__(
        self, folder, extract, key, types, levels=LEVELS, crop_size=224, seed=0
    ):
        from tfiqa.distortions import DISTORTIONS

        if not types:
            raise ConfigError(
                "DistortedFeatureCache needs at least one type. Received: []"
            )
        for name in types:
            DISTORTIONS.get(name)  # unknown names: ConfigError with a suggestion
        self.extract = extract
        self.types = list(types)
        self.levels = tuple(int(level) for level in levels)
        self.crop_size = int(crop_size)
        self.seed = int(seed)
        self.parameters = {
            "key": key,
            "types": self.types,
            "levels": list(self.levels),
            "crop_size": self.crop_size,
            "seed": self.seed,
        }
        text = json.dumps(self.parameters, sort_keys=True)
        self.folder = os.path.join(folder, hashlib.sha1(text.encode()).hexdigest()[:16])
        os.makedirs(self.folder, exist_ok=True)
        manifest = os.path.join(self.folder, "parameters.json")
        if not os.path.isfile(manifest):
            with atomic_path(manifest) as tmp, open(tmp, "w") as f:
                f.write(text + "\n")

    def _source(self, path):
        """(cache file, distortion seed) of a source, from its bytes."""
        try:
            with open(path, "rb") as f:
                digest = hashlib.sha1(f.read()).hexdigest()
        except OSError as e:
            raise DataError(f"Cannot read source image: {path}") from e
        seed = (int(digest[:8], 16) + self.seed * 7919) % (2**31 - 1)
        return os.path.join(self.folder, digest + ".npz"), seed

    def _compute(self, path, seed):
        from tfiqa.data.crops import eval_crops
        from tfiqa.data.image_io import load_image

        crop = eval_crops(load_image(path), self.crop_size, 1, path)[0]
        images = distorted_crops(crop, self.types, self.levels, seed)
        return np.asarray(self.extract(images), np.float32)

    def features(self, paths, log_every=10):
        """float32 (N, 1 + types * levels, width): rows of every source."""
        out, computed, start = [], 0, time.time()
        for index, path in enumerate(paths):
            file, seed = self._source(path)
            if os.path.isfile(file):
                with np.load(file) as saved:
                    out.append(saved["rows"])
                continue
            rows = self._compute(path, seed)
            with atomic_path(file) as tmp, open(tmp, "wb") as f:
                np.savez(f, rows=rows)
            out.append(rows)
            computed += 1
            if log_every and computed % log_every == 0:
                logger.info(
                    "Distorted features of %d/%d sources (%.1f s each)",
                    index + 1,
                    len(paths),
                    (time.time() - start) / computed,
                )
        if not out:
            raise DataError("No source images to cache. Received: 0 paths")
        return np.stack(out)
