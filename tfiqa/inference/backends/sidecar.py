"""The JSON sidecar an export carries: its scoring policy and score meaning.

`tfiqa export` writes one beside every SavedModel (`assets.extra/tfiqa.json`)
and every `.tflite` file (same name, `.json`); a `Scorer` built from an
export applies the policy it records, so every format scores a photo alike.
"""

import json

from tfiqa.scoring_policy import DEFAULT_CROPS, make_policy


def read_sidecar(path):
    """The sidecar at `path` as a dict; {} when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def scorer_settings(sidecar, input_size):
    """`Scorer` keyword arguments (input size, policy, score range) from a
    sidecar; exports older than the policy record fall back to one crop size
    and the default crops."""
    policy = sidecar.get("scoring")
    if not isinstance(policy, dict):
        crop = sidecar.get("model", {}).get("input_crop_size") or input_size
        policy = {"crop_size": crop or 224, "crops": DEFAULT_CROPS}
    policy = make_policy(
        policy.get("crop_size"),
        policy.get("crops"),
        policy.get("small_images"),
        policy.get("resize", 0),
    )
    output = sidecar.get("output", {})
    score_range = output.get("range", (0.0, 1.0)) if output else (0.0, 1.0)
    return {"input_size": input_size, "policy": policy, "score_range": score_range}
