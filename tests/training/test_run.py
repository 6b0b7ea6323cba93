import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from tfiqa.cli import cli
from tfiqa.config import builtin_config_path, load_config
from tfiqa.errors import ConfigError, DataError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Every stage at the smallest scale the models accept (32 px crops).
TINY = {
    "model": {
        "backbone": "mobilenet_v3_small",
        "weights": "none",
        "levels": ["P4", "P5"],
        "head_units": [8],
        "scoring": {"crops": 2},
    },
    "data": {
        "crop_size": 32,
        "batch_size": 8,
        "pristine_count": 8,
        "pristine_size": 48,
        "dataset": "distorted",
        "synthetic_types": ["white_noise"],
        "synthetic_levels": [2, 5],
        "val_ratio": 0.25,
        "test_ratio": 0.25,
        "num_splits": 1,
    },
    "stages": {
        "order": ["rank", "finetune"],
        "rank": {
            "types": ["white_noise", "gaussian_blur"],
            "groups_per_batch": 2,
            "schedule": {"epochs": 2, "steps_per_epoch": 2, "val_steps": 1},
            "optimizer": {"learning_rate": 1e-3},
        },
        "finetune": {
            "schedule": {"epochs": 2, "steps_per_epoch": 2},
            "optimizer": {"learning_rate": 1e-3},
        },
    },
    "runtime": {"verbose": 0, "precise_bn_batches": 2},
}


