"""Per-distortion-type ranking diagnostic: does a model score stronger
distortions of the same photo lower?

Every image is distorted by every type at every level with the synthetic
distortion engine (`tfiqa.distortions`, one seed per image shared by its
levels, so the levels of a type are nested versions of one random pattern)
and scored. Per type the result holds:

- `srcc`: Spearman correlation between level and score within each image,
  averaged over the images, signed so that +1 means every stronger level
  scored worse (the right order), -1 means backwards and 0 means no order.
  An image whose scores are all equal across the levels counts as 0: a model
  that does not react to the distortion ranks nothing.
- `pairs_right`: fraction of adjacent-level pairs (level k, level k+1) of
  the same image where the stronger one scored strictly worse (ties are not
  right).
- `mean_scores`: the mean score at each level, beside the mean score of the
  undistorted images (`pristine_score`).

Example:
```python
import tfiqa
from tfiqa.evaluation.distortion_ranking import distortion_ranking

scorer = tfiqa.load("mobile-mnv3s")
result = distortion_ranking(scorer, images, types=["gaussian_blur", "jpeg"])
result["types"]["jpeg"]["srcc"]          # +1: ranks JPEG levels right
```
"""

import logging

import numpy as np
from scipy import stats

from tfiqa.errors import TfiqaError

log = logging.getLogger(__name__)

# Below this mean SRCC a type is reported as ranked barely or backwards.
WEAK_SRCC = 0.5


def all_types():
    """Every distortion type, in the order `tfiqa list distortions` shows."""
    from tfiqa.distortions import DISTORTION_SETS

    return [name for types in DISTORTION_SETS.values() for name in types]


def resolve_ranking_types(types):
    """None, "all", a comma list or a list of names -> validated list of types.

    Raises:
        UnknownNameError: a name is not a distortion type (the message lists
            the valid ones).
    """
    from tfiqa.distortions import resolve_types

    if types is None or types == "all":
        return all_types()
    if isinstance(types, str):
        types = [t.strip() for t in types.split(",") if t.strip()]
    if not types:
        raise TfiqaError("No distortion types given. Received: types=[]")
    return resolve_types(types=list(types))


def _check_levels(levels):
    from tfiqa.distortions import LEVELS

    levels = list(levels)
    if len(levels) < 2 or any(lv not in LEVELS for lv in levels):
        raise TfiqaError(
            f"levels must be at least two of {list(LEVELS)}. Received: levels={levels}"
        )
    if levels != sorted(set(levels)):
        raise TfiqaError(
            f"levels must be increasing and distinct. Received: levels={levels}"
        )
    return levels


def _scores(score_fn, batch):
    """score_fn on a uint8 (N, H, W, 3) batch -> float64 (N,), checked."""
    scores = np.asarray(score_fn(batch), np.float64).reshape(-1)
    if scores.shape[0] != len(batch) or not np.all(np.isfinite(scores)):
        raise TfiqaError(
            f"score_fn must return one finite score per image ({len(batch)}). "
            f"Received: {scores.tolist()}"
        )
    return scores


def _ordered_srcc(levels, scores, sign):
    """`sign` x SRCC(level, score); 0 when the scores do not vary."""
    if np.all(scores == scores[0]):
        return 0.0
    return float(sign * stats.spearmanr(levels, scores)[0])


def type_summary(levels, scores, higher_is_better=True):
    """The diagnostic of one type from its scores.

    Args:
        levels: list of int, increasing.
        scores: array (num_images, len(levels)).
        higher_is_better: bool. Direction of the scores.

    Returns:
        dict with `srcc`, `srcc_per_image`, `pairs_right` and `mean_scores`
        (level -> mean score).
    """
    scores = np.asarray(scores, np.float64)
    # Right order: scores fall with level when higher is better.
    sign = -1.0 if higher_is_better else 1.0
    per_image = [_ordered_srcc(levels, row, sign) for row in scores]
    steps = sign * np.diff(scores, axis=1)  # (images, levels - 1), > 0 is right
    return {
        "srcc": float(np.mean(per_image)),
        "srcc_per_image": per_image,
        "pairs_right": float(np.mean(steps > 0)),
        "mean_scores": {
            int(lv): float(m) for lv, m in zip(levels, scores.mean(0), strict=True)
        },
    }


