"""Runs one benchmark from its config: `benchmarks/run.py NAME [options]`.

NAME is a file in `benchmarks/configs/` (without `.yaml`); `--quick` applies
the config's `quick:` settings (a tiny smoke run), `--set key=value` (repeat)
overrides a parameter, e.g.

```
.venv/bin/python benchmarks/run.py transfer_speed --set rounds=2
.venv/bin/python benchmarks/run.py pipeline_vs_step --quick --set results_dir=/tmp/r
```
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import benchmark_names, guarded, load_params, run_benchmark  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("name", help="One of: " + ", ".join(benchmark_names()))
    parser.add_argument(
        "--quick", action="store_true", help="The config's tiny smoke settings."
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a parameter (value parsed as YAML); repeatable.",
    )
    args = parser.parse_args(argv)
    return guarded(
        lambda: run_benchmark(args.name, load_params(args.name, args.quick, args.set))
    )


if __name__ == "__main__":
    sys.exit(main())
