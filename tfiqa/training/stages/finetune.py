"""The `finetune` stage: MOS regression in up to two phases.

1. Head warm-up (`stages.finetune.schedule.warmup_epochs`, or every epoch
   with `stages.finetune.freeze_backbone: all`): the backbone is frozen and
   only the head trains, on random crops or, with
   `stages.finetune.cache_views`, on cached pooled features of fixed crops
   (see `tfiqa.training.transfer`).
2. Fine-tuning: the backbone trains too at
   `stages.finetune.optimizer.learning_rate`, except the layers up to
   `stages.finetune.freeze_backbone`.

Both phases share model selection: the epoch with the best validation SRCC
(centre crop per image; the scoring policy's crops when the backbone stays
frozen and the cache holds them) is kept, across phases. Each phase checkpoints every
epoch and resumes on its own.
"""

import dataclasses
import json
import os

import numpy as np

from tfiqa.files import atomic_path, write_json_atomic
from tfiqa.training.fit_summary import fit_summary, val_metrics
from tfiqa.training.stage_splits import write_finetune_split
from tfiqa.training.stages.cached_features import (
    cached_metrics,
    cached_views,
    feature_cache,
    val_crops,
)
from tfiqa.training.stages.spec import Phase, StageSpec, register_stage


class _Selection:
    """Best-validation-SRCC model selection, persisted for resumes."""

    def __init__(self, ctx, trainer):
        self.model = ctx.model
        self.trainer = trainer
        folder = ctx.stage_dir("finetune")
        self.weights = os.path.join(folder, "best.weights.h5")
        self.json = os.path.join(folder, "best.json")
        if os.path.isfile(self.json) and os.path.isfile(self.weights):
            with open(self.json) as f:
                trainer.best = json.load(f)

    def on_epoch_end(self, epoch, logs, phase_start):
        """Keeps the epoch if it is the best; True stops the phase early."""
        trainer = self.trainer
        metrics = val_metrics(logs)
        if trainer.is_better(metrics):
            trainer.best = {"epoch": epoch + 1, **metrics}
            with atomic_path(self.weights) as tmp:
                self.model.save_weights(tmp)
            write_json_atomic(self.json, trainer.best)
        logs["best_epoch"] = trainer.best["epoch"] if trainer.best else 0
        # Patience counts within the phase: unfreezing deserves its chance.
        since = (epoch + 1) - max(logs["best_epoch"], phase_start)
        return trainer.patience > 0 and since >= trainer.patience

    def restore_best(self):
        if self.trainer.best is not None and os.path.isfile(self.weights):
            self.model.load_weights(self.weights)
            return f"best validation SRCC (epoch {self.trainer.best['epoch']})"
        return None


def _optimizers(groups):
    """`(optimizer name, rate, variables)` of the groups that have variables."""
    return [
        (f"{name}_optimizer", rate, variables)
        for name, rate, variables in groups
        if variables
    ]


def _head_groups(ctx):
    return [
        (
            "head",
            ctx.config.stages.finetune.optimizer.head_learning_rate,
            ctx.model.head_variables,
        )
    ]


def _cached_warmup(ctx, run, epochs):
    """Head-only epochs on cached pooled features of fixed crops."""
    from tfiqa.training.transfer import (
        cached_head_dataset,
        head_scores,
        precise_head_batchnorm,
    )

    cfg, model, data = ctx.config.stages.finetune, ctx.model, run.data
    trainer, selection = run.trainer.trainer, run.trainer.selection
    cache = feature_cache(ctx)
    ctx.log(f"[finetune] caching pooled features of {len(data.train)} training images")
    train_x = cache.features([r["image_path"] for r in data.train], cfg.cache_views)
    train_y = [r["mos"] for r in data.train]
    val = data.val
    val_x = cached_views(ctx, cache, val, val_crops(ctx)) if val else None

    def compute_terms(batch_, training):
        pooled, mos = batch_
        scores = model.head.regress(pooled, training=training)
        return trainer.terms(scores, mos)

    def dataset_fn(epoch):
        seed = ctx.dataset_seed("finetune", epoch)
        return cached_head_dataset(
            train_x, train_y, data.batch, seed, data.drop
        ).repeat()

    def validate(epoch):
        from tfiqa.metrics import plcc, srcc

        precise_head_batchnorm(model, train_x[:, 0])
        scores = head_scores(model, val_x)
        targets = np.asarray([r["mos"] for r in val], np.float32)
        return {
            "srcc": float(srcc(scores, targets)),
            "plcc": float(plcc(scores, targets)),
        }

    return Phase(
        name="warmup",
        dataset_fn=dataset_fn,
        epochs=epochs,
        steps_per_epoch=data.steps,
        optimizers=_optimizers(_head_groups(ctx)),
        compute_terms=compute_terms,
        loss_weights=trainer.loss_weights,
        validate=validate if val else None,
        on_epoch_end=lambda e, logs: bool(val) and selection.on_epoch_end(e, logs, 0),
    )