def _distorted_batch(image, name, levels, seed):
    """uint8 (len(levels), H, W, 3): `image` distorted by `name` at `levels`."""
    from tfiqa.distortions import apply_distortion
    from tfiqa.distortions.ops import to_uint8

    return np.stack(
        [to_uint8(apply_distortion(name, image, lv, seed)).numpy() for lv in levels]
    )


def distortion_ranking(
    score_fn,
    images,
    types=None,
    levels=(1, 2, 3, 4, 5),
    seed=0,
    higher_is_better=None,
    log_every=50,
    on_type=None,
):
    """Scores every image at every level of every type; summarises per type.

    Args:
        score_fn: callable. uint8 array (N, H, W, 3) -> (N,) scores, e.g. a
            `Scorer` from `tfiqa.load(name)`.
        images: uint8 (H, W, 3) arrays (sizes may differ) or an (N, H, W, 3)
            array: the undistorted images.
        types: None or "all" (every type), a comma list or a list of names.
        levels: increasing ints in 1..5.
        seed: int. Image i is distorted with the seed (seed, i) at every
            type and level, so a run is reproducible.
        higher_is_better: bool or None. Direction of the scores; None takes
            `score_fn.higher_is_better` (True if it has none).
        log_every: int. Log progress every this many scored images.
        on_type: optional callable `(name, summary)` called as each type is
            done (to keep completed rows of a long run).

    Returns:
        dict: `types` (name -> `type_summary` dict), `pristine_score` (mean
        score of the undistorted images), `levels`, `num_images`, `seed`,
        `higher_is_better`.

    Raises:
        TfiqaError: unknown type (the message lists the types), bad levels,
            no images, or a score_fn that does not return one finite score
            per image.
    """
    import tensorflow as tf

    from tfiqa.inference.scorer import to_image_list

    names = resolve_ranking_types(types)
    levels = _check_levels(levels)
    images = to_image_list(images)
    if not images:
        raise TfiqaError("distortion_ranking needs at least one image. Received: 0")
    if higher_is_better is None:
        higher_is_better = bool(getattr(score_fn, "higher_is_better", True))
    seeds = [tf.constant([seed, i], tf.int64) for i in range(len(images))]
    pristine = [_scores(score_fn, image[np.newaxis])[0] for image in images]
    total = len(names) * len(images) * len(levels)
    done, summaries = 0, {}
    for name in names:
        rows = []
        for image, image_seed in zip(images, seeds, strict=True):
            batch = _distorted_batch(image, name, levels, image_seed)
            rows.append(_scores(score_fn, batch))
            done += len(levels)
            if done // log_every > (done - len(levels)) // log_every:
                log.info("Scored %d of %d distorted images (%s)", done, total, name)
        summaries[name] = type_summary(levels, rows, higher_is_better)
        if on_type is not None:
            on_type(name, summaries[name])
    return {
        "types": summaries,
        "pristine_score": float(np.mean(pristine)),
        "levels": levels,
        "num_images": len(images),
        "seed": seed,
        "higher_is_better": higher_is_better,
    }


def is_weak(srcc, threshold=WEAK_SRCC):
    """True if a type's `srcc` is below `threshold`: ranked barely or backwards.

    A mean of per-image SRCCs can land a rounding error below a threshold
    it equals (0.49999999999999994 for 0.5), which must not count.
    """
    return srcc < threshold - 1e-9


def weak_types(result, threshold=WEAK_SRCC):
    """(name, srcc) of the types ranked barely or backwards, worst first."""
    weak = [
        (n, s["srcc"])
        for n, s in result["types"].items()
        if is_weak(s["srcc"], threshold)
    ]
    return sorted(weak, key=lambda item: item[1])
