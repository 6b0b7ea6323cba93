"""`run_experiment`: the stages of one config, in order, on one `IQAModel`.

Work directory layout:
```
config.yaml           the resolved config
model.keras           the final scoring model (after the last stage)
metrics.json          per-stage validation metrics, history, seeds, test
checkpoints/<stage>/  epoch checkpoints (model, optimizers, counters),
                      final.weights.h5 + done.json once the stage is done,
                      best.weights.h5 + best.json (finetune model selection)
logs/<stage>/         TensorBoard event files
splits/               splits.json (MOS data), pristine.json (ranking sources),
                      <stage>.json: the ids each stage trained, validated
                      and tested on (see `tfiqa.data.split_record`)
data/                 generated images (quickstart) when no folder is given
```
Running again with the same work directory resumes: finished stages are
skipped (their final weights are loaded) and the current stage restarts
from its last epoch checkpoint.

Content the fine-tuning stage validates or tests on is kept out of the
earlier stages: with a pseudo-MOS set synthesised from the pristine images,
its validation sources move from the pristine training sources to the
pristine validation sources and its test sources leave both; meta
tasks read from the fine-tuning dataset's own folder drop those references.
Types in `stages.meta.holdout` are held out of every stage (ranking, meta tasks and
fine-tuning training/validation records; the test split keeps them). At the
end the run checks its `splits/<stage>.json` files for leaks.
"""

import json
import os
import time

from tfiqa.config import save_config
from tfiqa.errors import ConfigError, LeakError
from tfiqa.files import atomic_path, json_ready, write_json_atomic
from tfiqa.training.stage_runner import run_stage
from tfiqa.training.stage_splits import check_run
from tfiqa.training.stages import STAGES, StageContext
from tfiqa.training.stages.data import prepare_data
from tfiqa.training.stages.spec import split_seed

# -- the run ---------------------------------------------------------------


def run_experiment(config, workdir, verbose=None):
    """Runs `config.stages.order` in order and writes the work directory.

    Args:
        config: `ExperimentConfig`.
        workdir: str. Created if needed; an existing one is resumed.
        verbose: int or None. Overrides `config.runtime.verbose` (1 progress
            bars, 0 epoch lines, -1 silent).

    Returns:
        dict, the content of `metrics.json`.

    Example:
    ```python
    config = load_config("configs/resnet18_multilevel.yaml")
    metrics = run_experiment(config, "runs/resnet18")
    print(format_summary(metrics))
    ```
    """
    import keras

    from tfiqa.config_checks import check_stage_values
    from tfiqa.models import build_model
    from tfiqa.training.strategy import get_strategy, set_mixed_precision

    config.validate()  # again: a loaded config may have been changed since
    check_stage_values(config)  # training-only: export and predict skip them
    ctx = StageContext.for_run(
        config, os.path.abspath(workdir), get_strategy(config.runtime), verbose
    )
    os.makedirs(ctx.write_root, exist_ok=True)
    if ctx.chief:
        save_config(config, os.path.join(ctx.workdir, "config.yaml"))
    previous_policy = keras.mixed_precision.global_policy().name
    policy = set_mixed_precision(config.runtime.mixed_precision)
    try:
        keras.utils.set_random_seed(ctx.seed)
        with ctx.strategy.scope():
            ctx.model = build_model(config.model, crop_size=config.data.crop_size)
            if config.runtime.init_from:
                load_initial_weights(ctx.model, config.runtime.init_from)
        return _run_stages(ctx, policy)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def load_initial_weights(model, path):
    """Loads `runtime.init_from` (a `.keras` model or `.weights.h5`) into `model`."""
    from tfiqa.errors import DataError
    from tfiqa.inference.backends.keras import load_keras_model

    if not os.path.isfile(path):
        raise ConfigError(f"runtime.init_from: file not found. Received: {path}")
    if not path.endswith((".keras", ".weights.h5")):
        raise ConfigError(
            f"runtime.init_from must be a .keras or .weights.h5 file. Received: {path}"
        )
    try:
        if path.endswith(".weights.h5"):
            model.load_weights(path)
        else:
            model.set_weights(load_keras_model(path).get_weights())
    except (ValueError, DataError) as e:
        raise ConfigError(
            f"runtime.init_from: {path} does not fit this model's architecture "
            f"({e}). Received: model.backbone={model.backbone_name}, "
            f"levels={list(model.levels)}"
        ) from None


def run_seeds(ctx):
    """Every seed the run uses, by what it draws (each stage's from its spec)."""
    seed = ctx.seed
    seeds = {
        "runtime": seed,  # runtime.seed
        "model_init": seed,
        "splits": split_seed(ctx.config, seed) + int(ctx.config.data.split_index),
        "pristine_split": seed,
        "pristine_generation": seed,
    }
    for _, spec in STAGES.items():
        seeds.update(spec.seeds(spec, seed))
    return seeds


