"""How far the shipped int8 phone preset's scores fall from its float twin's.

Both presets are loaded with `tfiqa.load` and score the same labelled photos
through `Scorer.score_files` (what `tfiqa predict` runs): every photo of
`--folders` under `--data-dir`. The table gives, per folder and for all of
them, the SRCC of each preset against MOS, the largest and 95th-percentile
|int8 - float| score difference, how many photos differ by more than
`--tolerance`, and the float score range the photos cover (the int8 file
must track float across the whole range, not only near the mean). Both
presets were fitted on these photos, so the SRCC columns are fits, not test
figures: the table is about agreement.

Writes `results/<name>.{json,md}`.

Example:
```
.venv/bin/python benchmarks/preset_int8_agreement.py --data-dir ../shared/data
```
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402


def folder_scores(scorer, records):
    """Scores of `records` in order; a photo that fails stops the run."""
    rows = list(scorer.score_files([r["image_path"] for r in records]))
    failed = [r for r in rows if r["error"]]
    if failed:
        raise SystemExit(f"{len(failed)} photos failed: {failed[:2]}")
    return np.float64([r["score"] for r in rows])


def agreement_row(name, mos, float_scores, int8_scores, tolerance):
    from tfiqa.metrics import srcc

    difference = np.abs(int8_scores - float_scores)
    return {
        "photos": name,
        "count": len(mos),
        "float srcc (fit)": round(float(srcc(float_scores, mos)), 4),
        "int8 srcc (fit)": round(float(srcc(int8_scores, mos)), 4),
        "max abs(int8 - float)": round(float(difference.max()), 4),
        "p95 abs(int8 - float)": round(float(np.percentile(difference, 95)), 4),
        f"photos over {tolerance}": int((difference > tolerance).sum()),
        "float score range": f"{float_scores.min():.3f} .. {float_scores.max():.3f}",
    }


def run(args):
    import tfiqa
    from tfiqa.data.readers import read_dataset

    float_preset, int8_preset = tfiqa.load(args.float), tfiqa.load(args.int8)
    rows, everything = [], {"mos": [], "float": [], "int8": []}
    for folder in [f for f in args.folders.split(",") if f]:
        records = read_dataset(
            "csv", os.path.join(args.data_dir, folder), file="mos.csv"
        )[: args.limit or None]
        mos = np.float64([r["mos"] for r in records])
        scores = {
            "float": folder_scores(float_preset, records),
            "int8": folder_scores(int8_preset, records),
        }
        rows.append(
            agreement_row(folder, mos, scores["float"], scores["int8"], args.tolerance)
        )
        print(rows[-1], flush=True)
        everything["mos"].append(mos)
        for key, value in scores.items():
            everything[key].append(value)
    joined = {key: np.concatenate(value) for key, value in everything.items()}
    rows.append(
        agreement_row(
            "all", joined["mos"], joined["float"], joined["int8"], args.tolerance
        )
    )
    write_results(
        args.name,
        rows,
        list(rows[0]),
        f"Shipped int8 preset vs its float twin: {args.int8} against {args.float}",
        notes="Every photo scored by both presets through `Scorer.score_files`. "
        "The presets were fitted on all of these photos: the SRCC columns are "
        "fits, not test figures. Command: benchmarks/preset_int8_agreement.py "
        f"--float {args.float} --int8 {args.int8} --folders {args.folders} "
        f"--limit {args.limit} --tolerance {args.tolerance}",
    )


if __name__ == "__main__":
    script(__file__)
