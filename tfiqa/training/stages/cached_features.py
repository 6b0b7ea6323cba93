"""The finetune stage's cached features: one `PooledFeatureCache` per model,
the views validation and test read from it, and metrics computed from it.

While the backbone stays frozen for the whole stage, scoring cached pooled
features gives the model's scores without a backbone pass.
"""

import os
import weakref

import numpy as np


def val_crops(ctx):
    """Crops per validation image: the scoring policy's when the cache holds
    them for free (backbone frozen throughout), else the centre crop."""
    cfg, crops = ctx.config.stages.finetune, ctx.config.model.scoring.crops
    if cfg.freeze_backbone == "all" and cfg.cache_views == crops:
        return crops
    return 1


# One cache per model: building one hashes every backbone weight and traces
# the feature function, and the warm-up, validation and test all use it.
_CACHES = weakref.WeakKeyDictionary()


def feature_cache(ctx):
    """The stage's `PooledFeatureCache` (folder: `stages.finetune.cache_dir`)."""
    from tfiqa.training.transfer import PooledFeatureCache

    cfg = ctx.config.stages.finetune
    folder = (
        ctx.config.resolve_path(cfg.cache_dir)
        if cfg.cache_dir
        else os.path.join(ctx.workdir, "cache", "features")
    )
    key = (folder, int(ctx.config.data.crop_size))
    cache = _CACHES.get(ctx.model)
    if cache is None or cache[0] != key:
        cache = (key, PooledFeatureCache(ctx.model, *key))
        _CACHES[ctx.model] = cache
    return cache[1]


def cached_views(ctx, cache, records, crops):
    """Cached features (N, crops, width) of `crops` evaluation crops per image.

    The centre crop (crops=1) is the first of the training views when those
    include it (1 or 5 views), so it costs no backbone pass of its own.
    """
    from tfiqa.data.crops import crop_positions

    paths = [r["image_path"] for r in records]
    views = ctx.config.stages.finetune.cache_views
    if crops == 1 and views and crop_positions(views)[0] == (0.5, 0.5):
        return cache.features(paths, views)[:, :1]
    return cache.features(paths, crops)


def cached_metrics(ctx, records, crops):
    """Metrics of `records` scored from `crops` cached crops per image."""
    from tfiqa.metrics import evaluate_predictions
    from tfiqa.training.transfer import head_scores

    pooled = cached_views(ctx, feature_cache(ctx), records, crops)
    predictions = head_scores(ctx.model, pooled)
    targets = np.asarray([r["mos"] for r in records], np.float32)
    metrics = evaluate_predictions(predictions, targets)
    metrics = {
        k: float(metrics[k]) for k in ("srcc", "plcc", "krcc", "rmse", "plcc_raw")
    }
    metrics["scored_from"] = "feature cache"
    return metrics
