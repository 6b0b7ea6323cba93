"""What every training stage shares: seeds, precise BN, weights, summaries."""

import os

import numpy as np


def save_weights_atomic(model, path):
    """`model.save_weights` to a temporary `.weights.h5` renamed over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def split_seed(config, seed):
    """The seed of the fine-tuning content splits (`data.split_seed`)."""
    return seed if int(config.data.split_seed) < 0 else int(config.data.split_seed)


def dataset_seed(ctx, stage, epoch):
    """`stage_seed` of the run's seed (the stages import this module, so the
    registry is imported when called, once they are registered)."""
    from tfiqa.training.stages.spec import stage_seed

    return stage_seed(ctx.seed, stage, epoch)


def recalibrate_bn(ctx, dataset):
    """Precise BN before validation: moving statistics from training batches.

    Training-mode steps use batch statistics, so this changes only what
    inference sees; it runs on every worker with the same data.

    Args:
        dataset: iterable of (images, labels) training batches.
    """
    count = int(ctx.config.runtime.precise_bn_batches)
    if count <= 0:
        return 0
    if ctx.precise_bn is None:
        from tfiqa.training.batchnorm import PreciseBatchNorm

        ctx.precise_bn = PreciseBatchNorm(ctx.model)
    batches = (batch[0] for _, batch in zip(range(count), dataset, strict=False))
    return ctx.precise_bn.recalibrate(batches)


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
