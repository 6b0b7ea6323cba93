"""What a stage reports of its fits: the summary kept in metrics.json."""

import numpy as np


def is_number(value):
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
        value, bool
    )


def val_metrics(logs):
    """The validation metrics of one epoch's logs, without the "val_" prefix."""
    return {
        k[4:]: v for k, v in logs.items() if k.startswith("val_") and k != "val_time"
    }


def last_val(history):
    for logs in reversed(history):
        val = val_metrics(logs)
        if val:
            return val
    return {}


def fit_summary(result, epochs):
    # A resumed stage reports the epochs before the resume too.
    every = result.get("earlier_history", []) + result["history"]
    history = [
        {k: v for k, v in h.items() if k != "checkpoint" and is_number(v)}
        for h in every
    ]
    done = result["initial_epoch"] + len(result["history"])
    return {
        "epochs": epochs,
        "epochs_done": done,
        "initial_epoch": result["initial_epoch"],
        "resumed_from": result["resumed_from"],
        "stopped_early": result["stopped_early"],
        "time_s": float(sum(h.get("time", 0.0) for h in every)),
        "history": history,
    }
