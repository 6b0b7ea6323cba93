"""Train/val/test splits, disjoint by source content (`ref_id`).

Splitting synthetic datasets by image leaks content: the same reference photo
would appear in training and test with different distortions. Every split
here therefore assigns whole `ref_id` groups; for authentic datasets the
`ref_id` is the image itself, so the split is per image (near-duplicate
photos share one, see `tfiqa.data.readers.duplicates`). The test parts of
`make_splits` are k folds: over k splits every group is tested exactly
once, so an interval over splits is one over disjoint test sets.
"""

import csv
import json
import logging
import os

import numpy as np

from tfiqa.errors import ConfigError, DataError
from tfiqa.files import write_json_atomic

logger = logging.getLogger("tfiqa.data")

PARTS = ("train", "val", "test")
_PART_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def _check_ratios(val_ratio, test_ratio):
    for name, value in (("val_ratio", val_ratio), ("test_ratio", test_ratio)):
        if not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"{name} must be in [0, 1). Received: {name}={value}")
    if float(val_ratio) + float(test_ratio) >= 1.0:
        raise ConfigError(
            "val_ratio + test_ratio must be below 1 to leave training data. "
            f"Received: val_ratio={val_ratio}, test_ratio={test_ratio}"
        )


def test_folds(test_ratio):
    """The k of the k-fold test parts: `round(1 / test_ratio)`, 0 without test."""
    return int(round(1.0 / float(test_ratio))) if float(test_ratio) > 0 else 0


def _fold_assignments(groups, n, val_ratio, test_ratio, seed):
    """{group: part} for splits 0..n-1 (see `make_splits` for the rule)."""
    folds = test_folds(test_ratio)
    if folds and n > folds:
        raise ConfigError(
            f"Test parts must not overlap: test_ratio={test_ratio} makes "
            f"{folds} folds, so at most {folds} splits. Received: "
            f"num_splits={n}, test_ratio={test_ratio}"
        )
    shuffled = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    test_parts = np.array_split(np.arange(len(groups)), folds) if folds else []
    n_val = int(round(float(val_ratio) * len(groups)))
    if float(val_ratio) > 0:
        n_val = max(n_val, 1)
    out = []
    for i in range(n):
        test = {shuffled[k] for k in test_parts[i]} if folds else set()
        rest = [g for g in shuffled if g not in test]
        if not test and folds or len(rest) - n_val < 1:
            raise DataError(
                f"Too few source images to split: {len(groups)} ref_id group(s) "
                "cannot give non-empty train, val and test parts. Received: "
                f"val_ratio={val_ratio}, test_ratio={test_ratio}"
            )
        order = np.random.default_rng(seed + i).permutation(len(rest))
        val = {rest[k] for k in order[:n_val]}
        assign = dict.fromkeys(rest, "train")
        assign.update(dict.fromkeys(val, "val"))
        assign.update(dict.fromkeys(test, "test"))
        out.append(assign)
    return out


def _check_records(records):
    if not records:
        raise DataError("Cannot split an empty list of records. Received: 0")
    return sorted({r["ref_id"] for r in records})


def _parts(records, assign):
    out = {part: [] for part in PARTS}
    for record in records:
        out[assign[record["ref_id"]]].append(record)
    return out


def split_records(records, val_ratio=0.2, test_ratio=0.0, seed=0):
    """Splits records into train/val/test, never sharing a `ref_id`: split 0
    of `make_splits` with the same arguments.

    Args:
        records: list of record dicts (see `tfiqa.data.readers`).
        val_ratio: float. Fraction of ref_id groups for validation.
        test_ratio: float. The test part is 1/round(1/test_ratio) of the
            ref_id groups (one fold).
        seed: int. The same seed and records give the same split.

    Returns:
        dict {"train": [...], "val": [...], "test": [...]} of records, each
        in the input order.

    Example:
    ```python
    parts = split_records(read_dataset("kadid10k", "data/kadid10k"), 0.2, 0.2)
    ```
    """
    _check_ratios(val_ratio, test_ratio)
    groups = _check_records(records)
    return _parts(records, _fold_assignments(groups, 1, val_ratio, test_ratio, seed)[0])


