"""Output folders that cannot be written: one line naming the folder.

A full disk or a read-only file system fails deep inside a long command,
through Python (`OSError`) or through TensorFlow's own file writes
(checkpoints, SavedModels: `tf.errors.ResourceExhaustedError` and friends,
whose message ends with the system's reason). `reporting_write_failures`
turns both into a `DataError` naming the folder the user chose; errors that
are not about writing keep their type.
"""

import contextlib
import errno
import gc
import os
import stat
import sys
import tempfile

from tfiqa.errors import DataError
from tfiqa.files import file_kind

_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EFBIG,
    errno.ENOTDIR,
}
# How TensorFlow's file system layer words the same errors.
_TF_REASONS = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Permission denied",
)


def write_failure_reason(error, folder):
    """Why `error` failed a write under `folder` ("No space left on
    device", ...), or None when it is not one (a file elsewhere that could
    not be read, for example)."""
    if isinstance(error, OSError):
        if error.errno not in _WRITE_ERRNOS or not _under(error.filename, folder):
            return None
        # h5py puts pages of detail into strerror; the errno says it all.
        return os.strerror(error.errno)
    message = str(getattr(error, "message", ""))  # tf.errors.OpError
    return next((reason for reason in _TF_REASONS if reason in message), None)


@contextlib.contextmanager
def reporting_write_failures(folder, option):
    """Turns a write failure inside into `DataError("Cannot write OPTION
    FOLDER: REASON")`; other errors pass through unchanged."""
    try:
        yield
    except Exception as e:
        reason = write_failure_reason(e, folder)
        if reason is None:
            raise
        _close_open_files(folder)
        raise DataError(f"Cannot write {option} {folder}: {reason}") from None


def _under(path, folder):
    """Whether `path` (None when the error names no file) is in `folder`."""
    if path is None or not isinstance(path, (str, bytes, os.PathLike)):
        return True
    root = os.path.join(os.path.abspath(folder), "")
    return os.path.join(os.path.abspath(os.fsdecode(path)), "").startswith(root)


def _close_open_files(folder):
    """Closes the HDF5 files under `folder` that the failed write left open
    (Keras does not close a `.weights.h5` whose write failed): freed later,
    they would fail to flush again, print pages and may crash the exit."""
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return
    for obj in gc.get_objects():
        if not isinstance(obj, h5py.File) or not obj.id.valid:
            continue
        if _under(obj.filename, folder):
            with contextlib.suppress(Exception):
                obj.close()


def check_output_folder(folder, option):
    """Raises `DataError` unless `folder` is a folder or can be made one.

    Creates it (and its parents): a read-only file system or a path that is
    a file (`--workdir /dev/null`) fails here, before any work.
    """
    try:
        mode = os.stat(folder).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise DataError(f"Cannot write {option} {folder}: {e.strerror}") from None
    if mode is not None and not stat.S_ISDIR(mode):
        kind = file_kind(mode) or "a file"
        raise DataError(f"{option} {folder} is {kind}, not a folder: choose a folder.")
    try:
        os.makedirs(folder, exist_ok=True)
        # A probe file: the real reason (read-only, full, no permission).
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise DataError(f"Cannot write {option} {folder}: {reason}") from None
