"""The numpy reader of legacy PyTorch checkpoints and its unpickling guard."""

import collections
import os
import pickle
import struct

import numpy as np
import pytest

from tfiqa.models.torch_checkpoint import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    CheckpointError,
    read_legacy_checkpoint,
    write_legacy_checkpoint,
)


def test_round_trip_keeps_every_value_dtype_and_shape(tmp_path):
    rng = np.random.default_rng(0)
    state = collections.OrderedDict(
        [
            ("conv.weight", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
            ("bn.num_batches_tracked", np.array(7, np.int64)),
            ("half", rng.normal(size=(5,)).astype(np.float16)),
            ("double", rng.normal(size=(2, 2))),
            ("mask", np.array([True, False, True])),
            ("bytes", np.arange(6, dtype=np.uint8).reshape(2, 3)),
            ("transposed", np.arange(12, dtype=np.float32).reshape(3, 4).T),
        ]
    )
    path = str(tmp_path / "state.pth")
    write_legacy_checkpoint(path, state)
    loaded = read_legacy_checkpoint(path)
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert loaded[name].dtype == value.dtype, name
        assert loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_views_with_offsets_and_strides_are_read_from_their_storage(tmp_path):
    # Two tensors sharing one storage, the second a strided view at an offset,
    # as torch writes slices of one parameter.
    path = str(tmp_path / "views.pth")
    storage = np.arange(10, dtype=np.float32)
    with open(path, "wb") as f:
        for value in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(value, f, protocol=2)
        f.write(
            b"\x80\x02ccollections\nOrderedDict\n)R("
            + _tensor(b"whole", (10,), (1,), 0)
            + _tensor(b"every_other_from_3", (3,), (2,), 3)
            + b"u."
        )
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", 10) + storage.tobytes())
    loaded = read_legacy_checkpoint(path)
    np.testing.assert_array_equal(loaded["whole"], storage)
    np.testing.assert_array_equal(loaded["every_other_from_3"], [3.0, 5.0, 7.0])


def _tensor(name, size, stride, offset):
    def ints(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"

    def text(value):
        return b"X" + struct.pack("<I", len(value)) + value

    return (
        text(name)
        + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        + text(b"storage")
        + b"ctorch\nFloatStorage\n"
        + text(b"0")
        + text(b"cpu")
        + b"J"
        + struct.pack("<i", 10)
        + b"NtQ"
        + b"J"
        + struct.pack("<i", offset)
        + ints(size)
        + ints(stride)
        + b"\x89ccollections\nOrderedDict\n)RtR"
    )


@pytest.mark.parametrize(
    "module, name",
    [("os", "system"), ("builtins", "eval"), ("torch", "load"), ("numpy", "load")],
)
def test_a_pickle_naming_any_other_class_is_refused_before_it_runs(
    tmp_path, module, name
):
    marker = tmp_path / "ran"
    path = str(tmp_path / "evil.pth")
    with open(path, "wb") as f:
        for value in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(value, f, protocol=2)
        # GLOBAL module.name, then call it with one string argument.
        f.write(
            b"\x80\x02c"
            + f"{module}\n{name}\n".encode()
            + b"X"
            + struct.pack("<I", len(f"touch {marker}"))
            + f"touch {marker}".encode()
            + b"\x85R."
        )
    with pytest.raises(CheckpointError, match=rf"refused.*{module}\.{name}"):
        read_legacy_checkpoint(path)
    assert not marker.exists()


def test_the_header_pickles_are_guarded_too(tmp_path):
    path = str(tmp_path / "evil_header.pth")
    with open(path, "wb") as f:
        f.write(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.")
    with pytest.raises(CheckpointError, match=r"os\.system"):
        read_legacy_checkpoint(path)


def test_truncated_and_foreign_files_get_one_line_errors(tmp_path):
    path = str(tmp_path / "state.pth")
    write_legacy_checkpoint(path, {"w": np.ones((100,), np.float32)})
    with open(path, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        read_legacy_checkpoint(str(truncated))
    zipped = tmp_path / "zip.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    with pytest.raises(CheckpointError, match="zip-format"):
        read_legacy_checkpoint(str(zipped))
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_legacy_checkpoint(str(text))
    assert os.path.isfile(path)
