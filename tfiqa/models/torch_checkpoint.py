"""Reads PyTorch checkpoints in the legacy (non-zip) format into numpy arrays.

A legacy `.pth` file is five pickles followed by raw storage bytes:

1. the magic number `LEGACY_MAGIC`;
2. the protocol version (1001);
3. system info (byte order, C type sizes);
4. the object itself (a state dict): each tensor is a call to
   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
   whose storage is a persistent id `("storage", StorageType, key,
   location, numel, view_metadata)`;
5. the list of storage keys in file order, then per key a little-endian
   int64 element count and the storage's raw bytes.

Unpickling runs whatever a file names, so the unpickler is the security
boundary: it resolves only the storage types, `_rebuild_tensor_v2` and
`collections.OrderedDict`, and refuses every other global with an error that
names it. torch itself is never imported.

Example:
```python
state = read_legacy_checkpoint("efficientnet-lite0.pth")
state["_conv_stem.weight"].shape  # (32, 3, 3, 3), float32
```
"""

import collections
import pickle
import struct

import numpy as np

from tfiqa.errors import TfiqaError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# torch storage class -> numpy dtype (little-endian, as the files store them).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": None,  # numpy has no bfloat16: widened on read
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointError(TfiqaError):
    """A checkpoint file that is malformed or names a disallowed class."""


class _StorageType:
    """Stands for `torch.<name>Storage` while unpickling."""

    def __init__(self, name):
        self.name = name


