"""The data every stage shares: the pristine source split, the fine-tuning
MOS split (a synthesised pseudo-MOS set when none is given), and the
content each stage may use (`prepare_data`)."""

import os

from tfiqa.data.synthetic_mos import synthesize_mos_set
from tfiqa.errors import ConfigError, DataError
from tfiqa.training.stage_splits import keep_out_of_priors
from tfiqa.training.stages.spec import STAGES, shared_data, split_seed


def _split_pristine(config, paths, seed):
    root = config.resolve_path(config.data.pristine_dir)
    if config.data.pristine_val_dirs and root:
        val_roots = [
            os.path.abspath(os.path.join(root, d)) + os.sep
            for d in config.data.pristine_val_dirs
        ]
        for d in val_roots:
            if not os.path.isdir(d):
                raise ConfigError(
                    f"data.pristine_val_dirs: {d} is not a folder under "
                    f"data.pristine_dir. Received: {config.data.pristine_val_dirs}"
                )
        val = [p for p in paths if any(p.startswith(d) for d in val_roots)]
        train = [p for p in paths if p not in set(val)]
    else:
        from tfiqa.data.pristine import split_sources

        ratio = float(config.data.pristine_val_ratio)
        if not 0.0 < ratio < 1.0:
            raise ConfigError(
                "data.pristine_val_ratio must be in (0, 1). "
                f"Received: {config.data.pristine_val_ratio}"
            )
        train, val = split_sources(paths, ratio, seed)
    if not train or not val:
        raise DataError(
            "Ranking needs pristine images for both training and validation. "
            f"Received: {len(train)} train, {len(val)} validation images"
        )
    return {"train": train, "val": val}


def prepare_pristine(ctx):
    """Pristine image paths split by source into train/val (written to splits/)."""
    from tfiqa.data.pristine import generate_pristine, list_images

    config = ctx.config
    folder = config.resolve_path(config.data.pristine_dir)
    generated = not folder
    if generated:
        folder = os.path.join(ctx.write_root, "data", "pristine")
        existing = list_images(folder) if os.path.isdir(folder) else []
        if len(existing) != config.data.pristine_count:
            generate_pristine(
                folder,
                count=config.data.pristine_count,
                size=config.data.pristine_size,
                seed=ctx.seed,
            )
    elif not os.path.isdir(folder):
        raise ConfigError(
            f"data.pristine_dir is not a folder. Received: {folder} "
            f"(data.root={config.data.root!r})"
        )
    paths = list_images(folder)
    split = _split_pristine(config, paths, ctx.seed)
    ctx.pristine_dir = folder
    if ctx.chief:
        from tfiqa.data.splits import save_splits

        save_splits(
            os.path.join(ctx.workdir, "splits", "pristine.json"),
            split,
            meta={
                "pristine_dir": folder,
                "generated": generated,
                "seed": ctx.seed,
                "val_dirs": list(config.data.pristine_val_dirs),
                "val_ratio": config.data.pristine_val_ratio,
            },
        )
    return split


def prepare_mos_data(ctx):
    """Train/val/test records for fine-tuning (splits written to splits/)."""
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import splits_for_config

    config = ctx.config
    data = config.data
    options = dict(data.reader_options)
    if data.skip_bad:
        options.setdefault("skip_bad", True)
    if data.dataset_dir:
        folder = config.resolve_path(data.dataset_dir)
    elif data.dataset == "distorted":
        from tfiqa.distortions import resolve_types

        types = resolve_types(
            config.stages.rank.distortion_set,
            data.synthetic_types or config.stages.rank.types or None,
        )
        pristine = ctx.pristine["train"] + ctx.pristine["val"]
        folder = synthesize_mos_set(
            pristine,
            os.path.join(ctx.write_root, "data", "distorted"),
            types,
            data.synthetic_levels,
            ctx.seed,
            verbose=ctx.verbose if ctx.chief else 0,
        )
    else:
        raise ConfigError(
            "The finetune stage needs MOS data: set data.dataset_dir (and "
            "data.dataset, a reader kind), or use data.dataset=distorted with "
            "no dataset_dir to synthesise pseudo-MOS labels. "
            f"Received: data.dataset={data.dataset!r}, data.dataset_dir=''"
        )
    records = read_dataset(data.dataset, folder, **options)
    parts = splits_for_config(
        records,
        data,
        seed=split_seed(config, ctx.seed),
        workdir=ctx.workdir if ctx.chief else None,
    )
    # Held-out types are not trained or validated on; the test keeps them.
    held_out = set(config.stages.meta.holdout)
    for part in ("train", "val"):
        parts[part] = [r for r in parts[part] if r.get("distortion") not in held_out]
    synthesised = data.dataset == "distorted" and not data.dataset_dir
    ctx.mos_dir = ctx.pristine_dir if synthesised else folder
    if not parts["train"]:
        raise DataError(
            f"The training split is empty. Received: {len(records)} records, "
            f"val_ratio={data.val_ratio}, test_ratio={data.test_ratio}"
        )
    return parts


def prepare_data(ctx, stages):
    """The shared data the `stages` read (`StageSpec.shared_data`): pristine
    and fine-tuning splits, fine-tuning content kept out of the earlier
    stages; then the stages' split files (`StageSpec.write_split`)."""
    needs = shared_data(ctx.config, stages)
    if "pristine" in needs:
        ctx.pristine = prepare_pristine(ctx)
    if "mos" in needs:
        ctx.mos_splits = prepare_mos_data(ctx)
        keep_out_of_priors(ctx)
    if ctx.chief:
        for stage in stages:
            write = STAGES.get(stage).write_split
            if write is not None:
                write(ctx)