def deep_update(config, changes):
    """`config` (nested dicts) with `changes` merged in, key by key."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            deep_update(config[key], value)
        else:
            config[key] = value
    return config


def write_config(tmp_path, **changes):
    config = deep_update(json.loads(json.dumps(TINY)), changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_quickstart_config_loads():
    config = load_config(builtin_config_path("quickstart"))
    assert config.model.weights == "none"
    assert config.model.backbone == "mobilenet_v3_small"
    assert {"rank", "finetune"} <= set(config.stages.order)
    assert config.data.dataset == "distorted" and not config.data.dataset_dir
    assert not config.data.pristine_dir  # generated, no data folder needed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "stages.order=[bogus]"], "Unknown training stage 'bogus'"),
        (
            ["--set", "stages.finetune.schedule.epochs=many"],
            "stages.finetune.schedule.epochs",
        ),
        (["--config", "missing.yaml"], "not found"),
    ],
)
def test_train_bad_config_exits_2_with_one_line(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["train", "--workdir", str(tmp_path), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], result.output


def test_stage_checks_fail_before_training(tmp_path):
    from tfiqa.config_checks import check_stage_values
    from tfiqa.training.experiment import run_experiment

    with pytest.raises(ConfigError, match="steps_per_epoch"):
        load_config(write_config(tmp_path), ["stages.rank.schedule.steps_per_epoch=0"])
    config = load_config(write_config(tmp_path), ["data.crop_size=64"])
    with pytest.raises(ConfigError, match="data.crop_size 64 is larger"):
        check_stage_values(config)
    config = load_config(
        write_config(tmp_path), ["data.dataset=csv", "stages.order=[finetune]"]
    )
    with pytest.raises(ConfigError, match="data.dataset_dir"):
        run_experiment(config, str(tmp_path / "run"))
    config = load_config(write_config(tmp_path), ["data.crop_size=64"])
    with pytest.raises(ConfigError, match="data.crop_size 64 is larger"):
        run_experiment(config, str(tmp_path / "run3"))
    assert not (tmp_path / "run3" / "data" / "pristine").exists()
    config = load_config(write_config(tmp_path), ["data.pristine_dir=nowhere"])
    with pytest.raises((ConfigError, DataError), match="nowhere"):
        run_experiment(config, str(tmp_path / "run2"))


def test_pristine_split_and_synthetic_set(tmp_path):
    from tfiqa.data.pristine import generate_pristine
    from tfiqa.data.readers import read_dataset
    from tfiqa.training.stages.data import _split_pristine, synthesize_mos_set

    paths = generate_pristine(str(tmp_path / "p"), count=5, size=40, seed=0)
    config = load_config(write_config(tmp_path))
    split = _split_pristine(config, paths, seed=0)
    assert len(split["val"]) == 1 and len(split["train"]) == 4
    assert not set(split["val"]) & set(split["train"])
    assert split == _split_pristine(config, paths, seed=0)

    folder = synthesize_mos_set(
        paths[:2], str(tmp_path / "s"), ["white_noise"], [1, 5], 0
    )
    records = read_dataset("distorted", folder)
    assert len(records) == 2 * 3
    by_level = {}
    for r in records:
        by_level.setdefault(r["ref_id"], {})[r["level"]] = r["mos"]
    for levels in by_level.values():
        assert levels[0] == 1.0 > levels[1] > levels[5] >= 0.0


def test_format_summary():
    from tfiqa.training.experiment import format_summary

    text = format_summary(
        {
            "stages": {
                "rank": {
                    "epochs": 3,
                    "epochs_done": 3,
                    "wall_s": 12.5,
                    "val": {"pair_accuracy": 0.8, "srcc": 0.7},
                },
                "finetune": {
                    "epochs": 5,
                    "epochs_done": 4,
                    "stopped_early": True,
                    "wall_s": 30.0,
                    "best_epoch": 2,
                    "val": {"srcc": 0.61, "plcc": 0.65},
                },
            },
            "test": {"srcc": 0.55, "plcc": 0.6},
        }
    )
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "epochs", "time", "validation"]
    assert "pair_accuracy=0.800" in lines[2] and "12.5s" in lines[2]
    assert "4/5 (early stop)" in lines[3] and "(best epoch 2)" in lines[3]
    assert lines[4].startswith("test") and "srcc=0.550" in lines[4]


@pytest.mark.slow
def test_run_experiment_writes_workdir(tmp_path):
    from tfiqa.training.run import run_experiment

    config = load_config(write_config(tmp_path))
    workdir = tmp_path / "run"
    metrics = run_experiment(config, str(workdir))
    for name in ("config.yaml", "model.keras", "metrics.json"):
        assert (workdir / name).is_file(), name
    for stage in ("rank", "finetune"):
        assert (workdir / "checkpoints" / stage / "checkpoint").is_file()
        assert (workdir / "checkpoints" / stage / "done.json").is_file()
        assert list((workdir / "logs" / stage).glob("events.out.tfevents*"))
    assert (workdir / "splits" / "splits.json").is_file()
    assert (workdir / "splits" / "pristine.json").is_file()
    for stage in ("rank", "finetune"):
        split = json.loads((workdir / "splits" / f"{stage}.json").read_text())
        assert split["train"] and split["val"] and "seed" in split
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["leak_check"]["passed"] and saved["leak_check"]["test_ids"] > 0
    assert {"meta_episodes", "rank_data", "splits"} <= set(saved["seeds"])
    rank, finetune = saved["stages"]["rank"], saved["stages"]["finetune"]
    assert rank["epochs_done"] == 2 and len(rank["history"]) == 2
    assert {"pair_accuracy", "srcc", "loss"} <= set(rank["val"])
    assert {"srcc", "plcc"} <= set(finetune["val"])
    assert finetune["best_epoch"] in (1, 2)
    assert {"srcc", "plcc"} <= set(saved["test"]) and saved["test"]["n"] > 0
    assert saved["seeds"]["runtime"] == 0 and saved["resumed"] == []
    assert metrics["stages"]["finetune"]["split_sizes"]["test"] > 0

    # The saved model scores like the trained one (the selected epoch).
    import keras
    import numpy as np

    model = keras.saving.load_model(str(workdir / "model.keras"))
    images = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3)).astype("uint8")
    scores = model.predict(images, verbose=0)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))

    # Running again finds every stage done and only rewrites the outputs.
    again = run_experiment(config, str(workdir))
    assert again["stages"]["rank"]["skipped"] == "already done"
    assert again["stages"]["finetune"]["skipped"] == "already done"


def latest_checkpoint_number(folder):
    state = os.path.join(folder, "checkpoint")
    if not os.path.isfile(state):
        return 0
    with open(state) as f:
        first = f.readline()
    return int(first.rsplit("-", 1)[1].strip().strip('"'))


@pytest.mark.slow
def test_sigkill_then_resume_from_last_checkpoint(tmp_path):
    config = write_config(
        tmp_path, stages={"rank": {"schedule": {"epochs": 6, "steps_per_epoch": 3}}}
    )
    workdir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "tfiqa.cli",
        "train",
        "--config",
        config,
        "--workdir",
        str(workdir),
    ]
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    rank_dir = str(workdir / "checkpoints" / "rank")
    deadline = time.time() + 300
    while latest_checkpoint_number(rank_dir) < 1:
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved_epochs = latest_checkpoint_number(rank_dir)
    assert 1 <= saved_epochs < 6
    assert not (workdir / "metrics.json").exists()

    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"[rank] resuming at epoch {saved_epochs + 1}/6" in result.stdout
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["resumed"][0]["stage"] == "rank"
    assert metrics["resumed"][0]["epoch"] == saved_epochs + 1
    rank = metrics["stages"]["rank"]
    assert rank["initial_epoch"] == saved_epochs and rank["epochs_done"] == 6
    assert len(rank["history"]) == 6  # the epochs before the kill too
    assert metrics["stages"]["finetune"]["epochs_done"] == 2
    assert (workdir / "model.keras").is_file()


def test_repository_configs_load_without_warnings():
    import glob
    import warnings

    configs = sorted(
        glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
    )
    names = {os.path.relpath(p, os.path.join(ROOT, "configs")) for p in configs}
    assert {
        "rankiqa_vgg16_live.yaml",
        "resnet18_multilevel.yaml",
        "mobilenet_v3_mobile.yaml",
        "shared_data_biq2021.yaml",
        "export_accuracy_model.yaml",
        "presets/mobile-mnv3s.yaml",
    } <= names
    # One quickstart: the packaged one that `tfiqa train` runs without --config.
    assert "quickstart.yaml" not in names
    recipes = glob.glob(os.path.join(ROOT, "configs", "export", "*.yaml"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # shipped in the current layout
        for path in [*configs, *recipes, builtin_config_path("quickstart")]:
            load_config(path)


@pytest.mark.slow
def test_init_from_loads_weights_and_rejects_other_architectures(tmp_path):
    import numpy as np

    from tfiqa.models import build_model
    from tfiqa.training.experiment import load_initial_weights

    config = load_config(write_config(tmp_path))
    source = build_model(config.model)
    source.save_weights(str(tmp_path / "a.weights.h5"))
    source.save(str(tmp_path / "a.keras"))
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype("uint8")
    expected = source.predict(images, verbose=0)
    for name in ("a.weights.h5", "a.keras"):
        target = build_model(config.model)
        load_initial_weights(target, str(tmp_path / name))
        np.testing.assert_allclose(
            target.predict(images, verbose=0), expected, rtol=1e-5
        )
    other = load_config(write_config(tmp_path), ["model.levels=[P5]"])
    with pytest.raises(ConfigError, match="init_from"):
        load_initial_weights(build_model(other.model), str(tmp_path / "a.weights.h5"))
    with pytest.raises(ConfigError, match="not found"):
        load_initial_weights(source, str(tmp_path / "missing.keras"))


@pytest.mark.slow
def test_rank_stage_with_device_distortions_trains_like_the_cpu_path(tmp_path):
    import numpy as np

    from tfiqa.training.run import run_experiment

    results = {}
    for device in (False, True):
        stages = {"order": ["rank"], "rank": {"device_distortions": device}}
        folder = tmp_path / str(device)
        folder.mkdir()
        config = load_config(write_config(folder, stages=stages))
        results[device] = run_experiment(config, str(folder / "run"))
    cpu, device = (results[d]["stages"]["rank"]["history"] for d in (False, True))
    # The same batches up to one intensity level on a few pixels.
    for a, b in zip(cpu, device, strict=True):
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=0.02, atol=1e-3)
