"""The `rank` stage: pretraining on ranked pairs of distorted pristine crops."""

import dataclasses
import logging

import numpy as np

from tfiqa.training.fit_summary import fit_summary, last_val
from tfiqa.training.stage_splits import rank_types, write_rank_split
from tfiqa.training.stages.spec import Phase, StageSpec, register_stage, stage_seed

logger = logging.getLogger("tfiqa.training")

# Seed of the fixed validation batches, apart from every epoch's data seed.
VAL_SEED_OFFSET = 999_983


def _warn_uneven_groups(cfg, replicas):
    if cfg.groups_per_batch % replicas:
        logger.warning(
            "stages.rank.groups_per_batch=%d is not a multiple of the %d replicas: "
            "pairs split across replicas are not trained on.",
            cfg.groups_per_batch,
            replicas,
        )


def _validation_batches(ctx, paths, types):
    """A fixed validation set: the same crops and distortions every epoch."""
    from tfiqa.data.ranking import ranking_dataset

    cfg = ctx.config.stages.rank
    crop = ctx.config.data.crop_size
    val_ds = ranking_dataset(
        paths, types, crop, cfg.groups_per_batch, seed=ctx.seed + VAL_SEED_OFFSET
    ).repeat()
    return [
        (images.numpy(), {k: v.numpy() for k, v in labels.items()})
        for images, labels in val_ds.take(max(1, cfg.schedule.val_steps))
    ]


def _build_data(ctx):
    """The stage's training batches (seeded per epoch) and its fixed
    validation batches."""
    from tfiqa.data.ranking import ranking_dataset

    config = ctx.config
    cfg = config.stages.rank
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
            seed=ctx.dataset_seed("rank", epoch),
            device_distortions=cfg.device_distortions,
        ).repeat()

    return RankData(
        types=types,
        dataset_fn=dataset_fn,
        val_batches=_validation_batches(ctx, val_paths, types),
        sources={"train": len(train_paths), "val": len(val_paths)},
    )


@dataclasses.dataclass
class RankData:
    """What the rank stage trains and validates on."""

    types: list
    dataset_fn: object
    val_batches: list
    sources: dict


def _build_trainer(ctx, data):
    from tfiqa.training.ranking_trainer import RankingTrainer

    cfg = ctx.config.stages.rank
    return RankingTrainer(ctx.model, cfg.margin, cfg.logit_margin)


def _phases(ctx, run):
    config, data, trainer = ctx.config, run.data, run.trainer
    cfg = config.stages.rank
    compute_terms, finish = trainer.compute_terms, lambda images, labels: images
    if cfg.device_distortions:
        from tfiqa.data.device_distortions import device_step

        finish, compute_terms = device_step(
            trainer.compute_terms,
            data.types,
            config.data.crop_size,
            cfg.groups_per_batch,
            ctx.strategy.num_replicas_in_sync,
        )

    # Training batches for BatchNorm statistics, drawn once (the ranking
    # pipeline distorts on the fly, which costs more than the forward passes).
    bn_batches = [
        (np.asarray(finish(images, labels)), None)
        for images, labels in data.dataset_fn(-1).take(
            config.runtime.precise_bn_batches
        )
    ]

    def validate(epoch):
        ctx.recalibrate_bn(bn_batches)
        return trainer.evaluate(data.val_batches)

    yield Phase(
        dataset_fn=data.dataset_fn,
        epochs=cfg.schedule.epochs,
        steps_per_epoch=cfg.schedule.steps_per_epoch,
        optimizers=[
            (
                "rank_optimizer",
                cfg.optimizer.learning_rate,
                ctx.model.trainable_variables,
            )
        ],
        compute_terms=compute_terms,
        validate=validate,
    )


def _summarize(ctx, run):
    cfg, data = ctx.config.stages.rank, run.data
    result = run.fits["rank"]
    val = last_val(result["history"])
    if not val:  # resumed after the last epoch: validate the restored model
        val = run.trainer.evaluate(data.val_batches)
    return {
        **fit_summary(result, cfg.schedule.epochs),
        "val": val,
        "types": data.types,
        "batch_images": len(data.val_batches[0][0]),
        "sources": data.sources,
    }


def _record_seeds(spec, seed):
    return {
        "rank_data": [stage_seed(seed, spec.name, 0), "+ epoch"],
        "rank_val_data": seed + VAL_SEED_OFFSET,
    }


RANK = register_stage(
    StageSpec(
        name="rank",
        section="stages.rank",
        seed_offset=1,
        build_data=_build_data,
        build_trainer=_build_trainer,
        phases=_phases,
        summarize=_summarize,
        shared_data=lambda config: ("pristine",),
        write_split=write_rank_split,
        seeds=_record_seeds,
        freeze_backbone=True,
        # Replicas see parts of one global batch: BatchNorm may sync across them.
        sync_batchnorm=True,
    )
)
