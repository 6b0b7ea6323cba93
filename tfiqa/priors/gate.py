"""The gate: is a prior's few-shot adaptation better than its 0-shot scores?

A prior is meant to be adapted with a few labels. Whether adapting helps
depends on the step size, so the scale of the inner step sizes is chosen on
validation tasks (validation sources, training types: the held-out type and
the test sources stay unseen), by the mean query SRCC within each task
(ties: lower query loss). Scale 0 is the 0-shot prior. A prior passes when
the chosen scale beats 0-shot on both the mean query loss and the mean
query SRCC; otherwise its adaptation is reported as failed and not used.

Example:
```python
tasks = validation_tasks(val_sampler, count=24, support=10, query=40, seed=0)
decision = gate_decision(rate_scores(prior, tasks))
decision["passed"], decision["scale"]
```
"""

import numpy as np

from tfiqa.errors import ConfigError
from tfiqa.metrics import srcc

SCALES = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def validation_tasks(sampler, count, support, query, seed=0):
    """`count` fixed episodes (the same for every prior they judge)."""
    rng = np.random.default_rng(seed)
    types = sampler.type_indices
    # Every type in turn, so that no type is judged on one task only.
    return [
        sampler.episode(support, query, rng, types[i % len(types)])
        for i in range(count)
    ]


def task_srcc(scores, labels):
    """SRCC of one task's scores; 0 for constant scores (they order nothing)."""
    value = srcc(scores, labels)
    return 0.0 if np.isnan(value) else value


def rate_scores(prior, tasks, scales=SCALES):
    """{scale: {"loss", "srcc"}}: means over `tasks` of the query MSE (of the
    sigmoid) and query SRCC after adapting at that scale (0: 0-shot)."""
    if 0.0 not in scales:
        raise ConfigError(
            f"The gate's scales must include 0 (0-shot). Received: {scales}"
        )
    per_scale = {float(s): {"loss": [], "srcc": []} for s in scales}
    for task in tasks:
        for scale in per_scale:
            adapted, _ = prior.adapt_and_score(
                task["support_x"], task["support_y"], task["query_x"], scale
            )
            scores = 0.5 * (1.0 + np.tanh(0.5 * adapted))  # the sigmoid, overflow-free
            per_scale[scale]["loss"].append(np.mean((scores - task["query_y"]) ** 2))
            per_scale[scale]["srcc"].append(task_srcc(adapted, task["query_y"]))
    return {
        s: {k: float(np.mean(v)) for k, v in values.items()}
        for s, values in per_scale.items()
    }


def gate_decision(scores, min_gain=0.0):
    """Chooses the scale and says whether adaptation beats 0-shot.

    Args:
        scores: {scale: {"loss": float, "srcc": float}} with scale 0.0.
        min_gain: float. How much the chosen scale's SRCC must exceed 0-shot's.

    Returns:
        dict: scale (the chosen one, > 0), passed (bool), zero_shot and
        adapted ({"loss", "srcc"}), reason (str, empty when passed).
    """
    if 0.0 not in scores or len(scores) < 2:
        raise ConfigError(
            "The gate needs 0-shot scores (scale 0) and at least one other scale. "
            f"Received scales: {sorted(scores)}"
        )
    zero = scores[0.0]
    candidates = [s for s in scores if s > 0]
    best = max(candidates, key=lambda s: (scores[s]["srcc"], -scores[s]["loss"]))
    adapted = scores[best]
    reasons = []
    if not adapted["srcc"] > zero["srcc"] + min_gain:
        reasons.append(f"SRCC {adapted['srcc']:.3f} vs 0-shot {zero['srcc']:.3f}")
    if not adapted["loss"] < zero["loss"]:
        reasons.append(f"loss {adapted['loss']:.4f} vs 0-shot {zero['loss']:.4f}")
    return {
        "scale": best,
        "passed": not reasons,
        "zero_shot": dict(zero),
        "adapted": dict(adapted),
        "reason": "; ".join(reasons),
    }
