"""Atomic file writing: a reader sees the old file or the new one, never half.

Outputs are regular files only: a path that is a device, FIFO, socket or
folder is refused rather than replaced by a rename (as root that would
replace /dev/null). `reporting_write_errors` turns a failed write (full disk,
read-only file system, no permission) into a one-line `DataError`.
"""

import contextlib
import json
import math
import os
import re
import stat
import tempfile

from tfiqa.errors import DataError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode):
    """What a `st_mode` is when it is not a regular file ("a character
    device", ...); None for a regular file."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_regular_output(path, what="Output"):
    """Raises DataError if `path` exists (through symlinks) and is not a
    regular file; a missing path is fine (it will be created)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise DataError(f"Cannot write {path}: {e.strerror}") from None
    kind = file_kind(mode)
    if kind is not None:
        raise DataError(
            f"{what} {path} is {kind}; results are written to regular files "
            "only: choose a file path."
        )


def process_alive(pid):
    """Whether a process with this pid is running (another user's too): a
    lock or work folder whose writer died can be taken over."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except (OverflowError, OSError):
        return False
    return True


@contextlib.contextmanager
def reporting_write_errors(path):
    """Turns an OSError raised inside into a one-line DataError naming
    `path` and why (no space left, read-only file system, ...)."""
    try:
        yield
    except OSError as e:
        raise DataError(f"Cannot write {path}: {e.strerror or e}") from None


# Keras reads the format of weights files from this double extension.
DOUBLE_EXTENSIONS = (".weights.h5",)


def _split_extension(name):
    for ext in DOUBLE_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)], ext
    return os.path.splitext(name)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; renames it over `path` on success.

    Example:
    ```python
    with atomic_path("out/model.keras") as tmp:
        model.save(tmp)
    ```
    """
    check_regular_output(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, ext = _split_extension(os.path.basename(path))
    prefix = f".{base}-tmp-"
    remove_stale_temporaries(directory, prefix, ext)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f"{prefix}{os.getpid()}-", suffix=ext
    )
    os.close(fd)
    # mkstemp creates 0600 files; give the result the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def remove_stale_temporaries(directory, prefix, ext):
    """Removes `<prefix><pid>-*<ext>` files of writers that died mid-way (a
    killed run leaves its temporary file; the next write to the same path
    clears it). Files of running processes are left alone."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-.*" + re.escape(ext) + "$")
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            found = pattern.match(name)
            if found and not process_alive(int(found.group(1))):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(directory, name))


def write_text_atomic(path, text):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def json_ready(value):
    """`value` as plain JSON types: numpy scalars become Python numbers,
    tuples lists, and NaN/inf None (JSON has no NaN)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