def _image_phase(ctx, run, phase, epochs, start):
    """Epochs on random crops; `phase` is "warmup" (head only) or "finetune"."""
    from tfiqa.data.pipeline import mos_dataset

    cfg, conf, data = ctx.config.stages.finetune, ctx.config.data, run.data
    trainer, selection = run.trainer.trainer, run.trainer.selection

    def dataset_fn(epoch):
        return mos_dataset(
            data.train,
            conf.crop_size,
            data.batch,
            training=True,
            seed=ctx.dataset_seed("finetune", epoch),
            skip_bad=conf.skip_bad,
            check=False,
            drop_remainder=data.drop,
        ).repeat()

    val_ds = None
    if data.val:
        val_ds = mos_dataset(
            data.val, conf.crop_size, data.batch, training=False, check=False
        )

    def validate(epoch):
        ctx.recalibrate_bn(dataset_fn(epoch + 1_000_000))
        return trainer.evaluate(val_ds, fit=False)

    groups = _head_groups(ctx)
    if phase == "finetune":
        groups.insert(
            0, ("backbone", cfg.optimizer.learning_rate, ctx.model.backbone_variables)
        )
    # Precise BN of the selected model, if it is the last epoch's.
    run.trainer.image_dataset_fn = dataset_fn
    return Phase(
        name=None if phase == "finetune" else phase,
        dataset_fn=dataset_fn,
        epochs=epochs,
        steps_per_epoch=data.steps,
        optimizers=_optimizers(groups),
        compute_terms=trainer.compute_terms,
        loss_weights=trainer.loss_weights,
        validate=validate if val_ds is not None else None,
        on_epoch_end=lambda e, logs: (
            val_ds is not None and selection.on_epoch_end(e, logs, start)
        ),
        start_epoch=start,
    )


@dataclasses.dataclass
class FinetuneData:
    """The checked records of each split and the batching of the stage."""

    train: list
    val: list
    test: list
    batch: int
    steps: int
    # Whole batches only, when there is at least one.
    drop: bool


@dataclasses.dataclass
class Finetuning:
    """The stage's trainer, its model selection and, after a phase on
    images, that phase's training data (for precise BN at the end)."""

    trainer: object
    selection: _Selection
    image_dataset_fn: object = None


