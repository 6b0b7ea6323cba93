"""What the repository itself may hold."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYMLINK_MODE = "120000"


def tracked_entries():
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout: nothing to check")
    listing = subprocess.run(
        ["git", "ls-files", "--stage"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # "<mode> <object> <stage>\t<path>"
    return [line.split("\t", 1) for line in listing.splitlines()]


def test_no_symbolic_link_is_tracked():
    # A tracked link where a clone keeps an ignored folder (benchmarks/out,
    # the caches) replaces that folder when checked out or merged, and
    # points at a path of the machine it was made on.
    links = [path for meta, path in tracked_entries() if meta.startswith(SYMLINK_MODE)]
    assert links == []
