"""Hidden work folders that exports write next to their outputs.

A SavedModel is written into `.tmp-<pid>-*` beside its version folder and
moved into place when complete; TFLite conversion sources go into
`.tmp-tflite-<pid>-*`. An export that is killed leaves its folder behind;
the next export into the same place removes those whose process is gone
(the pid in the name tells), never one that a running export still writes.
"""

import os
import re
import shutil
import tempfile

from tfiqa.files import process_alive


def make_work_dir(folder, prefix):
    """Creates and returns `folder/<prefix><pid>-<random>`."""
    return tempfile.mkdtemp(dir=folder, prefix=f"{prefix}{os.getpid()}-")


def remove_stale_work_dirs(folder, prefix):
    """Removes the `prefix` work folders in `folder` whose process has ended
    (and those named without a pid, by earlier versions); returns their
    names."""
    # mkdtemp's random characters, after the pid since names carry one.
    pattern = re.compile(rf"{re.escape(prefix)}(?:(\d+)-)?[a-z0-9_]+")
    removed = []
    for entry in sorted(os.listdir(folder)):
        match = pattern.fullmatch(entry)
        path = os.path.join(folder, entry)
        if not match or not os.path.isdir(path) or os.path.islink(path):
            continue
        pid = match.group(1)
        if pid is not None and _running(int(pid)):
            continue
        _restore_kept_versions(path, folder)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(entry)
    return removed


def _restore_kept_versions(work_dir, folder):
    """Moves back a version folder that a killed export had set aside
    (see `saved_model._replace_dir`) and not yet replaced."""
    for entry in os.listdir(work_dir):
        target = os.path.join(folder, entry)
        if entry.isdigit() and not os.path.exists(target):
            os.replace(os.path.join(work_dir, entry), target)


def _running(pid):
    """Whether another live process has this pid (ours cannot be: it
    removes stale folders before it makes its own)."""
    return pid != os.getpid() and process_alive(pid)
