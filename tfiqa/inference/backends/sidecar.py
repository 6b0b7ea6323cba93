"""The JSON sidecar an export carries: its scoring policy and score meaning.

`tfiqa export` writes one beside every SavedModel (`assets.extra/tfiqa.json`)
and every `.tflite` file (same name, `.json`); a `Scorer` built from an
export applies the policy it records, so every format scores a photo alike.
"""

import json
import warnings

from tfiqa.errors import MissingSidecarWarning
from tfiqa.scoring_policy import ScoringPolicy


def read_sidecar(path):
    """The sidecar at `path` as a dict; {} when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def scorer_settings(sidecar, input_size, sidecar_path=None):
    """`Scorer` keyword arguments (input size, `ScoringPolicy`, score range)
    from a sidecar; exports older than the policy record fall back to the
    crop size of their model summary (or the input size) and the default
    crops. An empty `sidecar` read from `sidecar_path` (the file is missing
    or unreadable) falls back too, with a `MissingSidecarWarning` naming the
    file and the policy used instead."""
    record = sidecar.get("scoring")
    if isinstance(record, dict):
        policy = ScoringPolicy.from_dict(record)
    else:
        crop = sidecar.get("model", {}).get("input_crop_size") or input_size
        policy = ScoringPolicy(crop_size=crop or ScoringPolicy.crop_size)
    if not sidecar and sidecar_path:
        warnings.warn(
            f"{sidecar_path} is missing or unreadable, so this export's scoring "
            f"policy is unknown; scoring with {policy.describe()}, which may "
            "differ from the model's. Export again with `tfiqa export` to "
            "restore it.",
            MissingSidecarWarning,
            stacklevel=3,
        )
    output = sidecar.get("output", {})
    score_range = output.get("range", (0.0, 1.0)) if output else (0.0, 1.0)
    return {"input_size": input_size, "policy": policy, "score_range": score_range}
