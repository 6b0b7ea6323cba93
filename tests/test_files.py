import os
import stat

import pytest

from tfiqa.files import atomic_path, write_json_atomic, write_text_atomic


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


def test_result_has_umask_permissions(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(str(path), "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
