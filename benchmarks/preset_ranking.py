"""Per-distortion-type ranking diagnostic of a shipped preset.

The first `images` photos (sorted by name) of each `sources` folder of
`pristine/` (Kodak24 and McMaster by default, which no tfiqa training
recipe trains on) are resized (Lanczos, aspect ratio kept) to a `size` px
short side when larger, distorted by every type of `types` (names, or a
set such as `kadid`) at levels 1..5 (`tfiqa.distortions`, seed `seed`) and
scored by the preset under its own scoring policy (`tfiqa.load`). Per type:
the mean over photos of the SRCC between level and score, signed so that +1 = stronger
distortions always scored worse and -1 = backwards; the fraction of adjacent
levels ranked right; the mean score per level.

Writes `benchmarks/results/preset_ranking_<preset>[_<tag>].{json,md}` after every
type, so an interrupted run keeps the types it finished; `resume` runs only
the types missing from that file.

Example (parameters: `benchmarks/configs/preset_ranking.yaml`):
```
.venv/bin/python benchmarks/run.py preset_ranking \
    --set data_dir=../shared/data --set preset=mobile-mnv3s
```
"""

import json
import logging
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402

LEVEL_COLUMNS = [f"L{lv}" for lv in (1, 2, 3, 4, 5)]


def load_photos(folder, count, size):
    """The first `count` images of `folder` (sorted), short side <= `size`."""
    from PIL import Image

    from tfiqa.data.image_io import load_image
    from tfiqa.data.pristine import list_images

    photos, names = [], []
    for path in list_images(folder)[:count]:
        image = load_image(path)
        h, w = image.shape[:2]
        if min(h, w) > size:
            scale = size / min(h, w)
            new = (round(w * scale), round(h * scale))
            image = np.asarray(
                Image.fromarray(image).resize(new, Image.Resampling.LANCZOS)
            )
        photos.append(image)
        names.append(os.path.basename(path))
    return photos, names


def previous_rows(results_dir, name, setup):
    """Rows of <results_dir>/<name>.json if it was made with the same `setup`."""
    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if not saved.get("notes", "").startswith(setup):
        raise SystemExit(
            f"{path} was made with other photos, size, seed or policy; run "
            f"without resume to replace it. Received: {saved.get('notes', '')[:80]}"
        )
    return saved["rows"]


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import tfiqa
    from tfiqa.distortions import DISTORTION_SETS
    from tfiqa.evaluation.distortion_ranking import (
        WEAK_SRCC,
        all_types,
        distortion_ranking,
        is_weak,
        resolve_ranking_types,
    )

    photos, described = [], []
    for source in str(args.sources).split(","):
        folder = os.path.join(args.data_dir, "pristine", source)
        taken, names = load_photos(folder, args.images, args.size)
        photos += taken
        described.append(f"{len(taken)} {source} ({names[0]}..{names[-1]})")
    types = DISTORTION_SETS.get(args.types) or resolve_ranking_types(args.types)
    scorer = tfiqa.load(args.preset)
    shapes = sorted({f"{p.shape[1]}x{p.shape[0]}" for p in photos})
    setup = (
        f"{len(photos)} photos: {', '.join(described)}, resized to a "
        f"{args.size} px short side ({', '.join(shapes)}); levels 1-5, seed "
        f"{args.seed}; scored by `tfiqa.load({args.preset!r})` under its policy "
        f"({scorer.policy.crops} x {scorer.policy.crop_size} px crops). "
        "srcc: mean over photos of the SRCC between level and score, +1 = "
        "stronger distortion always scored worse, -1 = backwards, 0 = no order; "
        "pairs_right: adjacent levels scored strictly in the right order; "
        "L1..L5: mean score per level."
    )
    name = f"preset_ranking_{args.preset}" + (f"_{args.tag}" if args.tag else "")
    rows = previous_rows(args.results_dir, name, setup) if args.resume else []
    todo = [t for t in types if t not in {r["type"] for r in rows}]
    order = {t: i for i, t in enumerate(all_types())}
    last = [time.perf_counter()]

    def write(extra=""):
        rows.sort(key=lambda r: order[r["type"]])
        weak = [f"{r['type']} ({r['srcc']:.2f})" for r in rows if is_weak(r["srcc"])]
        notes = (
            f"{setup}\n\nDone: {len(rows)} types in "
            f"{sum(r['seconds'] for r in rows):.0f} s of scoring. Ranked barely "
            f"or backwards (srcc < {WEAK_SRCC}): {', '.join(weak) or 'none'}.{extra}"
        )
        return write_results(
            name,
            rows,
            ["type", "srcc", "pairs_right", *LEVEL_COLUMNS, "seconds"],
            f"Per-type distortion ranking: {args.preset}",
            notes=notes,
        )

    def add_row(name, summary):
        row = {"type": name, "srcc": summary["srcc"]}
        row["pairs_right"] = summary["pairs_right"]
        row.update(zip(LEVEL_COLUMNS, summary["mean_scores"].values(), strict=True))
        row["seconds"] = time.perf_counter() - last[0]
        last[0] = time.perf_counter()
        rows.append(row)
        write()

    result = distortion_ranking(
        scorer,
        photos,
        types=todo,
        seed=args.seed,
        log_every=args.log_every,
        on_type=add_row,
    )
    print(
        write(f" Mean score of the undistorted photos: {result['pristine_score']:.4f}.")
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