def _rebuild_tensor_v2(storage, offset, size, stride, *unused):
    """Records a tensor view; it is filled from its storage after the pickle."""
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _TensorRef:
    def __init__(self, key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = key, offset, size, stride


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves the few globals a state dict needs; refuses all others."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storages = {}  # key -> (dtype name, numel)

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise CheckpointError(
            f"{self.path}: refused to load: the checkpoint names {module}.{name}, "
            "which is not a tensor or a state dict (only torch storages, "
            "torch._utils._rebuild_tensor_v2 and collections.OrderedDict are "
            "allowed)."
        )

    def persistent_load(self, pid):
        if (
            not isinstance(pid, tuple)
            or len(pid) < 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
        ):
            raise CheckpointError(f"{self.path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        self.storages[str(key)] = (storage_type.name, int(numel))
        return str(key)


def _read_storage(file, path, type_name, numel):
    count = struct.unpack("<q", _read_exact(file, 8, path))[0]
    if count != numel:
        raise CheckpointError(
            f"{path}: storage holds {count} elements, the pickle says {numel}"
        )
    if type_name == "BFloat16Storage":
        raw = np.frombuffer(_read_exact(file, 2 * count, path), "<u2")
        return (raw.astype(np.uint32) << 16).view(np.float32)
    dtype = np.dtype(STORAGE_DTYPES[type_name])
    return np.frombuffer(_read_exact(file, dtype.itemsize * count, path), dtype)


def _read_exact(file, size, path):
    data = file.read(size)
    if len(data) != size:
        raise CheckpointError(f"{path}: file is truncated")
    return data


def _materialise(ref, storages, path):
    flat = storages[ref.key]
    itemsize = flat.dtype.itemsize
    needed = (
        ref.offset
        + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
        + 1
    )
    if any(n == 0 for n in ref.size):
        return np.zeros(ref.size, flat.dtype)
    if ref.offset < 0 or needed > flat.size or min(ref.stride, default=1) < 0:
        raise CheckpointError(f"{path}: a tensor view lies outside its storage")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.size,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)  # a contiguous copy that owns its memory


def read_legacy_checkpoint(path):
    """Reads a legacy-format PyTorch state dict as {name: numpy array}.

    Args:
        path: str. A `.pth` file written by `torch.save(...,
            _use_new_zipfile_serialization=False)` (or by torch < 1.6).

    Returns:
        collections.OrderedDict of name -> numpy array, in the file's order.

    Raises:
        CheckpointError: the file is not a legacy checkpoint, is truncated,
            or names a class other than the allowed ones.
    """
    with open(path, "rb") as file:
        if file.read(2) == b"PK":
            raise CheckpointError(
                f"{path}: a zip-format PyTorch checkpoint; only the legacy "
                "format is supported"
            )
        file.seek(0)
        header = []
        for _ in range(3):
            try:
                header.append(_RestrictedUnpickler(file, path).load())
            except CheckpointError:
                raise
            except Exception as error:
                raise CheckpointError(
                    f"{path}: not a PyTorch checkpoint ({error})"
                ) from None
        if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
            raise CheckpointError(f"{path}: not a legacy PyTorch checkpoint")
        if not header[2].get("little_endian", True):
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        unpickler = _RestrictedUnpickler(file, path)
        try:
            state = unpickler.load()
            keys = pickle.Unpickler(file).load()  # a plain list of str
        except CheckpointError:
            raise
        except Exception as error:
            raise CheckpointError(f"{path}: malformed checkpoint ({error})") from None
        if not isinstance(state, dict) or not isinstance(keys, list):
            raise CheckpointError(f"{path}: the checkpoint is not a state dict")
        storages = {}
        for key in keys:
            if key not in unpickler.storages:
                raise CheckpointError(f"{path}: unknown storage {key!r}")
            storages[key] = _read_storage(file, path, *unpickler.storages[key])
    out = collections.OrderedDict()
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise CheckpointError(f"{path}: entry {name!r} is not a tensor")
        if ref.key not in storages:
            raise CheckpointError(f"{path}: tensor {name!r} has no storage")
        out[name] = _materialise(ref, storages, path)
    return out


def write_legacy_checkpoint(path, state):
    """Writes {name: numpy array} as a legacy-format PyTorch checkpoint.

    The inverse of `read_legacy_checkpoint` (one storage per tensor, C
    order), for tests and for tools that hand weights to PyTorch users.
    """
    names = {np.dtype(v).str: k for k, v in STORAGE_DTYPES.items() if v}
    names[np.dtype("?").str] = "BoolStorage"

    arrays = [np.asarray(v, order="C") for v in state.values()]
    with open(path, "wb") as file:
        for value in (
            LEGACY_MAGIC,
            LEGACY_PROTOCOL,
            {"protocol_version": LEGACY_PROTOCOL, "little_endian": True},
        ):
            pickle.dump(value, file, protocol=2)
        file.write(_state_pickle(state, arrays, names))
        pickle.dump([str(i) for i in range(len(arrays))], file, protocol=2)
        for array in arrays:
            file.write(struct.pack("<q", array.size))
            file.write(array.astype(array.dtype.newbyteorder("<")).tobytes())


def _state_pickle(state, arrays, names):
    """The protocol-2 pickle of a state dict of legacy tensor references.

    Written opcode by opcode: the globals it names (torch storages,
    `_rebuild_tensor_v2`) must not be importable here.
    """
    out = bytearray(b"\x80\x02")

    def text(value):
        data = value.encode("utf-8")
        return b"X" + struct.pack("<I", len(data)) + data

    def integer(value):
        return b"J" + struct.pack("<i", value)

    def ints(values):
        return b"(" + b"".join(integer(v) for v in values) + b"t"

    out += b"ccollections\nOrderedDict\n)R"
    out += b"("
    for index, (name, array) in enumerate(zip(state, arrays, strict=True)):
        storage = names[np.dtype(array.dtype).newbyteorder("<").str]
        strides = [s // max(array.itemsize, 1) for s in array.strides]
        out += text(name)
        out += b"ctorch._utils\n_rebuild_tensor_v2\n"
        out += b"("  # the call's arguments
        out += b"(" + text("storage") + f"ctorch\n{storage}\n".encode()
        out += text(str(index)) + text("cpu") + integer(array.size) + b"Nt" + b"Q"
        out += integer(0) + ints(array.shape) + ints(strides) + b"\x89"
        out += b"ccollections\nOrderedDict\n)R"  # backward hooks
        out += b"tR"
    out += b"u."
    return bytes(out)
