import json

import pytest

from tfiqa.data.splits import (
    load_splits,
    load_splits_meta,
    make_splits,
    save_splits,
    select,
    split_from_file,
    split_records,
    splits_for_config,
)
from tfiqa.errors import ConfigError, DataError


def _records(n_refs=10, per_ref=4):
    return [
        {
            "image_path": f"/data/dist/r{r:02d}_{k}.png",
            "mos": (r * per_ref + k) / (n_refs * per_ref),
            "mos_raw": 0.0,
            "ref_id": f"r{r:02d}",
            "distortion": "blur",
            "level": k + 1,
        }
        for r in range(n_refs)
        for k in range(per_ref)
    ]


def _refs(records):
    return {r["ref_id"] for r in records}


def test_split_records_disjoint_by_ref_and_complete():
    records = _records()
    parts = split_records(records, val_ratio=0.2, test_ratio=0.2, seed=3)
    assert len(_refs(parts["val"])) == 2 and len(_refs(parts["test"])) == 2
    assert not _refs(parts["train"]) & _refs(parts["val"])
    assert not _refs(parts["train"]) & _refs(parts["test"])
    assert not _refs(parts["val"]) & _refs(parts["test"])
    total = sum(len(v) for v in parts.values())
    assert total == len(records)
    assert len(parts["val"]) == 8 and len(parts["test"]) == 8


def test_split_records_reproducible_and_seed_dependent():
    records = _records(n_refs=30)
    a = split_records(records, 0.2, 0.1, seed=1)
    b = split_records(records, 0.2, 0.1, seed=1)
    c = split_records(records, 0.2, 0.1, seed=2)
    assert a == b
    assert _refs(a["val"]) != _refs(c["val"])


def test_split_records_errors():
    with pytest.raises(ConfigError, match="val_ratio"):
        split_records(_records(), val_ratio=1.2)
    with pytest.raises(ConfigError, match="below 1"):
        split_records(_records(), val_ratio=0.5, test_ratio=0.5)
    with pytest.raises(DataError, match="Too few"):
        split_records(_records(n_refs=2), val_ratio=0.3, test_ratio=0.3)
    with pytest.raises(DataError, match="empty"):
        split_records([], 0.2)


def test_make_splits_save_load_select(tmp_path):
    records = _records()
    splits = make_splits(records, n=3, val_ratio=0.2, seed=10)
    assert [s["seed"] for s in splits] == [10, 11, 12]
    assert all(s["test"] == [] for s in splits)
    path = tmp_path / "run" / "splits.json"
    save_splits(path, splits, {"dataset": "x", "val_ratio": 0.2})
    assert load_splits(path) == splits
    assert load_splits_meta(path)["dataset"] == "x"
    assert not list((tmp_path / "run").glob(".*"))  # no temp file left over
    parts = select(records, splits[1])
    assert [r["image_path"] for r in parts["val"]] == splits[1]["val"]
    with pytest.raises(DataError, match="not in the dataset"):
        select(records[:5], splits[1])


def test_make_splits_test_parts_are_k_folds():
    records = _records(n_refs=23, per_ref=2)
    splits = make_splits(records, n=5, val_ratio=0.15, test_ratio=0.2, seed=4)
    tested = [_paths_refs(records, s["test"]) for s in splits]
    # Every reference is in exactly one test part; fold sizes differ by <= 1.
    assert sorted(r for t in tested for r in t) == sorted(_refs(records))
    assert sorted(len(t) for t in tested) == [4, 4, 5, 5, 5]
    for split, test in zip(splits, tested, strict=True):
        val = _paths_refs(records, split["val"])
        train = _paths_refs(records, split["train"])
        assert len(val) == 3 and not val & test and not train & (val | test)
        assert len(train) + len(val) + len(test) == 23
    assert [s["fold"] for s in splits] == [0, 1, 2, 3, 4]
    # Fewer splits than folds: disjoint test parts, the same first folds.
    first = make_splits(records, n=2, val_ratio=0.15, test_ratio=0.2, seed=4)
    assert [s["test"] for s in first] == [s["test"] for s in splits[:2]]
    assert split_records(records, 0.15, 0.2, seed=4)["test"] == [
        r for r in records if r["image_path"] in set(splits[0]["test"])
    ]
    with pytest.raises(ConfigError, match="at most 5 splits"):
        make_splits(records, n=6, val_ratio=0.15, test_ratio=0.2)


def _paths_refs(records, paths):
    by_path = {r["image_path"]: r["ref_id"] for r in records}
    return {by_path[p] for p in paths}


def test_split_from_json_and_csv(tmp_path):
    records = _records(n_refs=4, per_ref=2)
    spec = {"train": ["r00", "dist/r01_0.png", "r01_1.png"], "test": ["r03"]}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    parts = split_from_file(records, str(tmp_path / "s.json"))
    assert _refs(parts["train"]) == {"r00", "r01"} and len(parts["train"]) == 4
    assert _refs(parts["test"]) == {"r03"} and parts["val"] == []

    (tmp_path / "s.csv").write_text(
        "image,split\nr00_0.png,train\nr00_1.png,training\nr02_0.png,validation\n"
    )
    parts = split_from_file(records, str(tmp_path / "s.csv"))
    assert len(parts["train"]) == 2 and len(parts["val"]) == 1

    (tmp_path / "bad.csv").write_text("image,part\na,train\n")
    with pytest.raises(DataError, match="'image', 'part'"):
        split_from_file(records, str(tmp_path / "bad.csv"))
    (tmp_path / "unknown.json").write_text(json.dumps({"train": ["nope.png"]}))
    with pytest.raises(DataError, match="nope.png"):
        split_from_file(records, str(tmp_path / "unknown.json"))
    (tmp_path / "twice.json").write_text(
        json.dumps({"train": ["r00"], "test": ["r00_0.png"]})
    )
    with pytest.raises(DataError, match="both train and test"):
        split_from_file(records, str(tmp_path / "twice.json"))


def test_splits_for_config_writes_run_splits(tmp_path):
    from tfiqa.config import DataConfig

    records = _records()
    cfg = DataConfig(val_ratio=0.2, test_ratio=0.2, num_splits=4, split_index=2)
    parts = splits_for_config(records, cfg, seed=5, workdir=str(tmp_path))
    saved = load_splits(tmp_path / "splits" / "splits.json")
    assert len(saved) == 4 and saved[2]["seed"] == 7
    assert [r["image_path"] for r in parts["test"]] == saved[2]["test"]
    cfg.split_index = 9
    with pytest.raises(ConfigError, match="split_index"):
        splits_for_config(records, cfg)
    # More splits than test folds: one split per fold (test_ratio 0.25: 4).
    cfg.num_splits, cfg.test_ratio, cfg.split_index = 10, 0.25, 3
    splits_for_config(records, cfg, seed=5, workdir=str(tmp_path))
    saved = load_splits(tmp_path / "splits" / "splits.json")
    assert len(saved) == 4
    tested = sorted(p for split in saved for p in split["test"])
    assert tested == sorted(r["image_path"] for r in records)
    cfg.split_index = 4
    with pytest.raises(ConfigError, match=r"split_index must be in \[0, 3\]"):
        splits_for_config(records, cfg)