def make_splits(records, n=10, val_ratio=0.2, test_ratio=0.0, seed=0):
    """Makes `n` content-disjoint splits whose test parts never overlap.

    The rule: the ref_id groups are shuffled once with `seed` and cut into
    k = round(1 / test_ratio) folds of near-equal size; split i tests on
    fold i, so with n = k every group is in exactly one test part and with
    n < k in at most one (n > k is an error). Split i validates on
    round(val_ratio x all groups) groups drawn with seed `seed + i` from
    the groups outside fold i, and trains on the others: what split i
    selects on validation never comes from its own test part (it may come
    from other splits' test parts, as its training data does). Without a
    test part (test_ratio 0) only the validation draw differs per split.

    Returns:
        list of dicts {"seed": seed + i, "fold": i (with a test part),
        "train": [image paths], "val": [...], "test": [...]}.
    """
    if int(n) < 1:
        raise ConfigError(f"The number of splits must be >= 1. Received: n={n}")
    _check_ratios(val_ratio, test_ratio)
    groups = _check_records(records)
    splits = []
    assignments = _fold_assignments(groups, int(n), val_ratio, test_ratio, seed)
    for i, assign in enumerate(assignments):
        parts = _parts(records, assign)
        split = {"seed": seed + i}
        if test_folds(test_ratio):
            split["fold"] = i
        for part in PARTS:
            split[part] = [r["image_path"] for r in parts[part]]
        splits.append(split)
    return splits


def select(records, split):
    """Maps a split of image paths (from `make_splits`) back to records.

    Returns:
        dict {"train", "val", "test"} of record lists.

    Raises:
        DataError: the split names images that are not among `records`.
    """
    by_path = {r["image_path"]: r for r in records}
    out = {}
    for part in PARTS:
        paths = split.get(part, [])
        missing = [p for p in paths if p not in by_path]
        if missing:
            raise DataError(
                f"The {part} split lists {len(missing)} image(s) that are not in "
                f"the dataset (was it moved, or is this another dataset's split "
                f"file?). Received e.g.: {missing[:3]}"
            )
        out[part] = [by_path[p] for p in paths]
    return out


def _read_split_file(path):
    """Returns {part: [names]} from a JSON or CSV split file."""
    if not os.path.isfile(path):
        raise DataError(f"Split file not found. Received: {path}")
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"Split file {path} is not valid JSON: {e}") from e
        if isinstance(data, dict) and "splits" in data:
            data = data["splits"][0]  # a file written by save_splits
        if not isinstance(data, dict):
            raise DataError(
                f"Split file {path} must hold an object with train/val/test lists. "
                f"Received: {type(data).__name__}"
            )
        names = {}
        for key, value in data.items():
            part = _PART_ALIASES.get(str(key).lower())
            if part is not None:
                names[part] = [str(v) for v in value]
        return names
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "image" not in columns or "split" not in columns:
            raise DataError(
                f"Split CSV {path} needs the columns 'image' and 'split'. "
                f"Received columns: {', '.join(map(repr, columns))}"
            )
        names = {}
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            part = _PART_ALIASES.get(row["split"].lower())
            if part is None:
                raise DataError(
                    f"{path}, row {line_no}: split must be train, val or test. "
                    f"Received: {row['split']!r}"
                )
            names.setdefault(part, []).append(row["image"])
    return names


