"""Configs of the layout before sections by role still load, the same.

`tests/data/old_configs/` holds the exact text of every config that shipped
before the change (`git show 4cf2a34:<path>`, same paths below it), so that
the test runs without git history too.
"""

import glob
import os
import warnings

import pytest

from tfiqa import config as config_lib
from tfiqa.config_limits import RULES, leaf_fields
from tfiqa.config_migration import MOVES, OLD_SECTIONS, migrate
from tfiqa.errors import ConfigDeprecationWarning, ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD = os.path.join(ROOT, "tests", "data", "old_configs")
# Where each old file lives now (quickstart: one copy, the packaged one).
RENAMED = {
    "configs/quickstart.yaml": "tfiqa/configs/quickstart.yaml",
    "benchmarks/export_accuracy_model.yaml": "configs/export_accuracy_model.yaml",
    "export/recipes/phone.yaml": "configs/export/phone.yaml",
    "export/recipes/phone_int8.yaml": "configs/export/phone_int8.yaml",
    "export/recipes/server.yaml": "configs/export/server.yaml",
}
OLD_PATHS = sorted(
    os.path.relpath(p, OLD)
    for p in glob.glob(os.path.join(OLD, "**", "*.yaml"), recursive=True)
)


def _load(path, overrides=()):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = config_lib.load_config(path, overrides)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    return config, [str(w.message) for w in deprecations]


def test_every_config_that_shipped_before_is_kept():
    assert len(OLD_PATHS) == 15
    for path in OLD_PATHS:
        assert os.path.isfile(os.path.join(ROOT, RENAMED.get(path, path))), path


BRANCH_POINT = "4cf2a340cfffcaa1f97804cdd2a09f1b3529378b"


def test_stored_old_configs_are_the_shipped_text():
    import subprocess

    for path in OLD_PATHS:
        shown = subprocess.run(
            ["git", "-C", ROOT, "show", f"{BRANCH_POINT}:{path}"],
            capture_output=True,
            text=True,
        )
        if shown.returncode:
            pytest.skip(f"no git history here: {shown.stderr.strip()}")
        with open(os.path.join(OLD, path)) as f:
            assert f.read() == shown.stdout, path


@pytest.mark.parametrize("path", OLD_PATHS)
def test_old_config_loads_with_warnings_and_same_values(path):
    old, messages = _load(os.path.join(OLD, path))
    new, new_messages = _load(os.path.join(ROOT, RENAMED.get(path, path)))
    assert new_messages == []  # the shipped files are in the new layout
    assert config_lib.config_to_dict(old) == config_lib.config_to_dict(new)
    with open(os.path.join(OLD, path)) as f:
        sections = config_lib.read_yaml(f.name)
    moved = [
        old_key
        for old_key in MOVES
        if old_key.split(".")[1] in (sections.get(old_key.split(".")[0]) or {})
    ]
    assert sorted(messages) == sorted(
        f"{key} is deprecated: use {MOVES[key]}" for key in moved
    )


def test_every_old_key_maps_to_an_existing_new_key():
    new_keys = {key for key, *_ in leaf_fields(config_lib.ExperimentConfig())}
    assert set(RULES) == new_keys
    for old, new in MOVES.items():
        assert new in new_keys, f"{old} -> {new}"
        assert old not in new_keys, old
    assert len(set(MOVES.values())) == len(MOVES)
    # Every key of the old sections that moved whole is in the table.
    for section in OLD_SECTIONS:
        assert any(k.startswith(f"{section}.") for k in MOVES)


def test_override_with_old_key_warns_once_and_moves():
    config, messages = _load(None, ["finetune.epochs=3", "trainer.seed=7"])
    assert config.stages.finetune.schedule.epochs == 3
    assert config.runtime.seed == 7
    assert messages == [
        "finetune.epochs is deprecated: use stages.finetune.schedule.epochs",
        "trainer.seed is deprecated: use runtime.seed",
    ]


def test_old_and_new_key_together_is_an_error(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text(
        "finetune:\n  epochs: 3\nstages:\n  finetune:\n    schedule:\n      epochs: 4\n"
    )
    with pytest.raises(ConfigError, match=r"finetune\.epochs and stages\.finetune"):
        config_lib.load_config(str(path))
    with pytest.raises(ConfigError, match="data.eval_crops and model.scoring.crops"):
        migrate({"data": {"eval_crops": 3}, "model": {"scoring": {"crops": 2}}})


def test_unknown_key_in_an_old_section_names_it():
    with pytest.raises(ConfigError, match="Unknown config key 'finetune.epoch'"):
        config_lib.load_config(None, ["finetune.epoch=3"])


def test_saved_config_is_new_layout_and_old_work_dir_config_resumes(tmp_path):
    import yaml

    config = config_lib.load_config(
        None, ["stages.finetune.schedule.epochs=3", "model.scoring.crops=2"]
    )
    path = tmp_path / "config.yaml"
    config_lib.save_config(config, str(path))
    saved = yaml.safe_load(path.read_text())
    assert set(saved) == {"data", "model", "stages", "runtime", "protocols", "export"}
    again, messages = _load(str(path))
    assert messages == [] and again == config
    # A work dir written before the change: `save_config` wrote every key
    # of the old layout.
    old = config_lib.config_to_dict(config)
    for old_key, new_key in MOVES.items():
        *parents, name = new_key.split(".")
        node = old
        for part in parents:
            node = node[part]
        section, key = old_key.split(".")
        old.setdefault(section, {})[key] = node.pop(name)
    for section in ("stages", "protocols"):
        del old[section]  # what is left of them is empty sub-sections
    old["model"].pop("scoring")
    path.write_text(yaml.safe_dump(old))
    resumed, messages = _load(str(path))
    assert resumed == config
    assert len(messages) == len(MOVES)


def test_deprecation_warning_category():
    with pytest.warns(DeprecationWarning, match="use model.scoring.resize"):
        config_lib.load_config(None, ["model.input_resize=0"])
    assert issubclass(ConfigDeprecationWarning, DeprecationWarning)


def test_cli_prints_each_deprecation_once_on_one_line(tmp_path):
    # A fresh interpreter: pytest shows DeprecationWarnings itself, a plain
    # `python` ignores them unless the CLI asks for them.
    import subprocess
    import sys

    old = tmp_path / "old.yaml"
    old.write_text("finetune:\n  epochs: 3\ndata:\n  crop_size: 8\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "tfiqa.cli", "train", "--config", str(old)]
    command += ["--workdir", str(tmp_path / "run"), "--set", "trainer.seed=2"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "Warning: finetune.epochs is deprecated: use stages.finetune.schedule.epochs",
        "Warning: trainer.seed is deprecated: use runtime.seed",
        "Error: data.crop_size must be >= 32 and <= 4096. Received: 8",
    ]
