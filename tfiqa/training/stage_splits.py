"""What content each stage of a run may use, and the record of it.

The fine-tuning split is made first; its validation and test content is
then kept out of the stages before it (see `tfiqa.training.experiment`), every
stage's ids are written to `splits/<stage>.json`, and the run ends with
`tfiqa.data.split_record.check_no_leaks`.
"""

import os

from tfiqa.data.split_record import (
    check_no_leaks,
    drop_ids,
    source_id,
    source_key,
    write_stage_split,
)
from tfiqa.errors import ConfigError, DataError
from tfiqa.training.stages.spec import split_seed


def record_ids(records):
    return {str(r["ref_id"]) for r in records}


def pristine_ids(pristine):
    """{"train", "val"} id sets of a pristine split."""
    return {part: {source_id(p) for p in pristine[part]} for part in ("train", "val")}


def rank_types(config):
    """The ranking stage's distortion types, without `stages.meta.holdout`."""
    from tfiqa.distortions import resolve_types

    cfg = config.stages.rank
    types = resolve_types(cfg.distortion_set, cfg.types or None)
    kept = [t for t in types if t not in set(config.stages.meta.holdout)]
    if not kept:
        raise ConfigError(
            "ranking: no distortion types are left after stages.meta.holdout. "
            f"Received: types={types}, holdout={config.stages.meta.holdout}"
        )
    return kept


def reserved_ids(ctx):
    """The fine-tuning validation and test content, or None without it:
    {"source": folder key, "ids": ids no earlier stage may train on,
    "test": test ids no earlier stage may validate on}."""
    if not ctx.mos_splits:
        return None
    test = record_ids(ctx.mos_splits["test"])
    return {
        "source": source_key(ctx.mos_dir),
        "ids": record_ids(ctx.mos_splits["val"]) | test,
        "test": test,
    }


def pristine_twins(ctx):
    """(ids, test ids): pristine sources whose images are near-duplicates of
    fine-tuning validation or test images from another folder
    (`tfiqa.data.readers.duplicates.group_datasets`)."""
    from tfiqa.data.readers.duplicates import group_datasets

    val, test = ctx.mos_splits["val"], ctx.mos_splits["test"]
    paths = ctx.pristine["train"] + ctx.pristine["val"]
    pristine = [{"image_path": p, "ref_id": source_id(p)} for p in paths]
    held, sources = group_datasets([val + test, pristine])
    groups = [r["ref_id"] for r in held]
    test_groups = set(groups[len(val) :])
    val_groups = set(groups[: len(val)])
    twins = {source_id(p): g["ref_id"] for p, g in zip(paths, sources, strict=True)}
    in_test = {i for i, g in twins.items() if g in test_groups}
    return {i for i, g in twins.items() if g in val_groups} | in_test, in_test


def keep_out_of_priors(ctx):
    """Keeps the fine-tuning val/test content out of the priors' pristine
    split: when the fine-tuning set was synthesised from the same images,
    its validation sources; from another folder, the pristine sources that
    are near-duplicates of its validation images. Those move to the priors'
    validation part; test sources (or twins) leave both parts."""
    reserved = reserved_ids(ctx)
    if not ctx.pristine or not reserved:
        return
    if source_key(ctx.pristine_dir) == reserved["source"]:
        ids, test = reserved["ids"], reserved["test"]
        kept_out = "fine-tuning validation and test sources"
    else:
        ids, test = pristine_twins(ctx)
        if not ids:
            return
        kept_out = "near-duplicates of fine-tuning validation and test images"
    # Sources the fine-tuning stage validates on may validate the priors
    # too; its test sources serve no prior at all.
    finetune_val = ids - test
    train = ctx.pristine["train"]
    split = {
        "train": drop_ids(train, ids),
        "val": drop_ids(ctx.pristine["val"], test)
        + [p for p in train if source_id(p) in finetune_val],
    }
    for part, paths in split.items():
        if not paths:
            raise DataError(
                f"No pristine {part} images are left once the fine-tuning "
                "validation and test sources are kept out. Use more pristine "
                "images or smaller data.val_ratio/test_ratio. Received: "
                f"{len(ctx.pristine[part])} {part} images"
            )
    ctx.pristine = split
    if ctx.chief:  # pristine.json shows the split the priors really use
        from tfiqa.data.splits import load_splits_meta, save_splits

        path = os.path.join(ctx.workdir, "splits", "pristine.json")
        meta = load_splits_meta(path) if os.path.isfile(path) else {}
        meta["kept_out"] = kept_out
        meta["kept_out_ids"] = sorted(ids)
        save_splits(path, split, meta=meta)


def write_rank_split(ctx):
    """`splits/rank.json`: the pristine split the ranking pairs come from."""
    write_stage_split(
        ctx.workdir,
        "rank",
        ctx.pristine_dir,
        pristine_ids(ctx.pristine),
        ctx.seed,
        types=rank_types(ctx.config),
    )


def write_finetune_split(ctx):
    """`splits/finetune.json`: the fine-tuning MOS split."""
    data = ctx.config.data
    write_stage_split(
        ctx.workdir,
        "finetune",
        ctx.mos_dir,
        {part: record_ids(ctx.mos_splits[part]) for part in ctx.mos_splits},
        split_seed(ctx.config, ctx.seed) + int(data.split_index),
        split_file=data.split_file,
        split_index=data.split_index,
        holdout_not_trained=list(ctx.config.stages.meta.holdout),
    )


def write_meta_split(ctx, tasks):
    if not ctx.chief:
        return
    split = tasks.split
    if split is None:  # synthetic tasks: the pristine split
        split = {"source": ctx.pristine_dir, **pristine_ids(ctx.pristine)}
    write_stage_split(
        ctx.workdir,
        "meta",
        split["source"],
        split,
        ctx.seed,
        types=tasks.types,
        holdout=tasks.holdout_types,
    )


def check_run(ctx, stages):
    """The leak check over the split files of every stage of the run (chief
    only); a stage that wrote none fails it."""
    if not ctx.chief:
        return None
    return check_no_leaks(ctx.workdir, stages)
