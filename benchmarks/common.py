"""Shared by the benchmark scripts: environment facts and result writing.

Every benchmark writes `benchmarks/results/<name>.json` (rows + environment)
and `benchmarks/results/<name>.md` (a markdown table headed by the hardware,
library versions and git commit it was measured on).
"""

import argparse
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfiqa.files import write_json_atomic, write_text_atomic  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def benchmark_parser(doc, **defaults):
    """An argparse parser holding the options the benchmarks share.

    Each keyword names an option (`data_dir` -> `--data-dir`) and gives its
    default, whose type is the option's type; `data_dir=None` makes the data
    folder required and `out="name"` defaults to `benchmarks/out/<name>`.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for key, default in defaults.items():
        flag = "--" + key.replace("_", "-")
        if default is None:
            parser.add_argument(flag, required=True)
        elif key == "out":
            parser.add_argument(flag, default=os.path.join(OUT_DIR, default))
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return parser


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
            cwd=os.path.dirname(RESULTS_DIR),
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(RESULTS_DIR),
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
    }
    try:
        import ai_edge_litert

        info["ai_edge_litert"] = getattr(ai_edge_litert, "__version__", "installed")
    except ImportError:
        pass
    return info


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


def write_results(name, rows, columns, title, notes=""):
    """Writes results/<name>.json and results/<name>.md; returns the markdown."""
    env = environment_info()
    write_json_atomic(
        os.path.join(RESULTS_DIR, f"{name}.json"),
        {"name": name, "environment": env, "rows": rows, "notes": notes},
    )
    env_line = (
        f"{env['cpu']} ({env['cpu_count']} cores), GPUs: {env['gpus'] or 'none'}; "
        f"Python {env['python']}, TF {env['tensorflow']}, Keras {env['keras']}; "
        f"commit {env['commit']}"
    )
    text = f"### {title}\n\n{env_line}\n\n{markdown_table(rows, columns)}\n"
    if notes:
        text += f"\n{notes}\n"
    write_text_atomic(os.path.join(RESULTS_DIR, f"{name}.md"), text)
    return text
