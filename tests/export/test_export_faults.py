"""`tfiqa export --output` on a full disk, a read-only file system and a
path that is not a folder; and the work folders a killed export leaves.

The tmpfs fixtures mount a small file system (root only; skipped with the
reason otherwise). Each case checks what a user sees: exit status 2, one
line naming the folder, no work folder left, earlier exports untouched.
"""

import os

import pytest
from click.testing import CliRunner

from tests.export.helpers import tiny_model
from tests.test_fault_injection import (  # noqa: F401
    assert_one_line_error,
    fill,
    readonly_tmpfs,
    small_tmpfs,
    tfiqa,
)
from tfiqa.export import saved_model, tflite
from tfiqa.export.work_dirs import make_work_dir, remove_stale_work_dirs


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model().save(path)
    return str(path)


def export_args(model_path, output):
    return ["export", "--model", model_path, "--output", output, "--format", "all",
            "--quantize", "none"]  # fmt: skip


def hidden(folder):
    """Hidden entries anywhere under `folder` (work folders, temp files)."""
    return [
        os.path.join(root, name)
        for root, dirs, files in os.walk(folder)
        for name in dirs + files
        if name.startswith(".")
    ]


def snapshot(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, files in os.walk(folder)
        for name in files
    }


@pytest.mark.slow
def test_export_on_a_full_disk_keeps_the_earlier_export(
    small_tmpfs,  # noqa: F811 (the fixture)
    model_path,
):
    output = small_tmpfs / "out"
    args = export_args(model_path, output)
    status, lines = tfiqa(*args)
    assert status == 0, lines
    earlier = snapshot(output)
    del earlier["export.json"]  # removed first: the folder is then partial
    fill(small_tmpfs)
    status, lines = tfiqa(*args)
    assert_one_line_error(status, lines, f"--output {output}", "No space left")
    assert hidden(output) == []
    now = snapshot(output)
    assert {name: now.get(name) for name in earlier} == earlier


@pytest.mark.slow
def test_export_to_a_read_only_file_system(
    readonly_tmpfs,  # noqa: F811 (the fixture)
    model_path,
):
    folder = readonly_tmpfs({"kept.txt": b"kept"})
    status, lines = tfiqa(*export_args(model_path, folder / "out"))
    assert_one_line_error(status, lines, f"--output {folder / 'out'}", "Read-only")
    assert os.listdir(folder) == ["kept.txt"]


def test_export_output_that_is_not_a_folder(model_path):
    from tfiqa.cli import cli

    result = CliRunner().invoke(cli, export_args(model_path, os.devnull))
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: --output {os.devnull} is a character device, not a folder: "
        "choose a folder."
    )


def test_stale_work_folders_go_and_live_ones_stay(tmp_path):
    live = make_work_dir(str(tmp_path), ".tmp-")  # this process: not live
    parent = os.getppid()  # a live process other than this one
    running = tmp_path / f".tmp-{parent}-abcd1234"
    legacy = tmp_path / ".tmp-x1y2z3w4"  # named before pids were
    gone = tmp_path / ".tmp-999999999-abcd1234"
    other = tmp_path / ".tmp-tflite-999999999-abcd1234"  # another prefix
    for folder in (running, legacy, gone, other):
        folder.mkdir()
    version = tmp_path / "1"  # a plain version folder is never touched
    version.mkdir()
    removed = remove_stale_work_dirs(str(tmp_path), ".tmp-")
    assert sorted(removed) == sorted([os.path.basename(live), legacy.name, gone.name])
    assert running.is_dir() and other.is_dir() and version.is_dir()


def test_rerun_removes_what_a_killed_export_left(tmp_path):
    from tfiqa.export import export_model

    out = tmp_path / "out"
    killed = 999_999_999  # no such process
    stale_saved_model = out / "tfiqa" / f"{saved_model.WORK_PREFIX}{killed}-abcd1234"
    stale_tflite = out / "tflite" / f"{tflite.WORK_PREFIX}{killed}-abcd1234"
    # Killed between its two moves: version 1 set aside, not yet replaced.
    set_aside = out / "tfiqa" / f"{saved_model.OLD_PREFIX}{killed}-abcd1234" / "1"
    for folder in (stale_saved_model, stale_tflite, set_aside):
        folder.mkdir(parents=True)
    (set_aside / "saved_model.pb").write_bytes(b"earlier")
    export_model(tiny_model(), str(out), formats=["saved_model", "tflite"],
                 quantize=["none"], input_size=32, version=2)  # fmt: skip
    assert hidden(out) == []
    assert (out / "tfiqa" / "1" / "saved_model.pb").read_bytes() == b"earlier"
    assert (out / "tfiqa" / "2" / "saved_model.pb").is_file()
