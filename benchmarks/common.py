"""Shared by the benchmarks: parameters, command lines, environment, results.

A benchmark is a module `benchmarks/<name>.py` with a `run(params)` function
and a config `benchmarks/configs/<name>.yaml` holding its parameters and their
defaults (`???` marks a required one, `null` an optional path or name); a
`quick:` mapping in it gives the overrides of a tiny smoke run. Parameters
come from the config, then `--quick`, then `--set key=value` (parsed as YAML
and coerced to the default's type; an unknown key is an error that lists the
valid ones). `benchmarks/run.py NAME` runs any of them; `benchmarks/<name>.py`
still takes each parameter as an option (`data_dir` -> `--data-dir`).

Every benchmark writes `<results_dir>/<name>.json` (rows + environment, with
the full parameters and the command line that produced them) and
`<results_dir>/<name>.md` (a markdown table headed by the hardware, library
versions and git commit it was measured on); `results_dir` defaults to
`benchmarks/results`.
"""

import argparse
import dataclasses
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tfiqa.config_merge import merge, parse_override, read_yaml  # noqa: E402
from tfiqa.errors import ConfigError, TfiqaError  # noqa: E402
from tfiqa.files import write_json_atomic, write_text_atomic  # noqa: E402
from tfiqa.quiet_import import import_tensorflow_quietly  # noqa: E402
from tfiqa.registry import Registry  # noqa: E402

CONFIG_DIR = os.path.join(HERE, "configs")
RESULTS_DIR = os.path.join(HERE, "results")
REQUIRED = "???"
# Parameters every benchmark has; paths given as defaults are relative to the
# repository root, paths given by the user to the working directory.
SHARED = {"results_dir": "benchmarks/results"}
PATH_KEYS = ("out", "results_dir")
CHILD_FLAG = "--child-params"
RESULT_PREFIX = "RESULT "
# Where `write_results` writes: the running benchmark's `results_dir`, so
# that the benchmarks need not pass it to every writer.
_results_dir = [RESULTS_DIR]
# The running benchmark's full parameters and command line, recorded with
# every result so that a results file alone says how to reproduce it.
_provenance = {}


def benchmark_names():
    return sorted(
        f[: -len(".yaml")] for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml")
    )


def _config(name):
    names = Registry("benchmark")
    for known in benchmark_names():
        names.register(known, os.path.join(CONFIG_DIR, f"{known}.yaml"))
    path = names.get(name)
    spec = read_yaml(path)
    quick = spec.pop("quick", None) or {}
    defaults = {**SHARED, **spec}
    for key in PATH_KEYS:
        if isinstance(defaults.get(key), str) and defaults[key]:
            defaults[key] = os.path.join(ROOT, defaults[key])
    return path, defaults, quick


def _comments(path):
    """`key: value  # text` lines of a config -> {key: text}, the options' help."""
    helps = {}
    with open(path) as f:
        for line in f:
            match = re.match(r"(\w+):.*\s#\s*(.+)$", line)
            if match:
                helps[match.group(1)] = match.group(2).strip()
    return helps


def _schema(name, defaults):
    """A dataclass whose fields are the parameters, typed by their defaults."""
    fields = []
    for key, value in defaults.items():
        if value is None:
            kind = str | None
        elif isinstance(value, list):
            kind, value = list, dataclasses.field(default_factory=list(value).copy)
        else:
            kind = type(value)
        fields.append((key, kind, value))
    return dataclasses.make_dataclass(f"{name}_params", fields)


def load_params(name, quick=False, overrides=()):
    """The parameters of benchmark `name`: its config, `quick:`, then overrides.

    `overrides` is a list of `key=value` strings or a dict. Raises ConfigError
    (one line naming the file or key) on an unknown benchmark or key, a value
    of the wrong type, or a required parameter left unset.
    """
    path, defaults, quick_settings = _config(name)
    params = _schema(name, defaults)()
    if isinstance(overrides, dict):
        overrides = [overrides]
    layers = [quick_settings] if quick else []
    layers += [o if isinstance(o, dict) else parse_override(o) for o in overrides]
    try:
        for layer in layers:
            params = merge(params, layer)
    except ConfigError as e:
        raise ConfigError(f"{os.path.relpath(path, ROOT)}: {e}") from None
    missing = [k for k, v in vars(params).items() if v == REQUIRED]
    if missing:
        raise ConfigError(
            f"{os.path.relpath(path, ROOT)}: {', '.join(missing)} has no value "
            f"(--set {missing[0]}=... or --{missing[0].replace('_', '-')} ...)"
        )
    return params


def run_benchmark(name, params):
    """Runs benchmark `name` with `params`, writing under `params.results_dir`."""
    import importlib

    import_tensorflow_quietly()
    module = importlib.import_module(name)
    _results_dir[0] = params.results_dir
    _provenance.update(
        benchmark=name,
        params=vars(params),
        command=shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        # The tree as the run started: a benchmark that writes its results
        # as it goes would otherwise find its own files changed.
        commit=_git_commit(),
    )
    return module.run(params)