def _run_stages(ctx, policy):
    from tfiqa.training.strategy import synchronize_batchnorm

    config, workdir = ctx.config, ctx.workdir
    stages = list(config.stages.order)
    metrics = {
        "workdir": workdir,
        "stages": {},
        "seeds": run_seeds(ctx),
        "strategy": type(ctx.strategy).__name__,
        "replicas": ctx.strategy.num_replicas_in_sync,
        "dtype_policy": policy,
        "resumed": [],
    }
    sync_batchnorm = (
        config.runtime.sync_batchnorm and ctx.strategy.num_replicas_in_sync > 1
    )
    metrics["sync_batchnorm"] = sync_batchnorm
    start = time.time()
    prepare_data(ctx, stages)

    pending_weights = None
    for index, stage in enumerate(stages):
        done_file = os.path.join(ctx.stage_dir(stage, chief_copy=True), "done.json")
        final_weights = os.path.join(
            ctx.stage_dir(stage, chief_copy=True), "final.weights.h5"
        )
        if os.path.isfile(done_file) and os.path.isfile(final_weights):
            with open(done_file) as f:
                metrics["stages"][stage] = {**json.load(f), "skipped": "already done"}
            pending_weights = final_weights
            ctx.log(f"[{stage}] already done in {workdir}; skipping")
            continue
        if pending_weights:
            ctx.model.load_weights(pending_weights)
            pending_weights = None
        ctx.log(f"[{stage}] stage {index + 1}/{len(stages)}")
        stage_start = time.time()
        spec = STAGES.get(stage)
        synchronize_batchnorm(ctx.model, sync_batchnorm and spec.sync_batchnorm)
        result = run_stage(spec, ctx, index)
        synchronize_batchnorm(ctx.model, False)
        result["wall_s"] = time.time() - stage_start
        if result.get("resumed_from"):
            metrics["resumed"].append(
                {
                    "stage": stage,
                    "epoch": result["initial_epoch"] + 1,
                    "checkpoint": result["resumed_from"],
                }
            )
        metrics["stages"][stage] = json_ready(result)
        stage_dir = ctx.stage_dir(stage)
        os.makedirs(stage_dir, exist_ok=True)
        with atomic_path(os.path.join(stage_dir, "final.weights.h5")) as tmp:
            ctx.model.save_weights(tmp)
        write_json_atomic(os.path.join(stage_dir, "done.json"), json_ready(result))
    if pending_weights:
        ctx.model.load_weights(pending_weights)
    # The test split is scored once, by the stage that selects the model.
    tested = [r["test"] for r in metrics["stages"].values() if r.get("test")]
    metrics["test"] = tested[-1] if tested else None
    metrics["total_wall_s"] = time.time() - start
    metrics["model"] = os.path.join(workdir, "model.keras")
    leak = None
    try:
        metrics["leak_check"] = check_run(ctx, stages)
    except LeakError as e:
        metrics["leak_check"] = {"passed": False, "error": str(e)}
        leak = e
    if ctx.chief:
        with atomic_path(metrics["model"]) as tmp:
            ctx.model.save(tmp)
        write_json_atomic(os.path.join(workdir, "metrics.json"), json_ready(metrics))
    if leak is not None:
        raise leak
    return json_ready(metrics)


def _format_metrics(values, keys=("pair_accuracy", "srcc", "plcc")):
    shown = [k for k in keys if k in values] or sorted(values)[:3]
    parts = []
    for k in shown:
        v = values.get(k)
        parts.append(f"{k}={v:.3f}" if isinstance(v, (int, float)) else f"{k}={v}")
    return " ".join(parts)


def format_summary(metrics):
    """The end-of-run table: stage, epochs, time, validation metrics."""
    rows = [("stage", "epochs", "time", "validation")]
    for stage, result in metrics["stages"].items():
        epochs = result.get("epochs")
        done = result.get("epochs_done", epochs)
        epochs_text = f"{done}/{epochs}" if epochs is not None else "-"
        if result.get("stopped_early"):
            epochs_text += " (early stop)"
        if result.get("skipped"):
            epochs_text += " (earlier run)"
        time_s = result.get("wall_s", result.get("time_s"))
        time_text = f"{time_s:.1f}s" if isinstance(time_s, (int, float)) else "-"
        val = _format_metrics(result.get("val") or {})
        if result.get("best_epoch"):
            val += f" (best epoch {result['best_epoch']})"
        rows.append((stage, epochs_text, time_text, val))
    test = metrics.get("test")
    if test:
        rows.append(("test", "-", "-", _format_metrics(test, ("srcc", "plcc"))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:3])) + "  " + r[3]
        for r in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
