"""Stage split files and the leak check."""

import json

import pytest

from tfiqa.data.split_record import check_no_leaks, source_id, write_stage_split
from tfiqa.errors import LeakError


def test_source_id_is_the_file_stem():
    assert source_id("/data/p/img_03.png") == "img_03"


def test_leak_check_passes_on_disjoint_stages_and_names_a_leak(tmp_path):
    workdir = str(tmp_path)
    write_stage_split(workdir, "rank", tmp_path, {"train": ["a", "b"], "val": ["c"]}, 1)
    write_stage_split(
        workdir, "finetune", tmp_path, {"train": ["a"], "val": ["c"], "test": ["d"]}, 2
    )
    # Another source may reuse an id: ids are compared per source folder.
    write_stage_split(workdir, "meta", tmp_path / "other", {"train": ["d"]}, 3)
    saved = json.loads((tmp_path / "splits" / "finetune.json").read_text())
    assert saved["test"] == ["d"] and saved["seed"] == 2
    report = check_no_leaks(workdir, ["rank", "meta", "finetune"])
    assert report["passed"] and report["test_ids"] == 1

    # The prior stage validated on a test reference.
    write_stage_split(workdir, "rank", tmp_path, {"train": ["a"], "val": ["d"]}, 1)
    with pytest.raises(
        LeakError, match=r"'finetune' are in the val part of stage 'rank'"
    ):
        check_no_leaks(workdir, ["rank", "finetune"])
    # Within one stage: a test id in its own training part.
    write_stage_split(workdir, "finetune", tmp_path, {"train": ["d"], "test": ["d"]}, 2)
    with pytest.raises(LeakError, match="train part of stage 'finetune'"):
        check_no_leaks(workdir, ["finetune"])
