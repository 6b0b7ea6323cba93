"""benchmarks/run.py and the benchmark configs: parameters, errors, a quick run."""

import importlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCHMARKS)

import common  # noqa: E402

NOT_BENCHMARKS = (
    "arms.py",
    "common.py",
    "results_index.py",
    "run.py",
    "seed_priors_summary.py",
)


def run_python(*args, timeout=60):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def required_filled(name):
    """Overrides giving every required parameter of `name` a value."""
    _, defaults, _ = common._config(name)
    return {k: "/x" for k, v in defaults.items() if v == common.REQUIRED}


def test_every_benchmark_script_has_a_config_a_run_and_valid_quick_settings():
    scripts = sorted(
        f[: -len(".py")]
        for f in os.listdir(BENCHMARKS)
        if f.endswith(".py") and f not in NOT_BENCHMARKS
    )
    assert common.benchmark_names() == scripts
    for name in scripts:
        assert callable(importlib.import_module(name).run), name
        params = common.load_params(name, quick=True, overrides=required_filled(name))
        assert params.results_dir == os.path.join(ROOT, "benchmarks", "results")


def test_parameters_come_from_the_config_then_quick_then_set():
    params = common.load_params("transfer", overrides=["data_dir=/d"])
    assert (params.splits, params.seeds, params.arms) == (
        5,
        "0,1",
        "probe,head,head_single",
    )
    assert params.arm == [] and params.select is False
    assert params.out == os.path.join(ROOT, "benchmarks", "out", "transfer")
    quick = common.load_params(
        "transfer",
        quick=True,
        overrides=["data_dir=/d", "splits=3", "seeds=0", "arm=[a=b.yaml]"],
    )
    # quick: arms probe, splits 1, seeds "0"; --set wins and is coerced.
    assert (quick.arms, quick.splits, quick.seeds) == ("probe", 3, "0")
    assert quick.arm == ["a=b.yaml"] and quick.data_dir == "/d"


def test_the_transfer_command_line_keeps_working(monkeypatch):
    seen = {}
    monkeypatch.setattr(
        common, "run_benchmark", lambda name, params: seen.update({name: params})
    )
    argv = [
        "--data-dir", "../shared/data", "--select", "--arms", "",
        "--arm", "full512=configs/hed.yaml:data.crop_size=512;model.scoring.crops=1",
        "--arm", "other=configs/x.yaml", "--seeds", "0", "--splits", "2",
        "--name", "probe_run", "--baseline", "full512", "--out", "/tmp/o",
    ]  # fmt: skip
    assert common.script(os.path.join(BENCHMARKS, "transfer.py"), argv=argv) == 0
    params = vars(seen["transfer"])
    assert params == {
        "results_dir": os.path.join(ROOT, "benchmarks", "results"),
        "data_dir": "../shared/data",
        "out": "/tmp/o",
        "name": "probe_run",
        "arms": "",
        "arm": [
            "full512=configs/hed.yaml:data.crop_size=512;model.scoring.crops=1",
            "other=configs/x.yaml",
        ],
        "splits": 2,
        "seeds": "0",
        "select": True,
        "baseline": "full512",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["run.py", "transfr"],
            "Unknown benchmark 'transfr'. Did you mean 'transfer'?",
        ),
        (
            ["run.py", "transfer_speed", "--set", "rouns=2"],
            "benchmarks/configs/transfer_speed.yaml: Unknown config key 'rouns'.",
        ),
        (["run.py", "transfer_speed", "--set", "rounds=many"], "rounds must be int"),
        (["run.py", "transfer", "--quick"], "transfer.yaml: data_dir has no value"),
        (["transfer.py", "--splits", "2"], "transfer.yaml: data_dir has no value"),
        (["transfer.py", "--data-dir", "d", "--splits", "x"], "splits must be int"),
    ],
)
def test_an_unknown_name_or_bad_key_fails_with_one_line(argv, message):
    proc = run_python(os.path.join("benchmarks", argv[0]), *argv[1:])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _results_snapshot():
    folder = os.path.join(BENCHMARKS, "results")
    return {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)}


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown_where_told(tmp_path):
    """mixed_precision (two tiny models, generated images) through the runner."""
    before = _results_snapshot()
    proc = run_python(
        "benchmarks/run.py", "mixed_precision", "--quick",
        "--set", f"results_dir={tmp_path}", "--set", "steps=2",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _results_snapshot() == before  # the committed results are untouched
    saved = json.loads((tmp_path / "mixed_precision.json").read_text())
    assert saved["name"] == "mixed_precision"
    assert {"cpu", "tensorflow", "keras", "commit"} <= set(saved["environment"])
    # The file alone says how to reproduce it: every parameter and the command.
    assert saved["environment"]["params"]["steps"] == 2
    assert saved["environment"]["params"]["results_dir"] == str(tmp_path)
    command = saved["environment"]["command"]
    assert command.startswith("benchmarks/run.py mixed_precision --quick")
    assert "steps=2" in command
    # The quick settings (one backbone, crop 32, batch 2) and the --set value.
    assert "Crop 32, batch 2" in saved["notes"] and "2 timed steps" in saved["notes"]
    (row,) = saved["rows"]
    assert row["backbone"] == "mobilenet_v3_small"
    assert row["float32 step ms"] > 0 and row["bf16 step ms"] > 0
    ratio = row["float32 step ms"] / row["bf16 step ms"]
    assert row["bf16 speed-up"] == pytest.approx(ratio, rel=0.03)
    assert -1 <= row["SRCC bf16 vs float32 at init"] <= 1
    assert 0 <= row["float32 final loss"] < 1 and 0 <= row["bf16 final loss"] < 1
    text = (tmp_path / "mixed_precision.md").read_text()
    assert text.startswith("### mixed_bfloat16 vs float32")
    assert f"commit {saved['environment']['commit']}" in text
    assert "| mobilenet_v3_small |" in text


def test_every_committed_result_says_how_to_reproduce_it():
    """Each results JSON (not `retired/`) holds its parameters and command,
    measured from a committed tree."""
    folder = os.path.join(BENCHMARKS, "results")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
    assert names
    stale = {}
    for name in names:
        with open(os.path.join(folder, name)) as f:
            env = json.load(f).get("environment") or {}
        problems = [k for k in ("command", "params") if not env.get(k)]
        if str(env.get("commit", "")).endswith("+dirty"):
            problems.append(f"commit {env['commit']}")
        if problems:
            stale[name] = problems
    assert not stale, f"Rerun from a clean commit or move to results/retired/: {stale}"


def test_the_readme_index_lists_every_result_as_recorded():
    import results_index

    with open(results_index.README) as f:
        text = f.read()
    expected = results_index.with_index(text, results_index.index_text())
    assert text == expected, "Run benchmarks/results_index.py to update the index"
