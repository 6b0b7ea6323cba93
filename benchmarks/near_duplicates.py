"""Near-duplicate grouping on biq2021-dev + biq2021-more: recall and chains.

Same-scene pairs (the reference): every pair of the two folders' photos
whose 32 x 32 thumbnail (layout) correlation is >= `similarity` and whose
fine-detail correlation is >= `min_detail` (`tfiqa.data.readers.duplicates`),
found by brute force over all pairs. Three groupings are scored:

  hash<=8        the former rule: candidates whose 64-bit difference hashes
                 differ in at most 8 bits, confirmed by layout alone
  layout only    every pair with layout >= `similarity`, no detail check
  layout+detail  `tfiqa.data.readers.duplicates.group_datasets` across both
                 folders (the projection filter, layout, then detail)

Per method: the same-scene pairs it puts in one group (recall), the layout
pairs whose detail says "different scene" that it puts in one group, the
dev photos it gives a twin in biq2021-more (the data README counts 61), the
group sizes and, for chains, the lowest layout correlation between two
members of one group (a group of one scene stays high; a chain through
different scenes drops low). Results: `benchmarks/results/near_duplicates.{json,md}`.

Example (parameters: `benchmarks/configs/near_duplicates.yaml`):
```
.venv/bin/python benchmarks/run.py near_duplicates --set data_dir=../shared/data
```
"""

import collections
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import script, write_results  # noqa: E402

FOLDERS = ("biq2021-dev", "biq2021-more")


def difference_hash(path):
    """The former 64-bit difference hash (8 x 9 grayscale thumbnail)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("L", (128, 128))
        small = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def union_groups(count, pairs):
    """Group labels (the smallest member index) of a union over `pairs`."""
    parent = list(range(count))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in pairs:
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    return [root(k) for k in range(count)]


def score(labels, same, different, vectors, n_dev):
    """The row of one grouping (labels: one group id per photo)."""
    together = sum(1 for i, j in same if labels[i] == labels[j])
    members = collections.defaultdict(list)
    for k, label in enumerate(labels):
        members[label].append(k)
    groups = [m for m in members.values() if len(m) > 1]
    lowest = [float(np.min(vectors[m] @ vectors[m].T)) for m in groups]
    more_groups = {labels[k] for k in range(n_dev, len(labels))}
    return {
        "same-scene pairs grouped": together,
        "recall": together / max(1, len(same)),
        "other-scene pairs grouped": sum(
            1 for i, j in different if labels[i] == labels[j]
        ),
        "dev photos with a twin in more": sum(
            1 for k in range(n_dev) if labels[k] in more_groups
        ),
        "groups of >= 2": len(groups),
        "largest group": max((len(m) for m in groups), default=1),
        "lowest in-group layout correlation": min(lowest, default=1.0),
    }


def run(args):
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.readers.duplicates import detail, group_datasets, thumbnail

    data_dir = os.path.abspath(args.data_dir)
    parts = [
        read_dataset(
            "csv", os.path.join(data_dir, f), file="mos.csv", group_duplicates=False
        )
        for f in FOLDERS
    ]
    records = [r for p in parts for r in p]
    n_dev = len(parts[0])
    start = time.time()
    vectors = np.stack([thumbnail(r["image_path"]) for r in records])
    hashes = [difference_hash(r["image_path"]) for r in records]
    read_s = time.time() - start
    gram = vectors @ vectors.T
    rows_i, rows_j = np.nonzero(np.triu(gram >= args.similarity, k=1))
    layout = list(zip(rows_i.tolist(), rows_j.tolist(), strict=True))
    details = {k: detail(records[k]["image_path"]) for k in set(rows_i) | set(rows_j)}
    same = [(i, j) for i, j in layout if details[i] @ details[j] >= args.min_detail]
    same_set = set(same)
    different = [p for p in layout if p not in same_set]
    distances = [bin(hashes[i] ^ hashes[j]).count("1") for i, j in same]
    near_hash = [
        (i, j) for i, j in layout if bin(hashes[i] ^ hashes[j]).count("1") <= 8
    ]
    n = len(records)
    methods = {
        "hash<=8 (former)": union_groups(n, near_hash),
        "layout only": union_groups(n, layout),
    }
    start = time.time()
    grouped = group_datasets(parts, args.similarity, args.min_detail)
    group_s = time.time() - start
    methods["layout+detail (tfiqa)"] = [r["ref_id"] for p in grouped for r in p]
    rows = [
        {"method": name, **score(labels, same, different, vectors, n_dev)}
        for name, labels in methods.items()
    ]
    far = sum(1 for d in distances if d > 8)
    notes = (
        f"{n} photos ({n_dev} dev, {n - n_dev} more); {len(layout)} pairs with "
        f"layout correlation >= {args.similarity}, {len(same)} of them same-scene "
        f"(detail >= {args.min_detail}); {far} same-scene pairs have difference "
        f"hashes more than 8 bits apart (median {np.median(distances):.0f} bits, "
        f"max {max(distances)}). Reading thumbnails and hashes took {read_s:.0f} s; "
        f"`group_datasets` (reading included) {group_s:.0f} s."
    )
    return write_results(
        "near_duplicates",
        rows,
        list(rows[0]),
        "Near-duplicate grouping on biq2021-dev + biq2021-more",
        notes=notes,
    )


if __name__ == "__main__":
    sys.exit(script(__file__, __doc__))
