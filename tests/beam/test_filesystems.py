"""Models and images on a Beam filesystem: staging and bounded reads."""

import os
from pathlib import Path

import pytest

pytest.importorskip(
    "apache_beam", reason="apache-beam is not installed: pip install '.[beam]'"
)

from tfiqa.beam.filesystems import is_remote, read_bytes, stage_model  # noqa: E402
from tfiqa.errors import ImageError, TfiqaError  # noqa: E402

from . import memfs  # noqa: E402


@pytest.fixture(autouse=True)
def empty_store():
    memfs.MemoryFileSystem.FILES.clear()
    yield
    memfs.MemoryFileSystem.FILES.clear()


def test_remote_paths_are_those_with_a_scheme():
    assert is_remote("gs://bucket/a.jpg") and is_remote("memtest://b/a.jpg")
    assert not is_remote("photos/a.jpg") and not is_remote("/abs/a.jpg")
    assert not is_remote("preset:mobile-mnv3s") and not is_remote("mobile-mnv3s")


def test_a_saved_model_folder_is_copied_whole(tmp_path):
    memfs.put("m/export/1/saved_model.pb", b"graph")
    memfs.put("m/export/1/variables/variables.index", b"index")
    memfs.put("m/export/1/assets.extra/tfiqa.json", b"{}")
    memfs.put("m/export/10/saved_model.pb", b"other version")
    local = stage_model("memtest://m/export/1/", str(tmp_path))
    assert local == str(tmp_path / "1")
    found = {
        str(path.relative_to(local)): path.read_text()
        for path in Path(local).rglob("*")
        if path.is_file()
    }
    assert found == {
        "saved_model.pb": "graph",
        os.path.join("variables", "variables.index"): "index",
        os.path.join("assets.extra", "tfiqa.json"): "{}",
    }


def test_a_tflite_file_comes_with_its_sidecar(tmp_path):
    memfs.put("m/model.tflite", b"flatbuffer")
    memfs.put("m/model.json", b'{"scoring": {}}')
    local = stage_model("memtest://m/model.tflite", str(tmp_path))
    assert Path(local).read_bytes() == b"flatbuffer"
    assert (tmp_path / "model.json").read_bytes() == b'{"scoring": {}}'
    memfs.put("k/model.keras", b"zip")
    keras_file = stage_model("memtest://k/model.keras", str(tmp_path / "k"))
    assert Path(keras_file).read_bytes() == b"zip"


def test_missing_or_unsafe_models_are_refused(tmp_path):
    with pytest.raises(TfiqaError, match="Model not found"):
        stage_model("memtest://m/none.keras", str(tmp_path))
    with pytest.raises(TfiqaError, match="Model not found"):
        stage_model("memtest://m/empty-folder", str(tmp_path))
    memfs.put("evil/saved_model.pb", b"graph")
    memfs.put("evil/a/../../outside", b"x")
    with pytest.raises(TfiqaError, match="Unsafe file name"):
        stage_model("memtest://evil", str(tmp_path))


def test_reads_are_bounded_and_say_what_went_wrong():
    url = memfs.put("b/a.jpg", b"12345")
    assert read_bytes(url) == b"12345"
    with pytest.raises(ImageError, match="larger than 4 bytes"):
        read_bytes(url, limit=4)
    with pytest.raises(ImageError, match="Image file not found: memtest://b/x.jpg"):
        read_bytes("memtest://b/x.jpg")
