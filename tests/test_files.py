import errno
import os
import stat
import subprocess
import sys

import pytest

from tfiqa.errors import DataError
from tfiqa.files import (
    atomic_path,
    reporting_write_errors,
    write_json_atomic,
    write_text_atomic,
)


def test_write_text_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out" / "a.txt"
    write_text_atomic(str(path), "one")
    write_text_atomic(str(path), "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["a.txt"]


def test_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    write_json_atomic(str(path), {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(str(path)) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed mid-write")
    assert '"v": 1' in path.read_text()
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_killed_writers_temporary_is_cleared_by_the_next_write(tmp_path):
    # A writer killed between creating its temporary file and the rename
    # leaves `.<name>-tmp-<pid>-*`; the next write to the same path removes
    # it once that pid is gone, and never touches a running writer's file.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(child.stdout)
    stale = tmp_path / f".model-tmp-{dead}-abc123.tflite"
    running = tmp_path / f".model-tmp-{os.getpid()}-def456.tflite"
    other = tmp_path / f".other-tmp-{dead}-abc123.tflite"
    for path in (stale, running, other):
        path.write_bytes(b"half")
    write_text_atomic(str(tmp_path / "model.tflite"), "done")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["model.tflite", running.name, other.name]
    )


def test_keras_weights_are_written_through_a_temporary_keras_accepts(tmp_path):
    # Keras picks the weights format from the whole ".weights.h5" ending and
    # refuses any other name, so the temporary must end the same way.
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "final.weights.h5"
    with atomic_path(str(path)) as tmp:
        assert tmp.endswith(".weights.h5")
        model.save_weights(tmp)
    model.load_weights(str(path))
    assert os.listdir(tmp_path) == ["final.weights.h5"]


def test_result_has_umask_permissions(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(str(path), "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_atomic_path_refuses_a_device_or_fifo(tmp_path):
    link = tmp_path / "null.json"
    link.symlink_to("/dev/null")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    for path, kind in ((link, "a character device"), (fifo, "a FIFO")):
        with pytest.raises(DataError, match=f"Output {path} is {kind}"):
            write_text_atomic(str(path), "x")
    assert os.path.islink(link) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null.json", "pipe.txt"]


def test_write_errors_become_one_line_naming_the_path(tmp_path):
    message = r"^Cannot write /x/out.csv: No space left"
    with pytest.raises(DataError, match=message), reporting_write_errors("/x/out.csv"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/.tmp123")
    # Not an OSError: left alone.
    with pytest.raises(ValueError), reporting_write_errors("/x/out.csv"):
        raise ValueError("a bug")
