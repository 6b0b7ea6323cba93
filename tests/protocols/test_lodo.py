"""Leave-one-distortion-out: scoring, table, config checks, the CLI sweep."""

import csv
import json
import os
import types

import keras
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import TINY_MODEL_SETTINGS, conv_scorer

from tfiqa.cli import cli
from tfiqa.config import load_config
from tfiqa.errors import ConfigError
from tfiqa.metrics import srcc
from tfiqa.protocols.lodo import (
    check_priors,
    prior_adaptation,
    prior_config,
    score_prior,
    sweep_types,
)
from tfiqa.protocols.lodo_report import format_table
from tfiqa.training.maml import MAMLStep


def brightness_scorer(seed=0):
    """uint8 (B, 16, 16, 3) -> (B,) scores."""
    return conv_scorer(16, seed, "tanh", batchnorm=False, rescale=True)


def held_out_data(seed=0, n=12):
    rng = np.random.default_rng(seed)

    def draw(count):
        images = rng.integers(0, 256, (count, 16, 16, 3)).astype(np.uint8)
        labels = (images.mean((1, 2, 3)) / 255.0).astype(np.float32)
        return images, labels

    test_images, test_labels = draw(n)
    return types.SimpleNamespace(
        test_images=test_images,
        test_labels=test_labels,
        support={4: [draw(4), draw(4)]},
    )


def test_score_prior_zero_and_k_shot_leave_the_prior_alone():
    model = brightness_scorer()
    data = held_out_data()
    before = [v.numpy().copy() for v in model.variables]
    step = MAMLStep(model, inner_steps=3, inner_learning_rate=1.0)
    scores = score_prior(model, data, [0, 4], step)
    expected = srcc(model(data.test_images).numpy(), data.test_labels)
    assert scores[0] == pytest.approx(expected)
    assert np.isfinite(scores[4]) and scores[4] != scores[0]
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)


def test_format_table_has_a_row_per_type_and_a_mean():
    rows = [
        {"type": t, "prior": p, "k": k, "srcc": s}
        for t, base in (("jpeg", 0.5), ("darken", 0.1))
        for p, shift in (("meta", 0.2), ("scratch", 0.0))
        for k, s in ((0, base + shift), (10, base + shift + 0.1))
    ]
    rows[0]["srcc"] = float("nan")
    table = format_table(rows, ["meta", "scratch"], [0, 10])
    lines = table.strip().splitlines()
    assert lines[0] == (
        "| held-out type | meta k=0 | meta k=10 | scratch k=0 | scratch k=10 |"
    )
    assert lines[2].startswith("| jpeg | nan | 0.800 | 0.500 | 0.600 |")
    # NaN cells are left out of the mean.
    assert lines[-1] == "| **mean** | 0.300 | 0.600 | 0.300 | 0.400 |"


def test_config_checks():
    with pytest.raises(ConfigError, match="priors"):
        check_priors(["meta", "maml"])
    config = load_config(None, ["stages.meta.types=[jpeg, darken]"])
    assert sweep_types(config) == (["jpeg", "darken"], ["jpeg", "darken"])
    with pytest.raises(ConfigError, match="protocols.lodo.types"):
        sweep_types(
            load_config(
                None, ["stages.meta.types=[jpeg]", "protocols.lodo.types=[blur]"]
            )
        )
    with pytest.raises(ConfigError, match="at least two"):
        sweep_types(load_config(None, ["stages.meta.types=[jpeg]"]))
    with pytest.raises(ConfigError, match="synthetic"):
        sweep_types(load_config(None, ["stages.meta.task_source=tid2013"]))


def test_prior_config_removes_the_held_out_type_everywhere():
    config = load_config(None, ["stages.rank.types=[jpeg, darken, white_noise]"])
    cfg = prior_config(config, ["jpeg", "darken"], "jpeg", "rank+meta", "/p")
    assert cfg.stages.order == ["rank", "meta"]
    assert cfg.stages.meta.types == ["jpeg", "darken"] and cfg.stages.meta.holdout == [
        "jpeg"
    ]
    assert cfg.stages.rank.types == ["darken", "white_noise"]
    assert cfg.data.pristine_dir == "/p"
    assert config.stages.meta.holdout == []  # the original is untouched


def test_multitask_prior_sees_the_same_images_without_the_inner_loop(tmp_path):
    config = load_config(
        None,
        [
            "stages.meta.support_size=8",
            "stages.meta.query_size=4",
            "stages.meta.inner_steps=2",
            "stages.meta.learn_inner_lr=true",
        ],
    )
    cfg = prior_config(config, ["jpeg", "darken"], "jpeg", "multitask", "/p")
    assert cfg.stages.order == ["meta"] and cfg.stages.meta.holdout == ["jpeg"]
    assert (cfg.stages.meta.support_size, cfg.stages.meta.query_size) == (1, 11)
    assert cfg.stages.meta.inner_steps == 0 and not cfg.stages.meta.learn_inner_lr
    # Scored with the meta-training adaptation, not its own zero steps.
    model = brightness_scorer()
    step = prior_adaptation(config, "multitask", str(tmp_path), model)
    assert step.inner_steps == 2 and not step.inner_lrs


