"""A stage is one `StageSpec`: the config, the seeds and the run read the
registry, so a stage written in one file (here, this one) trains like the
built-in ones."""

import json

import numpy as np
import pytest

from tests.training.test_run import write_config
from tfiqa.config import load_config
from tfiqa.config_limits import RULES
from tfiqa.data.split_record import write_stage_split
from tfiqa.errors import ConfigError
from tfiqa.training.fit_summary import fit_summary
from tfiqa.training.stages import STAGES, Phase, StageSpec, register_stage, stage_seed


def test_config_stage_names_are_the_registered_specs(tmp_path):
    assert RULES["stages.order"].item.names() is STAGES
    assert set(STAGES.names()) == {"rank", "meta", "finetune"}
    for name in STAGES.names():
        config = load_config(write_config(tmp_path), [f"stages.order=[{name}]"])
        assert config.stages.order == [name]
    with pytest.raises(ConfigError, match="Unknown training stage 'rnak'"):
        load_config(write_config(tmp_path), ["stages.order=[rnak]"])


def test_seed_offsets_keep_their_values():
    # Recorded seeds of earlier runs depend on them.
    offsets = {name: spec.seed_offset for name, spec in STAGES.items()}
    assert offsets == {"rank": 1, "finetune": 2, "meta": 3}
    assert stage_seed(5, "meta", 2) == 5 * 100_003 + 3 * 10_007 + 2


def test_a_stage_cannot_share_another_stages_seeds():
    spec = STAGES.get("rank")
    with pytest.raises(ValueError, match="same data seeds as stage 'rank'"):
        register_stage(
            StageSpec("copy", None, spec.seed_offset, *[None] * 4),
        )
    assert "copy" not in STAGES


# -- a stage written in this file alone -------------------------------------

TOY = "toy"
TOY_EPOCHS = 2


def _toy_data(ctx):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 32, 32, 3)).astype("uint8")
    targets = rng.uniform(size=8).astype("float32")
    ids = [f"img{i}" for i in range(8)]
    if ctx.chief:
        write_stage_split(ctx.workdir, TOY, ctx.workdir, {"train": ids}, ctx.seed)
    return images, targets


def _toy_trainer(ctx, data):
    from tfiqa.training.losses import mse_terms

    def compute_terms(batch, training):
        images, targets = batch
        return {"loss": mse_terms(ctx.model(images, training=training), targets)}

    return compute_terms


def _toy_phases(ctx, run):
    import tensorflow as tf

    def dataset_fn(epoch):
        seed = ctx.dataset_seed(TOY, epoch)
        data = tf.data.Dataset.from_tensor_slices(run.data)
        return data.shuffle(8, seed=seed).batch(4, drop_remainder=True).repeat()

    yield Phase(
        dataset_fn=dataset_fn,
        epochs=TOY_EPOCHS,
        steps_per_epoch=2,
        optimizers=[("toy_optimizer", 1e-3, ctx.model.trainable_variables)],
        compute_terms=run.trainer,
    )


def _toy_summary(ctx, run):
    return {**fit_summary(run.fits[TOY], TOY_EPOCHS), "val": {}}


@pytest.fixture
def toy_stage():
    spec = register_stage(
        StageSpec(
            name=TOY,
            section=None,
            seed_offset=97,
            build_data=_toy_data,
            build_trainer=_toy_trainer,
            phases=_toy_phases,
            summarize=_toy_summary,
        )
    )
    yield spec
    STAGES._items.pop(TOY)  # the registry has no removal: tests only need one


@pytest.mark.slow
def test_a_stage_in_one_file_runs_through_run_experiment(toy_stage, tmp_path):
    from tfiqa.training.experiment import run_experiment

    start = [float(np.sum(w)) for w in _model_weights(tmp_path)]
    config = load_config(write_config(tmp_path), [f"stages.order=[{TOY}]"])
    workdir = tmp_path / "run"
    metrics = run_experiment(config, str(workdir))

    result = metrics["stages"][TOY]
    assert result["epochs_done"] == TOY_EPOCHS and result["resumed_from"] is None
    assert all(np.isfinite(h["loss"]) for h in result["history"])
    assert (workdir / "checkpoints" / TOY / "checkpoint").is_file()
    assert (workdir / "checkpoints" / TOY / "done.json").is_file()
    assert list((workdir / "logs" / TOY).glob("events.out.tfevents*"))
    assert metrics["seeds"][f"{TOY}_data"] == [stage_seed(0, TOY, 0), "+ epoch"]
    assert metrics["leak_check"]["passed"]
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["stages"][TOY]["epochs_done"] == TOY_EPOCHS

    import keras

    trained = keras.saving.load_model(str(workdir / "model.keras"))
    assert [float(np.sum(w)) for w in trained.get_weights()] != start


def _model_weights(tmp_path):
    """The weights a run of the tiny config starts from."""
    import keras

    from tfiqa.models import build_model

    config = load_config(write_config(tmp_path))
    keras.utils.set_random_seed(config.runtime.seed)
    model = build_model(config.model, crop_size=config.data.crop_size)
    return model.get_weights()
