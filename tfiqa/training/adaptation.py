"""The k-shot adaptation a meta-trained prior learned to use, kept with it.

A meta prior is trained to be adapted in one particular way: which weights
move (`stages.meta.adapt`), how many SGD steps (`stages.meta.inner_steps`) and at which
step sizes (`stages.meta.inner_learning_rate`, or the per-parameter rates learned
by Meta-SGD). The `meta` stage writes that recipe into its work directory
(`adaptation.json`, plus `adaptation_rates.npz` with Meta-SGD), because the
rates are not part of the saved scoring model; any later k-shot evaluation
(`tfiqa.protocols.lodo`) rebuilds exactly that adaptation from it.
"""

import json
import os

import numpy as np

from tfiqa.errors import DataError
from tfiqa.files import atomic_path, write_json_atomic

SPEC_FILE = "adaptation.json"
RATES_FILE = "adaptation_rates.npz"


def adaptation_spec(meta):
    """The adaptation described by a `MetaStage` config (before any training)."""
    return {
        "adapt": meta.adapt,
        "inner_steps": int(meta.inner_steps),
        "inner_learning_rate": float(meta.inner_learning_rate),
        "learn_inner_lr": bool(meta.learn_inner_lr),
    }


def save_adaptation(workdir, step, spec):
    """Writes `spec` and the step's learned rates (if any) into `workdir`.

    Args:
        workdir: str, the run's work directory.
        step: the trained `MAMLStep` (its `inner_lrs` are saved).
        spec: dict from `adaptation_spec`.
    """
    spec = {
        **spec,
        "variables": [
            step.model.trainable_variables[i].path for i in step.adapt_indices
        ],
    }
    if step.inner_lrs:
        path = os.path.join(workdir, RATES_FILE)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, *[np.asarray(v) for v in step.inner_lrs])
        spec["rates_file"] = RATES_FILE
    write_json_atomic(os.path.join(workdir, SPEC_FILE), spec)
    return spec


def load_adaptation(workdir):
    """(spec, list of learned rate arrays or None) saved by `save_adaptation`."""
    path = os.path.join(workdir, SPEC_FILE)
    if not os.path.isfile(path):
        raise DataError(
            f"No adaptation recipe in {workdir} (was its meta stage run?). "
            f"Received: missing {SPEC_FILE}"
        )
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    rates = None
    if spec.get("rates_file"):
        with np.load(os.path.join(workdir, spec["rates_file"])) as data:
            rates = [data[f"arr_{i}"] for i in range(len(data.files))]
    return spec, rates


def adaptation_step(model, spec, rates=None):
    """The `MAMLStep` that adapts `model` as `spec` says.

    The adapted variables are chosen exactly as in meta-training
    (`tfiqa.training.meta_trainer.adapt_variables`); learned Meta-SGD
    `rates`, when given, replace the scalar step size.
    """
    from tfiqa.training.maml import MAMLStep
    from tfiqa.training.meta_trainer import adapt_variables

    step = MAMLStep(
        model,
        inner_steps=spec["inner_steps"],
        inner_learning_rate=spec["inner_learning_rate"],
        order="first",  # no outer gradient is taken when adapting to score
        learn_inner_lr=rates is not None,
        adapt_variables=adapt_variables(model, spec["adapt"]),
    )
    if rates is not None:
        shapes = [tuple(v.shape) for v in step.inner_lrs]
        if shapes != [tuple(r.shape) for r in rates]:
            raise DataError(
                "The learned inner learning rates do not fit the model's "
                f"adapted variables. Received: {len(rates)} rates for "
                f"{len(shapes)} variables"
            )
        for variable, value in zip(step.inner_lrs, rates, strict=True):
            variable.assign(value)
    return step


def describe(step):
    """A JSON-able record of what `step` adapts and how."""
    trainable = step.model.trainable_variables
    record = {
        "variables": len(step.adapt_indices),
        "parameters": int(
            sum(int(np.prod(trainable[i].shape)) for i in step.adapt_indices)
        ),
        "steps": step.inner_steps,
        "learning_rate": step.inner_learning_rate,
        "learned_rates": bool(step.inner_lrs),
    }
    if step.inner_lrs:
        values = np.concatenate([np.ravel(v) for v in step.inner_lrs])
        record["learned_rate_mean"] = float(values.mean())
    return record
