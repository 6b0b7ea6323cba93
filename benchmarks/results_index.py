"""The index of results in benchmarks/README.md: every results file with the
hardware, versions, commit and command that produced it.

`.venv/bin/python benchmarks/results_index.py` rewrites the part of the
README between the index markers from `results/*.json`;
`tests/test_benchmark_runner.py` fails when the two disagree.
"""

import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import environment_line  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
START = "<!-- results index: written by benchmarks/results_index.py -->"
END = "<!-- end of results index -->"


def index_text(results_dir=None):
    """The markdown table, one row per `results/*.json` (not `retired/`)."""
    results_dir = results_dir or os.path.join(HERE, "results")
    lines = [
        "| result | hardware, versions, commit | command |",
        "|---|---|---|",
    ]
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        name = os.path.basename(path)[: -len(".json")]
        with open(path) as f:
            env = json.load(f)["environment"]
        command = env["command"].replace("|", "\\|")
        lines.append(
            f"| [`{name}`](results/{name}.md) | {environment_line(env)} | `{command}` |"
        )
    return "\n".join(lines)


def with_index(readme_text, index):
    """`readme_text` with the text between the markers replaced by `index`."""
    before, _, rest = readme_text.partition(START)
    _, _, after = rest.partition(END)
    if not rest:
        raise SystemExit(f"{README} has no index markers ({START} ... {END})")
    return f"{before}{START}\n{index}\n{END}{after}"


def main():
    with open(README) as f:
        text = f.read()
    with open(README, "w") as f:
        f.write(with_index(text, index_text()))


if __name__ == "__main__":
    main()