def test_k_shot_adaptation_is_the_one_the_meta_prior_was_trained_with(tmp_path):
    from tfiqa.models import build_model
    from tfiqa.training.adaptation import adaptation_spec, save_adaptation
    from tfiqa.training.meta_trainer import MetaTrainer

    config = load_config(
        None,
        [
            *TINY_MODEL_SETTINGS,
            "stages.meta.adapt=head",
            "stages.meta.inner_steps=2",
            "stages.meta.inner_learning_rate=0.05",
            "stages.meta.learn_inner_lr=true",
        ],
    )
    model = build_model(config.model, crop_size=32)
    trainer = MetaTrainer(
        model,
        inner_steps=2,
        inner_learning_rate=0.05,
        learn_inner_lr=True,
        adapt="head",
    )
    rng = np.random.default_rng(0)
    learned = [rng.uniform(0.01, 0.2, v.shape) for v in trainer.inner_lrs]
    for variable, value in zip(trainer.inner_lrs, learned, strict=True):
        variable.assign(value)
    save_adaptation(str(tmp_path), trainer.maml, adaptation_spec(config.stages.meta))
    model.save(tmp_path / "model.keras")
    prior = keras.saving.load_model(tmp_path / "model.keras")

    step = prior_adaptation(config, "meta", str(tmp_path), prior)
    paths = [prior.trainable_variables[i].path for i in step.adapt_indices]
    assert paths == [v.path for v in prior.head_variables]
    assert len(paths) < len(prior.trainable_variables)
    assert step.inner_steps == 2
    for variable, value in zip(step.inner_lrs, learned, strict=True):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-6)
    # A prior without a meta stage: same variables and steps, scalar rate.
    plain = prior_adaptation(config, "rank", str(tmp_path / "none"), prior)
    assert plain.adapt_indices == step.adapt_indices and not plain.inner_lrs
    assert (plain.inner_steps, plain.inner_learning_rate) == (2, 0.05)


TINY = {
    "model": {
        "backbone": "mobilenet_v3_small",
        "weights": "none",
        "levels": ["P5"],
        "head_units": [8],
    },
    "data": {"crop_size": 32, "pristine_count": 6, "pristine_size": 48},
    "stages": {
        "meta": {
            "types": ["white_noise", "darken"],
            "label": "level",
            "support_size": 4,
            "query_size": 2,
            "meta_batch_size": 1,
            "schedule": {"epochs": 1, "steps_per_epoch": 2, "val_steps": 1},
            "adapt": "head",
            "inner_learning_rate": 0.05,
            "bn_recalibration_batches": 1,
        },
    },
    "protocols": {"lodo": {"types": ["darken"], "shots": [0, 3], "test_size": 8}},
    "runtime": {"verbose": -1},
}


@pytest.mark.slow
def test_lodo_command_writes_the_table_and_resumes(tmp_path):
    config = tmp_path / "lodo.yaml"
    config.write_text(yaml.safe_dump(TINY))
    workdir = tmp_path / "sweep"
    args = ["lodo", "--config", str(config), "--workdir", str(workdir)]
    args += ["--priors", "meta,scratch", "--repeats", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| held-out type | meta k=0 | meta k=3 | scratch k=0 | scratch k=3 |" in (
        result.output
    )
    with open(workdir / "lodo.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["type"], r["prior"], r["k"]) for r in rows] == [
        ("darken", "meta", "0"),
        ("darken", "meta", "3"),
        ("darken", "scratch", "0"),
        ("darken", "scratch", "3"),
    ]
    assert all(r["n_test"] == "8" for r in rows)
    with open(workdir / "lodo.json") as f:
        saved = json.load(f)
    adaptation = saved["adaptation"]
    assert set(saved["seeds"]["held_out_data"]) == {"darken"}
    head = {a["prior"]: a["variables"] for a in adaptation}
    assert head["meta"] == head["scratch"] < 10  # the head only (stages.meta.adapt)
    assert {a["steps"] for a in adaptation} == {1}
    # The meta prior never saw the held-out type.
    with open(workdir / "darken" / "meta" / "config.yaml") as f:
        saved = yaml.safe_load(f)
    assert saved["stages"]["meta"]["holdout"] == ["darken"]
    assert os.path.isfile(workdir / "darken" / "meta" / "model.keras")
    assert "LODO sweep" not in result.stderr  # runtime.verbose -1: no bar
    # Running again resumes: same table, no retraining; the bar counts runs.
    again = CliRunner(env={"TFIQA_PROGRESS": "1"}).invoke(
        cli, [*args, "--set", "runtime.verbose=1"]
    )
    assert again.exit_code == 0, again.output
    with open(workdir / "lodo.csv") as f:
        assert list(csv.DictReader(f)) == rows
    assert again.stderr.startswith("LODO sweep\n") and "2/2" in again.stderr
    assert again.stdout.endswith(result.stdout.split("\n| held-out type")[-1])


def test_lodo_command_reports_bad_priors(tmp_path):
    result = CliRunner().invoke(
        cli, ["lodo", "--workdir", str(tmp_path), "--priors", "maml"]
    )
    assert result.exit_code == 2
    assert "maml" in result.output