def split_from_file(records, path):
    """Splits records as an official split file says.

    The file is JSON `{"train": [names], "val": [...], "test": [...]}` or a CSV
    with columns `image,split`. A name matches a record by its absolute path,
    by a path suffix (`images/a.jpg`), by file name, or by `ref_id` (which
    selects every image of that source content).

    Returns:
        dict {"train", "val", "test"} of record lists.

    Raises:
        DataError: a name matches no record, or a record lands in two parts.
    """
    names = _read_split_file(path)
    by_path = {r["image_path"]: [r] for r in records}
    by_ref = {}
    by_suffix = {}  # "a.jpg", "images/a.jpg", ... -> records
    for r in records:
        by_ref.setdefault(r["ref_id"], []).append(r)
        parts = r["image_path"].replace("\\", "/").split("/")
        for depth in range(1, min(4, len(parts)) + 1):
            by_suffix.setdefault("/".join(parts[-depth:]), []).append(r)

    def lookup(name):
        if name in by_path:
            return by_path[name]
        key = name.replace("\\", "/")
        while key.startswith("./"):
            key = key[2:]
        hits = by_suffix.get(key, [])
        # A bare file name is only trusted when it is unique.
        if len(hits) == 1 or (hits and "/" in key):
            return hits
        return by_ref.get(name)

    out = {part: [] for part in PARTS}
    owner = {}
    unmatched = []
    for part in PARTS:
        for name in names.get(part, []):
            hits = lookup(name)
            if not hits:
                unmatched.append(name)
                continue
            for r in hits:
                previous = owner.get(r["image_path"])
                if previous is not None and previous != part:
                    raise DataError(
                        f"Split file {path} puts {r['image_path']} in both "
                        f"{previous} and {part}. Received: {name!r}"
                    )
                if previous is None:
                    owner[r["image_path"]] = part
                    out[part].append(r)
    if unmatched:
        raise DataError(
            f"Split file {path} names {len(unmatched)} image(s) not in the "
            f"dataset. Received e.g.: {unmatched[:3]}"
        )
    unused = len(records) - len(owner)
    if unused:
        logger.info("%d records are in no part of split file %s.", unused, path)
    refs = {part: {r["ref_id"] for r in out[part]} for part in PARTS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = refs[a] & refs[b]
        if shared:
            logger.warning(
                "Split file %s shares %d ref_id(s) between %s and %s (e.g. %s); "
                "results will be optimistic.",
                path,
                len(shared),
                a,
                b,
                sorted(shared)[0],
            )
    return out


def save_splits(path, splits, meta=None):
    """Writes splits (list from `make_splits`, or one split dict) as JSON.

    Args:
        path: str. Output file, written atomically.
        splits: list of split dicts, or one dict {"train", "val", "test"}
            whose lists hold image paths or records.
        meta: dict or None. Anything worth keeping (dataset, ratios, seed).
    """
    if isinstance(splits, dict):
        splits = [splits]
    clean = []
    for split in splits:
        item = {k: v for k, v in split.items() if k not in PARTS}
        for part in PARTS:
            item[part] = [
                v["image_path"] if isinstance(v, dict) else str(v)
                for v in split.get(part, [])
            ]
        clean.append(item)
    write_json_atomic(path, {"meta": dict(meta or {}), "splits": clean})


def load_splits(path):
    """Reads a file written by `save_splits`.

    Returns:
        list of split dicts {"seed", "train", "val", "test"} (image paths).
    """
    if not os.path.isfile(path):
        raise DataError(f"Splits file not found. Received: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"Splits file {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("splits"), list):
        raise DataError(
            f"Splits file {path} must hold {{'meta': ..., 'splits': [...]}}. "
            f"Received keys: {sorted(data) if isinstance(data, dict) else data!r}"
        )
    return data["splits"]


def load_splits_meta(path):
    """The `meta` dict stored by `save_splits`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("meta", {})


def splits_for_config(records, data_config, seed=0, workdir=None):
    """The train/val/test records a run should use, per its data config.

    Uses `data_config.split_file` when set, otherwise `make_splits` with
    `num_splits` (at most round(1 / test_ratio), the number of test folds),
    `val_ratio` and `test_ratio` and picks `split_index`. The
    splits are written to `<workdir>/splits/splits.json` when `workdir` is
    given, so that a run can be reproduced and evaluated on the same parts.

    Returns:
        dict {"train", "val", "test"} of record lists.
    """
    meta = {
        "dataset": getattr(data_config, "dataset", ""),
        "dataset_dir": getattr(data_config, "dataset_dir", ""),
    }
    if getattr(data_config, "split_file", ""):
        parts = split_from_file(records, data_config.split_file)
        meta["split_file"] = data_config.split_file
        chosen = parts
        to_save = [parts]
    else:
        # At most one split per test fold, so that test parts never overlap.
        count = int(data_config.num_splits)
        folds = test_folds(data_config.test_ratio)
        if folds:
            count = min(count, folds)
        splits = make_splits(
            records,
            n=count,
            val_ratio=data_config.val_ratio,
            test_ratio=data_config.test_ratio,
            seed=seed,
        )
        index = int(data_config.split_index)
        if not 0 <= index < len(splits):
            raise ConfigError(
                f"data.split_index must be in [0, {len(splits) - 1}] "
                f"(data.num_splits={data_config.num_splits}, at most "
                "round(1 / data.test_ratio) non-overlapping test parts). "
                f"Received: split_index={index}"
            )
        meta.update(
            val_ratio=data_config.val_ratio,
            test_ratio=data_config.test_ratio,
            seed=seed,
            split_index=index,
            test_folds=folds,
        )
        chosen = select(records, splits[index])
        to_save = splits
    if workdir:
        save_splits(os.path.join(workdir, "splits", "splits.json"), to_save, meta)
    return chosen
