"""Commands on a full disk and a read-only file system, in child processes.

Each case mounts a small tmpfs (needs root, or the right to mount; skipped
with the reason otherwise) and checks what a user sees: exit status 2, one
line on stderr naming the file, no `.lock` or temporary file left behind and
earlier outputs untouched. `small_tmpfs` and `readonly_tmpfs` are meant for
every command that writes files.
"""

import csv
import os
import subprocess
import sys

import pytest
from conftest import make_image, tiny_resnet
from PIL import Image

pytestmark = pytest.mark.slow

# Room for a first export of the tiny test model (its serving graph alone is
# about 270 kB) before `fill` takes the rest.
SMALL_BYTES = 1024 * 1024
PAGE = 4096  # tmpfs gives every non-empty file whole pages


def _mount(folder, options):
    os.makedirs(folder, exist_ok=True)
    args = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except OSError as e:
        pytest.skip(f"fault injection needs `mount` ({e}); not run")
    if result.returncode != 0:
        pytest.skip(
            "fault injection needs to mount a tmpfs (root); not run: "
            + result.stderr.strip()
        )


def _unmount(folder):
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder, leave=0):
    """Fills the file system of `folder` but for `leave` bytes (whole pages);
    returns the filler file (truncate or remove it to free space)."""
    filler = os.path.join(folder, "filler")
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if os.path.exists(filler):
        free += os.path.getsize(filler)
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - leave))
    return filler


@pytest.fixture
def small_tmpfs(tmp_path):
    """A writable tmpfs of `SMALL_BYTES`; `fill` it to make writes fail."""
    folder = tmp_path / "small"
    _mount(folder, f"size={SMALL_BYTES}")
    yield folder
    _unmount(folder)


@pytest.fixture
def readonly_tmpfs(tmp_path):
    """`make(files)` -> a read-only tmpfs holding `files` ({name: bytes})."""
    mounted = []

    def make(files):
        folder = tmp_path / f"readonly{len(mounted)}"
        _mount(folder, f"size={SMALL_BYTES}")
        mounted.append(folder)
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        result = subprocess.run(
            ["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot remount a tmpfs read-only: {result.stderr.strip()}")
        return folder

    yield make
    for folder in mounted:
        _unmount(folder)


def tfiqa(*args):
    """`tfiqa ARGS` in a child process -> (exit status, stderr lines)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tfiqa.cli", *map(str, args)]
    result = subprocess.run(command, capture_output=True, env=env, timeout=300)
    return result.returncode, result.stderr.decode(errors="replace").splitlines()


def assert_one_line_error(status, lines, *fragments):
    assert status == 2, lines
    (line,) = [line for line in lines if line.strip()]
    assert line.startswith("Error: "), line
    for fragment in fragments:
        assert fragment in line, line


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(make_image((36, 40), seed=i)).save(folder / f"{i}.png")
    return folder


EARLIER = b"image,score,error\nearlier.png,0.100000,\n"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = tiny_resnet()
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return str(path)


def test_predict_on_a_full_disk(small_tmpfs, images, model_path):
    output = small_tmpfs / "scores.csv"
    output.write_bytes(EARLIER)
    filler = fill(small_tmpfs)
    predict = ["predict", "--model", model_path, "--output", output, images]
    # No room even for the lock file's process id.
    status, lines = tfiqa(*predict)
    assert_one_line_error(status, lines, f"{output}.lock", "No space left on device")
    assert listing(small_tmpfs) == ["filler", "scores.csv"]
    assert output.read_bytes() == EARLIER
    # Room for the lock and the rows, not for the finished CSV: the rows
    # stay in .partial and the earlier CSV is untouched.
    fill(small_tmpfs, leave=2 * PAGE)
    status, lines = tfiqa(*predict)
    assert_one_line_error(status, lines, str(output), "No space left on device")
    assert listing(small_tmpfs) == ["filler", "scores.csv", "scores.csv.partial"]
    assert output.read_bytes() == EARLIER
    with open(f"{output}.partial") as f:
        assert f.read().count(".png,0.") == 3
    # With space again, the run resumes from the rows it kept.
    os.remove(filler)
    status, lines = tfiqa(*predict)
    assert status == 0, lines
    assert any("Resuming: 3 rows" in line for line in lines), lines
    assert listing(small_tmpfs) == ["scores.csv"]
    with open(output, newline="") as f:
        assert len(list(csv.DictReader(f))) == 3


def test_predict_on_a_read_only_file_system(readonly_tmpfs, images, model_path):
    folder = readonly_tmpfs({"scores.csv": EARLIER})
    output = folder / "scores.csv"
    status, lines = tfiqa("predict", "--model", model_path, "--output", output, images)
    assert_one_line_error(status, lines, f"{output}.lock", "Read-only file system")
    assert listing(folder) == ["scores.csv"]
    assert output.read_bytes() == EARLIER
    # A new folder on it cannot be made either.
    status, lines = tfiqa(
        "predict", "--model", model_path, "--output", folder / "new/s.csv", images
    )
    assert_one_line_error(status, lines, str(folder / "new"), "Read-only file system")


@pytest.fixture
def dataset(tmp_path):
    """A `csv` dataset of 4 images and a predictions CSV for it."""
    root = tmp_path / "data"
    root.mkdir()
    rows = []
    for i in range(4):
        Image.new("RGB", (4, 4)).save(root / f"{i}.png")
        rows.append(f"{i}.png,{i / 4}")
    (root / "mos.csv").write_text("image,mos\n" + "\n".join(rows) + "\n")
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("image,score\n" + "\n".join(rows) + "\n")
    return root, predictions


EARLIER_METRICS = b'{"srcc": 0.5}\n'


def evaluate(dataset, output):
    root, predictions = dataset
    return tfiqa(
        "evaluate", "--dataset", "csv", "--data-dir", root,
        "--predictions", predictions, "--output", output,
    )  # fmt: skip


def test_evaluate_on_a_full_disk(small_tmpfs, dataset):
    (small_tmpfs / "metrics.json").write_bytes(EARLIER_METRICS)
    fill(small_tmpfs)
    status, lines = evaluate(dataset, small_tmpfs)
    path = small_tmpfs / "metrics.json"
    assert_one_line_error(status, lines, str(path), "No space left on device")
    assert listing(small_tmpfs) == ["filler", "metrics.json"]
    assert path.read_bytes() == EARLIER_METRICS


def test_evaluate_on_a_read_only_file_system(readonly_tmpfs, dataset):
    folder = readonly_tmpfs({"out/metrics.json": EARLIER_METRICS})
    status, lines = evaluate(dataset, folder / "out")
    path = folder / "out" / "metrics.json"
    assert_one_line_error(status, lines, str(folder / "out"), "Read-only file system")
    assert listing(folder / "out") == ["metrics.json"]
    assert path.read_bytes() == EARLIER_METRICS
    status, lines = evaluate(dataset, folder / "new")
    assert_one_line_error(status, lines, str(folder / "new"), "Read-only file system")
