"""Auditable runs: what every stage trained, validated and tested on.

Each stage of a run writes `splits/<stage>.json`:

    {"stage": "finetune", "source": "/data/koniq10k", "seed": 0,
     "train": [ids], "val": [ids], "test": [ids], ...}

The ids name source content: the `ref_id` of MOS records, or the file stem
of a pristine image (`source_id`, which is also the `ref_id` of the
pseudo-MOS set synthesised from it). `source` is the folder the ids refer
to, so ids are compared only between stages that draw on the same images.

`check_no_leaks` proves from these files alone that no test id was trained
or validated on by the same stage or any earlier one; `run_experiment`
(and so `tfiqa train`) runs it at the end of every run over every stage it
ran, so a stage that wrote no split file fails the check instead of being
left out of it.
"""

import json
import os

from tfiqa.errors import DataError, LeakError
from tfiqa.files import write_json_atomic

PARTS = ("train", "val", "test")


def source_id(path):
    """The content id of a pristine image: its file name without extension."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def source_key(folder):
    """A folder in the form stored as `source` (absolute, links resolved)."""
    return os.path.realpath(str(folder))


def split_path(workdir, stage):
    return os.path.join(workdir, "splits", f"{stage}.json")


def write_stage_split(workdir, stage, source, parts, seed, **extra):
    """Writes `splits/<stage>.json`.

    Args:
        workdir: str, the run's work directory.
        stage: str, the stage name.
        source: str, the folder the ids refer to.
        parts: dict {"train", "val", "test"} of id iterables (missing = []).
        seed: int, the seed that made the split.
        **extra: anything else worth keeping (ratios, types, split index).
    """
    record = {"stage": stage, "source": source_key(source), "seed": seed, **extra}
    for part in PARTS:
        record[part] = sorted({str(i) for i in parts.get(part, ())})
    write_json_atomic(split_path(workdir, stage), record)
    return record


def _load(workdir, stage):
    path = split_path(workdir, stage)
    if not os.path.isfile(path):
        # What the stage used is unknown, so nothing can be proven about it.
        raise LeakError(
            f"Stage '{stage}' has no split file, so what it trained on cannot "
            f"be checked. Received: {path} (missing)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"Stage split file {path} cannot be read: {e}") from None


def check_no_leaks(workdir, stages, parts=("train", "val")):
    """Raises `LeakError` if a stage's test id was trained or validated on.

    A test id of stage i must not be in the `parts` lists of any stage
    j <= i drawing on the same source folder.

    Args:
        workdir: str.
        stages: list of stage names, in run order. A stage without a split
            file is a `LeakError`.
        parts: the parts a test id must stay out of: ("train", "val") for a
            run, whose stages select settings on validation; ("train",) for
            a protocol that scores models it did not select.

    Returns:
        dict {"stages": [...], "test_ids": number checked, "passed": True}.
    """
    records = [_load(workdir, stage) for stage in stages]
    checked = 0
    for i, tested in enumerate(records):
        test = set(tested["test"])
        checked += len(test)
        for seen in records[: i + 1]:
            if seen["source"] != tested["source"]:
                continue
            for part in parts:
                shared = sorted(test & set(seen[part]))
                if shared:
                    raise LeakError(
                        f"Leak: {len(shared)} test id(s) of stage "
                        f"'{tested['stage']}' are in the {part} part of stage "
                        f"'{seen['stage']}' ({split_path(workdir, seen['stage'])}). "
                        f"Received e.g.: {shared[:3]}"
                    )
    return {"stages": list(stages), "test_ids": checked, "passed": True}


def drop_ids(paths, ids):
    """Pristine image paths whose `source_id` is not in `ids`."""
    return [p for p in paths if source_id(p) not in ids]
