"""Fine-tuning content and held-out types are kept out of the earlier stages."""

import tensorflow as tf

from tfiqa.config import load_config
from tfiqa.data.split_record import check_no_leaks, source_id
from tfiqa.training.stage_splits import rank_types, reserved_ids, write_meta_split
from tfiqa.training.stages import StageContext
from tfiqa.training.stages.data import prepare_data

TYPES = ["white_noise", "jpeg"]


def tiny_config(*overrides):
    return load_config(
        None,
        [
            "data.crop_size=32",
            "data.pristine_count=10",
            "data.pristine_size=40",
            "data.pristine_val_ratio=0.3",
            "data.dataset=distorted",
            f"data.synthetic_types={TYPES}",
            "data.synthetic_levels=[2, 5]",
            "data.val_ratio=0.2",
            "data.test_ratio=0.2",
            "data.num_splits=3",
            "data.split_index=2",
            f"stages.rank.types={TYPES}",
            f"stages.meta.types={TYPES}",
            "stages.meta.holdout=[jpeg]",
            "stages.meta.support_size=2",
            "stages.meta.query_size=1",
            "stages.meta.meta_batch_size=1",
            "stages.meta.schedule.val_steps=1",
            "stages.meta.bn_recalibration_batches=0",
            *overrides,
        ],
    )


def context(config, workdir):
    return StageContext(
        config=config,
        workdir=str(workdir),
        strategy=tf.distribute.get_strategy(),
        model=None,
        chief=True,
        write_root=str(workdir),
        verbose=-1,
        seed=0,
    )


def test_priors_never_see_the_synthesised_finetune_test_content(tmp_path):
    stages = ["rank", "meta", "finetune"]
    ctx = context(tiny_config(), tmp_path)
    prepare_data(ctx, stages)
    test = {r["ref_id"] for r in ctx.mos_splits["test"]}
    val = {r["ref_id"] for r in ctx.mos_splits["val"]}
    assert test and val
    train_ids = {source_id(p) for p in ctx.pristine["train"]}
    assert not train_ids & (test | val)
    assert not {source_id(p) for p in ctx.pristine["val"]} & test
    write_meta_split(
        ctx,
        type(
            "Tasks",
            (),
            {"split": None, "types": ["white_noise"], "holdout_types": ["jpeg"]},
        )(),
    )
    assert check_no_leaks(str(tmp_path), stages)["passed"]
    # One set of held-out types for every stage: ranking and fine-tuning
    # training/validation never see jpeg; the test split keeps it.
    assert rank_types(ctx.config) == ["white_noise"]
    for part in ("train", "val"):
        assert all(r["distortion"] != "jpeg" for r in ctx.mos_splits[part])
    assert any(r["distortion"] == "jpeg" for r in ctx.mos_splits["test"])


def test_split_seed_fixes_the_content_split_across_training_seeds(tmp_path):
    import json

    tests = []
    for seed in (0, 1):
        ctx = context(tiny_config("data.split_seed=4"), tmp_path / str(seed))
        ctx.seed = seed
        prepare_data(ctx, ["finetune"])
        saved = json.loads(
            (tmp_path / str(seed) / "splits" / "finetune.json").read_text()
        )
        assert saved["seed"] == 4 + 2  # split_seed + split_index
        tests.append(saved["test"])
    assert tests[0] == tests[1]


def test_meta_tasks_from_the_finetune_dataset_leave_out_its_val_and_test(tmp_path):
    from tfiqa.data.pristine import generate_pristine
    from tfiqa.training.stages.data import synthesize_mos_set
    from tfiqa.training.stages.meta import build_tasks

    paths = generate_pristine(str(tmp_path / "p"), count=10, size=40, seed=0)
    folder = synthesize_mos_set(paths, str(tmp_path / "mos"), TYPES, [2, 5], 0)
    config = tiny_config(
        f"data.dataset_dir={folder}",
        "stages.meta.task_source=distorted",
        f"stages.meta.task_dir={folder}",
        "stages.meta.types=[]",
    )
    ctx = context(config, tmp_path / "run")
    prepare_data(ctx, ["meta", "finetune"])
    reserved = reserved_ids(ctx)
    assert reserved["test"]
    tasks = build_tasks(config, ctx.strategy, ctx.workdir, ctx.pristine, reserved)
    seen = set(tasks.split["train"]) | set(tasks.split["val"])
    assert seen and not seen & reserved["ids"]
    write_meta_split(ctx, tasks)
    assert check_no_leaks(ctx.workdir, ["meta", "finetune"])["passed"]