def _script_parser(name, path, defaults, doc):
    parser = argparse.ArgumentParser(
        prog=f"benchmarks/{name}.py",
        description=(doc or "").strip().split("\n")[0],
        epilog=f"Defaults: benchmarks/configs/{name}.yaml.",
    )
    parser.add_argument("--quick", action="store_true", help="A tiny smoke run.")
    helps = _comments(path)
    for key, value in defaults.items():
        help_text = helps.get(key, "")
        options = {"dest": key, "default": argparse.SUPPRESS, "help": help_text}
        if isinstance(value, bool):
            options["action"] = "store_true"
        elif isinstance(value, list):
            options["action"] = "append"
        else:
            default = "required" if value == REQUIRED else f"default: {value}"
            options["help"] = f"{help_text} ({default})".lstrip()
        parser.add_argument("--" + key.replace("_", "-"), **options)
    return parser


def script(file, doc=None, child=None, argv=None):
    """`python benchmarks/<name>.py --key value ...`: one option per parameter.

    A process started by `run_child` calls `child(params)` instead of `run`.
    Returns the exit status (see `guarded`).
    """
    name = os.path.splitext(os.path.basename(file))[0]
    argv = sys.argv[1:] if argv is None else argv
    if child is not None and argv[:1] == [CHILD_FLAG]:
        import_tensorflow_quietly()
        child(types.SimpleNamespace(**json.loads(argv[1])))
        return 0

    def start():
        path, defaults, _ = _config(name)
        given = vars(_script_parser(name, path, defaults, doc).parse_args(argv))
        quick = given.pop("quick", False)
        run_benchmark(name, load_params(name, quick, given))

    return guarded(start)


def guarded(start):
    """Calls `start()`; 0, or 2 after one line on a problem a user can fix."""
    try:
        start()
    except TfiqaError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    return 0


def run_child(file, params, **extra):
    """Runs `child(params + extra)` of benchmark `file` in a fresh process.

    Returns what the child passed to `child_result`, or None (after printing
    the end of its stderr) when it failed.
    """
    payload = json.dumps({**vars(params), **extra})
    command = [sys.executable, os.path.abspath(file), CHILD_FLAG, payload]
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        print(proc.stderr[-4000:], file=sys.stderr)
        return None
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def child_result(value):
    """Hands `value` (JSON-serialisable) from a child back to `run_child`."""
    print(RESULT_PREFIX + json.dumps(value), flush=True)


def run_tfiqa(command, config, workdir, overrides, data_dir, extra=()):
    """Runs `tfiqa <command>` in a fresh process, resuming in `workdir`.

    Its output goes to `<workdir>/<command>.log`; returns the seconds taken.
    """
    cmd = [sys.executable, "-m", "tfiqa.cli", command, "--config", config]
    cmd += ["--data-dir", data_dir, "--workdir", workdir, *extra]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    os.makedirs(workdir, exist_ok=True)
    start = time.time()
    with open(os.path.join(workdir, f"{command}.log"), "a") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"tfiqa {command} failed ({workdir}); see {command}.log")
    seconds = time.time() - start
    print(f"  done in {seconds:.0f}s: {workdir}", flush=True)
    return seconds


def read_metrics(workdir):
    """The `metrics.json` of a run folder."""
    with open(os.path.join(workdir, "metrics.json")) as f:
        return json.load(f)


def final_weights(workdir, stage):
    """The weights a run folder's `stage` ended with."""
    return os.path.join(workdir, "checkpoints", stage, "final.weights.h5")


def time_interleaved(fns, rounds, warmup=0, warmup_seconds=None):
    """{key: [seconds per call]} of the functions `fns` (a dict), interleaved.

    Each function is first called `warmup` times untimed (their total time
    goes to `warmup_seconds[key]` when a dict is given: tracing and
    compilation); then every round calls every function once, in turn, so
    that they share whatever load the machine has and their ratios hold.
    """
    for key, fn in fns.items():
        start = time.perf_counter()
        for _ in range(warmup):
            fn()
        if warmup_seconds is not None:
            warmup_seconds[key] = time.perf_counter() - start
    times = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment_info():
    """Hardware, versions and commit, for the header of every result."""
    import keras
    import numpy as np
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    info = {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "commit": _git_commit(),
        **_provenance,  # the commit as the run started, when known
    }
    try:
        import ai_edge_litert

        info["ai_edge_litert"] = getattr(ai_edge_litert, "__version__", "installed")
    except ImportError:
        pass
    return info


def environment_line(env):
    """The header line of a markdown result: hardware, versions, commit."""
    return (
        f"{env['cpu']} ({env['cpu_count']} cores), GPUs: {env['gpus'] or 'none'}; "
        f"Python {env['python']}, TF {env['tensorflow']}, Keras {env['keras']}; "
        f"commit {env['commit']}"
    )


def markdown_table(rows, columns):
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_path(name, suffix):
    """`<results_dir>/<name><suffix>` of the benchmark being run."""
    return os.path.join(_results_dir[0], name + suffix)


def write_results(name, rows, columns, title, notes=""):
    """Writes <results_dir>/<name>.json and .md; returns the markdown."""
    env = environment_info()
    write_json_atomic(
        results_path(name, ".json"),
        {"name": name, "environment": env, "rows": rows, "notes": notes},
    )
    text = (
        f"### {title}\n\n{environment_line(env)}\n\n{markdown_table(rows, columns)}\n"
    )
    if notes:
        text += f"\n{notes}\n"
    write_text_atomic(results_path(name, ".md"), text)
    return text
