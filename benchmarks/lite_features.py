"""Caches frozen EfficientNet-Lite features of every labelled BIQ2021 photo.

For each backbone in `--backbones` and view in `--views` ("full": the whole
photo at its own size; an integer N: N deterministic crops of `crop_size`),
every photo of biq2021-dev and biq2021-more passes once through the frozen
ImageNet backbone and its P2..P5 maps are pooled (avg, max, std) into the
`PooledFeatureCache` under `--out/cache`, the cache `tfiqa train` itself
reads. `benchmarks/lite_recipe.py` then compares recipes on these features
in seconds. Writes `results/<name>.{json,md}`: photos/s per backbone and
view (decode included, 2 cores shared with other jobs: a lower bound).

Example:
```
.venv/bin/python benchmarks/lite_features.py --data-dir ../shared/data \
    --backbones efficientnet_lite0 --views full,1
```
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402

LEVELS = ["P2", "P3", "P4", "P5"]
POOLING = ("avg", "std")
FOLDERS = ("biq2021-dev", "biq2021-more")


def lite_model(backbone, crop_size, levels=LEVELS):
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    return IQAModel(
        backbone=backbone,
        weights="imagenet",
        levels=levels,
        pooling=POOLING,
        scoring_policy=ScoringPolicy(crop_size=crop_size),
    )


def labelled_photos(data_dir):
    """Image paths of both labelled folders, in `mos.csv` order."""
    from tfiqa.data.readers import read_dataset

    paths = []
    for folder in FOLDERS:
        records = read_dataset("csv", os.path.join(data_dir, folder), file="mos.csv")
        paths += [r["image_path"] for r in records]
    return paths


def parse_view(text):
    return text if text == "full" else int(text)


def run(args):
    from tfiqa.training.transfer import PooledFeatureCache

    paths = labelled_photos(os.path.abspath(args.data_dir))
    if args.limit:
        paths = paths[: args.limit]
    rows = []
    for backbone in [b for b in args.backbones.split(",") if b]:
        model = lite_model(backbone, args.crop_size)
        cache = PooledFeatureCache(
            model, os.path.join(args.out, "cache"), args.crop_size
        )
        for view in [parse_view(v) for v in args.views.split(",") if v]:
            start = time.time()
            before = len(os.listdir(cache.folder))
            cache.features(paths, view, log_every=200)
            computed = len(os.listdir(cache.folder)) - before
            seconds = time.time() - start
            rows.append(
                {
                    "backbone": backbone,
                    "view": str(view),
                    "photos": len(paths),
                    "computed": computed,
                    "seconds": round(seconds, 1),
                    "photos_per_s": round(computed / seconds, 2) if computed else None,
                }
            )
            print(rows[-1], flush=True)
    write_results(
        args.name,
        rows,
        ["backbone", "view", "photos", "computed", "seconds", "photos_per_s"],
        "Frozen EfficientNet-Lite feature extraction (decode + backbone + pooling)",
        notes="photos_per_s counts only photos computed in this run (a rerun "
        "reads the cache); 2 cores shared with other jobs, so a lower bound. "
        f"Command: benchmarks/lite_features.py --backbones {args.backbones} "
        f"--views {args.views} --name {args.name}",
    )


if __name__ == "__main__":
    script(__file__)