def _build_data(ctx):
    from tfiqa.data.pipeline import check_records

    cfg, conf = ctx.config.stages.finetune, ctx.config.data
    parts = ctx.mos_splits
    checked = {
        part: check_records(parts[part], conf.crop_size, conf.skip_bad)
        if part == "train" or parts[part]
        else []
        for part in ("train", "val", "test")
    }
    train = checked["train"]
    batch = conf.batch_size
    drop = len(train) >= batch
    steps = cfg.schedule.steps_per_epoch or max(1, len(train) // batch if drop else 1)
    return FinetuneData(**checked, batch=batch, steps=steps, drop=drop)


def _build_trainer(ctx, data):
    from tfiqa.training.finetune_trainer import FinetuneTrainer, reinit_score_layer

    cfg = ctx.config.stages.finetune
    trainer = FinetuneTrainer(
        ctx.model, cfg.loss, cfg.rank_weight, cfg.schedule.patience
    )
    if cfg.reinit_score:  # a resumed run restores its checkpoint after this
        reinit_score_layer(ctx.model, ctx.seed)
    return Finetuning(trainer, _Selection(ctx, trainer))


def _warmup_epochs(cfg):
    return (
        cfg.schedule.epochs
        if cfg.freeze_backbone == "all"
        else min(cfg.schedule.warmup_epochs, cfg.schedule.epochs)
    )


def _phases(ctx, run):
    """Head warm-up (backbone frozen), then fine-tuning (backbone frozen up
    to `stages.finetune.freeze_backbone`)."""
    from tfiqa.training.transfer import freeze_backbone

    cfg = ctx.config.stages.finetune
    warmup = _warmup_epochs(cfg)
    if warmup:
        freeze_backbone(ctx.model, "all")
        ctx.precise_bn = None  # the trainable set changed
        if cfg.cache_views:
            yield _cached_warmup(ctx, run, warmup)
        else:
            yield _image_phase(ctx, run, "warmup", warmup, 0)
    if cfg.schedule.epochs > warmup:
        freeze_backbone(ctx.model, cfg.freeze_backbone)
        ctx.precise_bn = None
        yield _image_phase(ctx, run, "finetune", cfg.schedule.epochs, warmup)


def _summarize(ctx, run):
    """The fit of both phases, the selected model's validation metrics and
    the test split's, scored once."""
    from tfiqa.training.transfer import freeze_backbone

    cfg, data = ctx.config.stages.finetune, run.data
    trainer, selection = run.trainer.trainer, run.trainer.selection
    phases = run.fits  # "warmup" (head warm-up) and "finetune"
    selected = selection.restore_best() or "last epoch"
    last_on_images = "finetune" in phases or not cfg.cache_views
    if selected == "last epoch" and last_on_images:
        ctx.recalibrate_bn(
            run.trainer.image_dataset_fn(cfg.schedule.epochs + 1_000_000)
        )
    freeze_backbone(ctx.model, "none")  # the saved model is a plain model
    summary = fit_summary(_merge(phases), cfg.schedule.epochs)
    summary.update(
        {
            "steps_per_epoch": data.steps,
            "selected": selected,
            "best_epoch": trainer.best["epoch"] if trainer.best else None,
            "phases": {name: len(r["history"]) for name, r in phases.items()},
            "split_sizes": {
                "train": len(data.train),
                "val": len(data.val),
                "test": len(data.test),
            },
        }
    )
    # The selected model on the whole validation split, with the logistic
    # mapping for PLCC/RMSE (per-epoch PLCC is raw).
    summary["val"] = (
        _evaluate(ctx, trainer, data.val, val_crops(ctx)) if data.val else {}
    )
    if data.test:
        summary["test"] = evaluate_test(ctx, trainer, data.test)
    return summary


def _merge(phases):
    """One fit result for `fit_summary` from the phases' results.

    Epochs count across phases, so the phases' histories in order are the
    stage's; a resumed stage picked up where its last restored phase did.
    """
    results = list(phases.values())
    every = [
        logs for r in results for logs in r.get("earlier_history", []) + r["history"]
    ]
    resumed = [r for r in results if r["resumed_from"]]
    initial_epoch = resumed[-1]["initial_epoch"] if resumed else 0
    return {
        "earlier_history": every[:initial_epoch],
        "history": every[initial_epoch:],
        "initial_epoch": initial_epoch,
        "resumed_from": resumed[-1]["resumed_from"] if resumed else None,
        "stopped_early": any(r["stopped_early"] for r in results),
    }


def _evaluate(ctx, trainer, records, crops):
    """Metrics of `crops` deterministic crops per image, averaged per image.

    With the backbone frozen for the whole stage and a feature cache, the
    cached features give the same scores without a backbone pass.
    """
    from tfiqa.data.pipeline import eval_crops_dataset

    cfg = ctx.config.stages.finetune
    if cfg.freeze_backbone == "all" and cfg.cache_views:
        return cached_metrics(ctx, records, crops)
    dataset = eval_crops_dataset(records, ctx.config.data.crop_size, crops, check=False)
    return trainer.evaluate(dataset, multi_crop=True)


def evaluate_test(ctx, trainer, records):
    """Scores the test split once, with the selected model and `model.scoring.mode`."""
    from tfiqa.data.pipeline import eval_image_dataset
    from tfiqa.metrics import evaluate_predictions

    scoring = ctx.config.model.scoring
    if scoring.mode == "full":
        by_path = {r["image_path"]: r["mos"] for r in records}
        predictions, targets = [], []
        for image, path in eval_image_dataset([r["image_path"] for r in records]):
            predictions.append(trainer.predict(image[None]))
            targets.append(np.float32([by_path[path.numpy().decode()]]))
        metrics = evaluate_predictions(
            np.concatenate(predictions), np.concatenate(targets)
        )
        metrics = {k: float(metrics[k]) for k in ("srcc", "plcc", "krcc", "rmse")}
    else:
        metrics = _evaluate(ctx, trainer, records, scoring.crops)
    metrics["eval_mode"] = scoring.mode
    metrics["n"] = len(records)
    return metrics


def _shared_data(config):
    data = config.data
    if data.dataset == "distorted" and not data.dataset_dir:
        return ("mos", "pristine")  # a pseudo-MOS set made from pristine images
    return ("mos",)


FINETUNE = register_stage(
    StageSpec(
        name="finetune",
        section="stages.finetune",
        seed_offset=2,
        build_data=_build_data,
        build_trainer=_build_trainer,
        phases=_phases,
        summarize=_summarize,
        shared_data=_shared_data,
        write_split=write_finetune_split,
        # Replicas see parts of one global batch: BatchNorm may sync across them.
        sync_batchnorm=True,
    )
)
