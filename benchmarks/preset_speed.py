"""Photos per second of the shipped presets, decode included, side by side.

Each preset in `--presets` is loaded once with `tfiqa.load` and scores the
same `--photos` JPEG files of biq2021-dev (512 x 512) through
`Scorer.score_files`, the path `tfiqa predict` takes: read, decode, apply
the scoring policy, run the model. Presets alternate over `--rounds` rounds
after one warm-up pass of `--warmup` photos, so that machine load hits every
row alike; the table gives the median photos/s over the rounds and the
ratio to the first preset.

Writes `results/<name>.{json,md}`.

Example:
```
.venv/bin/python benchmarks/preset_speed.py --data-dir ../shared/data \
    --presets lite0-biq,lite0-biq-int8,mobile-mnv3s
```
"""

import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402


def run(args):
    import tfiqa

    files = sorted(glob.glob(os.path.join(args.data_dir, "biq2021-dev", "images", "*")))
    files = files[: args.photos]
    names = [n for n in args.presets.split(",") if n]
    scorers = {}
    for name in names:
        start = time.perf_counter()
        scorers[name] = tfiqa.load(name)
        load_seconds = time.perf_counter() - start
        list(scorers[name].score_files(files[: args.warmup]))
        scorers[name].load_seconds = load_seconds
    rates = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            start = time.perf_counter()
            rows = list(scorers[name].score_files(files))
            seconds = time.perf_counter() - start
            errors = [r for r in rows if r["error"]]
            if errors:
                raise SystemExit(f"{name}: {len(errors)} photos failed: {errors[:2]}")
            rates[name].append(len(files) / seconds)
    first = float(np.median(rates[names[0]]))
    table = [
        {
            "preset": name,
            "backend": scorers[name].backend,
            "photos": len(files),
            "photos/s (median)": round(float(np.median(rates[name])), 2),
            "min .. max": f"{min(rates[name]):.2f} .. {max(rates[name]):.2f}",
            f"ratio to {names[0]}": round(float(np.median(rates[name])) / first, 2),
            "load s": round(scorers[name].load_seconds, 1),
        }
        for name in names
    ]
    write_results(
        args.name,
        table,
        list(table[0]),
        "Preset throughput: 512 x 512 JPEG photos, decode included",
        notes=f"{args.rounds} interleaved rounds over the same {len(files)} "
        "biq2021-dev photos through `Scorer.score_files` (what `tfiqa predict` "
        "runs), after a warm-up; all CPU threads the backend uses by default. "
        "Command: benchmarks/preset_speed.py "
        f"--presets {args.presets} --photos {args.photos} --rounds {args.rounds}",
    )


if __name__ == "__main__":
    script(__file__)
