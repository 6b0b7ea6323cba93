"""End-to-end guards of the evaluation protocol: each test runs a tiny real
run (or sweep) and fails if the guard it names is removed."""

import json

import numpy as np
import pytest
from PIL import Image

from tfiqa.config import load_config
from tfiqa.data.split_record import source_id
from tfiqa.errors import LeakError

TINY_FINETUNE = [
    "model.backbone=mobilenet_v3_small",
    "model.weights=none",
    "model.levels=[P5]",
    "model.head_units=[8]",
    "data.crop_size=32",
    "data.batch_size=4",
    "data.dataset=csv",
    "model.scoring.crops=1",
    "stages.finetune.schedule.epochs=1",
    "stages.finetune.schedule.steps_per_epoch=1",
    "stages.order=[finetune]",
    "runtime.verbose=-1",
    "runtime.precise_bn_batches=1",
]


def mos_folder(folder, scenes=6, shots=2):
    """`scenes` random scenes, `shots` files each sharing a `ref` column."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for s in range(scenes):
        for k in range(shots):
            name = f"s{s}_{k}.png"
            pixels = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name)
            rows.append(f"{name},{rng.uniform():.3f},s{s}")
    (folder / "mos.csv").write_text("image,mos,ref\n" + "\n".join(rows) + "\n")
    return folder


def finetune_config(tmp_path, split):
    """A finetune-only run on `mos_folder` with the parts of `split`
    ({part: file names})."""
    folder = mos_folder(tmp_path / "mos")
    (tmp_path / "split.json").write_text(json.dumps(split))
    return load_config(
        None,
        [
            *TINY_FINETUNE,
            f"data.dataset_dir={folder}",
            "data.reader_options={ref_column: ref, group_duplicates: false}",
            f"data.split_file={tmp_path / 'split.json'}",
        ],
    )


DISJOINT = {
    "train": ["s0_0.png", "s0_1.png", "s1_0.png", "s1_1.png", "s2_0.png"],
    "val": ["s3_0.png", "s3_1.png", "s4_0.png"],
    "test": ["s5_0.png", "s5_1.png"],
}


@pytest.mark.slow
def test_a_run_that_tested_on_trained_content_raises_after_saving(tmp_path):
    # Scene s0 has one shot in training and the other in test.
    split = {**DISJOINT, "test": ["s0_1.png", "s5_0.png", "s5_1.png"]}
    split["train"] = [n for n in split["train"] if n != "s0_1.png"]
    from tfiqa.training.experiment import run_experiment

    workdir = tmp_path / "run"
    with pytest.raises(LeakError, match=r"1 test id\(s\) of stage 'finetune'"):
        run_experiment(finetune_config(tmp_path, split), str(workdir))
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["leak_check"]["passed"] is False
    assert "s0" in saved["leak_check"]["error"]
    assert (workdir / "model.keras").is_file()  # the work is kept for a look


@pytest.mark.slow
def test_a_stage_that_wrote_no_split_file_fails_the_leak_check(tmp_path, monkeypatch):
    import dataclasses

    from tfiqa.training.experiment import run_experiment
    from tfiqa.training.stages import STAGES

    unrecorded = dataclasses.replace(STAGES.get("finetune"), write_split=None)
    monkeypatch.setitem(STAGES._items, "finetune", unrecorded)
    workdir = tmp_path / "run"
    with pytest.raises(LeakError, match="'finetune' has no split file"):
        run_experiment(finetune_config(tmp_path, DISJOINT), str(workdir))
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["leak_check"]["passed"] is False


@pytest.mark.slow
def test_the_rank_stage_never_draws_held_out_types(tmp_path, monkeypatch):
    import tfiqa.data.ranking as ranking
    from tfiqa.training.experiment import run_experiment

    drawn = []
    real = ranking.ranking_dataset

    def recording(paths, types, *args, **kwargs):
        drawn.append(list(types))
        return real(paths, types, *args, **kwargs)

    monkeypatch.setattr(ranking, "ranking_dataset", recording)
    config = load_config(
        None,
        [
            *TINY_FINETUNE,
            "data.pristine_count=6",
            "data.pristine_size=40",
            "stages.rank.types=[white_noise, gaussian_blur]",
            "stages.rank.groups_per_batch=2",
            "stages.rank.schedule.epochs=1",
            "stages.rank.schedule.steps_per_epoch=1",
            "stages.rank.schedule.val_steps=1",
            "stages.meta.types=[white_noise, gaussian_blur]",
            "stages.meta.holdout=[gaussian_blur]",
            "stages.order=[rank]",
        ],
    )
    workdir = tmp_path / "run"
    metrics = run_experiment(config, str(workdir))
    # Training, validation and BatchNorm batches were all drawn.
    assert len(drawn) >= 3 and all(types == ["white_noise"] for types in drawn)
    assert metrics["stages"]["rank"]["types"] == ["white_noise"]
    saved = json.loads((workdir / "splits" / "rank.json").read_text())
    assert saved["types"] == ["white_noise"]


LODO_SETTINGS = [
    "model.backbone=mobilenet_v3_small",
    "model.weights=none",
    "model.levels=[P5]",
    "model.head_units=[8]",
    "data.crop_size=32",
    "data.pristine_count=8",
    "data.pristine_size=40",
    "data.pristine_val_ratio=0.25",
    "stages.meta.types=[white_noise, darken]",
    "stages.meta.label=level",
    "stages.meta.support_size=2",
    "stages.meta.query_size=2",
    "stages.meta.meta_batch_size=1",
    "stages.meta.bn_recalibration_batches=1",
    "protocols.lodo.types=[darken]",
    "protocols.lodo.shots=[0, 2]",
    "protocols.lodo.test_size=4",
    "runtime.verbose=-1",
]


@pytest.mark.slow
def test_lodo_tests_on_sources_no_prior_trained_on(tmp_path):
    from tfiqa.protocols import run_lodo

    config = load_config(None, LODO_SETTINGS)
    workdir = tmp_path / "sweep"
    rows = run_lodo(config, str(workdir), priors=["scratch"], repeats=1)
    assert [r["k"] for r in rows] == [0, 2]
    pristine = json.loads((workdir / "splits" / "pristine.json").read_text())
    stems = {
        part: {source_id(p) for p in pristine["splits"][0][part]}
        for part in ("train", "val")
    }
    record = json.loads(
        (workdir / "darken" / "scratch" / "splits" / "lodo.json").read_text()
    )
    assert record["held_out"] == "darken"
    assert set(record["test"]) == stems["val"]
    assert set(record["train"]) == stems["train"]


@pytest.mark.slow
def test_priors_drop_pristine_twins_of_finetune_test_photos_from_another_folder(
    tmp_path,
):
    """The fine-tuning set and the pristine photos live in two folders, yet
    two MOS photos are copies of pristine ones: the twin of a test photo
    leaves the priors' sources, the twin of a validation photo only
    validates them."""
    import tensorflow as tf

    from tfiqa.training.stages import StageContext
    from tfiqa.training.stages.data import prepare_data

    pristine = tmp_path / "pristine"
    pristine.mkdir()
    rng = np.random.default_rng(3)
    for k in range(8):
        small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        photo = Image.fromarray(small).resize((48, 48), Image.Resampling.BICUBIC)
        photo.save(pristine / f"p{k}.png")
    folder = mos_folder(tmp_path / "mos", scenes=6, shots=1)
    # s0 is pristine p0 re-encoded (test), s3 is p5 resized (validation).
    Image.open(pristine / "p0.png").save(folder / "s0_0.png")
    Image.open(pristine / "p5.png").resize((44, 44)).save(folder / "s3_0.png")
    split = {
        "train": ["s1_0.png", "s2_0.png", "s4_0.png"],
        "val": ["s3_0.png"],
        "test": ["s0_0.png", "s5_0.png"],
    }
    (tmp_path / "split.json").write_text(json.dumps(split))
    config = load_config(
        None,
        [
            *TINY_FINETUNE,
            f"data.pristine_dir={pristine}",
            "data.pristine_val_ratio=0.25",
            f"data.dataset_dir={folder}",
            "data.reader_options={ref_column: ref, group_duplicates: false}",
            f"data.split_file={tmp_path / 'split.json'}",
            "stages.order=[rank, finetune]",
        ],
    )
    ctx = StageContext(
        config=config,
        workdir=str(tmp_path / "run"),
        strategy=tf.distribute.get_strategy(),
        model=None,
        chief=True,
        write_root=str(tmp_path / "run"),
        verbose=-1,
        seed=0,
    )
    prepare_data(ctx, ["rank", "finetune"])
    train = {source_id(p) for p in ctx.pristine["train"]}
    val = {source_id(p) for p in ctx.pristine["val"]}
    assert "p0" not in train | val
    assert "p5" in val and "p5" not in train
    assert len(train | val) == 7
    rank = json.loads((tmp_path / "run" / "splits" / "rank.json").read_text())
    assert "p0" not in rank["train"] + rank["val"] and "p5" not in rank["train"]
    saved = json.loads((tmp_path / "run" / "splits" / "pristine.json").read_text())
    assert saved["meta"]["kept_out_ids"] == ["p0", "p5"]
