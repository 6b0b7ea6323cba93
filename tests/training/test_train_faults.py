"""`tfiqa train --workdir` on a full disk, a read-only file system and a
path that is not a folder: exit status 2 and one line naming the folder,
no temporary file left, what was there before untouched.

The tmpfs fixtures mount a small file system (root only; skipped with the
reason otherwise).
"""

import os

import pytest
import yaml
from click.testing import CliRunner

from tests.test_fault_injection import (  # noqa: F401
    assert_one_line_error,
    fill,
    readonly_tmpfs,
    small_tmpfs,
    tfiqa,
)
from tests.training.test_transfer import csv_dataset

# A one-step finetune of a small model on 16 images outside the tmpfs.
TINY = [
    "stages.order=[finetune]",
    "data.dataset=csv",
    "data.num_splits=1",
    "data.crop_size=32",
    "data.batch_size=4",
    "model.scoring.crops=1",
    "model.backbone=resnet18",
    "model.weights=none",
    "model.levels=[P5]",
    "model.head_units=[4]",
    "stages.finetune.schedule.epochs=1",
    "stages.finetune.schedule.steps_per_epoch=1",
    "runtime.precise_bn_batches=1",
]


def train_args(workdir, *overrides):
    args = ["train", "--workdir", str(workdir)]
    for override in overrides:
        args += ["--set", override]
    return args


@pytest.mark.slow
def test_train_on_a_full_disk(tmp_path, small_tmpfs):  # noqa: F811
    workdir = small_tmpfs / "run"
    workdir.mkdir()
    (workdir / "notes.txt").write_bytes(b"earlier")
    dataset = csv_dataset(tmp_path)
    fill(small_tmpfs, leave=64 * 1024)  # the run's files fit, its weights not
    status, lines = tfiqa(*train_args(workdir, *TINY, f"data.dataset_dir={dataset}"))
    # stderr: the error line only (stdout has the stage lines).
    assert_one_line_error(status, lines, f"--workdir {workdir}", "No space left")
    assert (workdir / "notes.txt").read_bytes() == b"earlier"
    assert yaml.safe_load((workdir / "config.yaml").read_text())["data"]
    left = [
        os.path.join(root, name)
        for root, dirs, files in os.walk(workdir)
        for name in dirs + files
        if name.startswith(".") or name.endswith("_temp")
    ]
    assert left == []


def test_train_on_a_read_only_file_system(readonly_tmpfs):  # noqa: F811
    from tfiqa.cli import cli

    folder = readonly_tmpfs({"kept.txt": b"kept"})
    workdir = folder / "runs" / "run"  # its parent cannot be made either
    result = CliRunner().invoke(cli, train_args(workdir))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: Cannot write --workdir {workdir}: Read-only file system"
    )
    assert os.listdir(folder) == ["kept.txt"]


def test_train_workdir_that_is_not_a_folder():
    from tfiqa.cli import cli

    result = CliRunner().invoke(cli, train_args(os.devnull))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: --workdir {os.devnull} is a character device, not a folder: "
        "choose a folder."
    )


def test_only_failures_under_the_folder_are_reported_as_its_own(tmp_path):
    import errno

    from tfiqa.errors import DataError
    from tfiqa.write_failures import reporting_write_failures

    run = tmp_path / "run"
    full = OSError(errno.ENOSPC, "h5py: pages of detail", str(run / "w.h5"))
    expected = f"^Cannot write --workdir {run}: No space left on device$"
    with (
        pytest.raises(DataError, match=expected),
        reporting_write_failures(run, "--workdir"),
    ):
        raise full
    elsewhere = OSError(errno.EACCES, "Permission denied", "/data/image.png")
    with (
        pytest.raises(OSError) as info,  # a read elsewhere keeps its type
        reporting_write_failures(run, "--workdir"),
    ):
        raise elsewhere
    assert info.value is elsewhere
