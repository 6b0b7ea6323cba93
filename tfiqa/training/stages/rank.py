"""The `rank` stage: pretraining on ranked pairs of distorted pristine crops."""

import logging
import os

import numpy as np

from tfiqa.training.stage_splits import rank_types
from tfiqa.training.stage_utils import (
    dataset_seed,
    fit_summary,
    last_val,
    recalibrate_bn,
)
from tfiqa.training.stages.base import register_stage

logger = logging.getLogger("tfiqa.training")


def _warn_uneven_groups(cfg, replicas):
    if cfg.groups_per_batch % replicas:
        logger.warning(
            "ranking.groups_per_batch=%d is not a multiple of the %d replicas: "
            "pairs split across replicas are not trained on.",
            cfg.groups_per_batch,
            replicas,
        )


def _validation_batches(ctx, paths, types):
    """A fixed validation set: the same crops and distortions every epoch."""
    from tfiqa.data.ranking import ranking_dataset

    cfg = ctx.config.ranking
    crop = ctx.config.data.crop_size
    val_ds = ranking_dataset(
        paths, types, crop, cfg.groups_per_batch, seed=ctx.seed + 999_983
    ).repeat()
    return [
        (images.numpy(), {k: v.numpy() for k, v in labels.items()})
        for images, labels in val_ds.take(max(1, cfg.val_steps))
    ]


def run_rank_stage(ctx, stage_index):
    """Ranking pretraining; returns the stage's result dict."""
    from tfiqa.data.ranking import ranking_dataset
    from tfiqa.training.loop import DistributedLoop, make_optimizer
    from tfiqa.training.ranking_trainer import RankingTrainer

    config = ctx.config
    cfg = config.ranking
    types = rank_types(config)
    replicas = ctx.strategy.num_replicas_in_sync
    _warn_uneven_groups(cfg, replicas)
    crop = config.data.crop_size
    train_paths, val_paths = ctx.pristine["train"], ctx.pristine["val"]

    def dataset_fn(epoch):
        return ranking_dataset(
            train_paths,
            types,
            crop,
            cfg.groups_per_batch,
            seed=dataset_seed(ctx, "rank", epoch),
            device_distortions=cfg.device_distortions,
        ).repeat()

    val_batches = _validation_batches(ctx, val_paths, types)
    trainer = RankingTrainer(ctx.model, cfg.margin, cfg.logit_margin)
    compute_terms, finish = trainer.compute_terms, lambda images, labels: images
    if cfg.device_distortions:
        from tfiqa.data.device_distortions import device_step

        finish, compute_terms = device_step(
            trainer.compute_terms, types, crop, cfg.groups_per_batch, replicas
        )

    # Training batches for BatchNorm statistics, drawn once (the ranking
    # pipeline distorts on the fly, which costs more than the forward passes).
    bn_batches = [
        (np.asarray(finish(images, labels)), None)
        for images, labels in dataset_fn(-1).take(config.trainer.precise_bn_batches)
    ]

    def validate(epoch):
        recalibrate_bn(ctx, bn_batches)
        return trainer.evaluate(val_batches)

    with ctx.strategy.scope():
        optimizer = make_optimizer(
            cfg.learning_rate,
            config.trainer.weight_decay,
            config.trainer.mixed_precision,
            name="rank_optimizer",
        )
    loop = DistributedLoop(
        ctx.strategy,
        ctx.model,
        compute_terms,
        [(optimizer, ctx.model.trainable_variables)],
        stage="rank",
        stage_index=stage_index,
        checkpoint_dir=ctx.stage_dir("rank", chief_copy=True),
        log_dir=os.path.join(ctx.workdir, "logs", "rank"),
        verbose=ctx.verbose,
    )
    result = loop.fit(
        dataset_fn,
        cfg.epochs,
        cfg.steps_per_epoch,
        validate=validate,
    )
    val = last_val(result["history"])
    if not val:  # resumed after the last epoch: validate the restored model
        val = trainer.evaluate(val_batches)
    return {
        **fit_summary(result, cfg.epochs),
        "val": val,
        "types": types,
        "batch_images": len(val_batches[0][0]),
        "sources": {"train": len(train_paths), "val": len(val_paths)},
    }


class RankStage:
    name = "rank"
    # Replicas see parts of one global batch: BatchNorm may sync across them.
    sync_batchnorm = True

    def run(self, ctx, stage_index):
        from tfiqa.training.transfer import frozen_backbone

        until = ctx.config.ranking.freeze_backbone
        with frozen_backbone(ctx, until, "ranking.freeze_backbone"):
            return run_rank_stage(ctx, stage_index)


register_stage(RankStage())
