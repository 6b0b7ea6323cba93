"""`tfiqa predict` never loses a run: hostile files, odd names, crashes, locks."""

import csv
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_image
from PIL import Image

from tfiqa.cli import cli
from tfiqa.csv_names import image_path
from tfiqa.data.image_io import load_image
from tfiqa.errors import DataError, ImageError
from tfiqa.inference import load
from tfiqa.inference.prediction_writer import (
    RECORD_PREFIX,
    PredictionWriter,
    model_record,
)

from .hostile import png_header, write_corpus


def read_rows(path):
    """A result CSV's rows, names mapped back to the files (strict UTF-8)."""
    with open(path, newline="", encoding="utf-8") as f:
        if f.readline().startswith(RECORD_PREFIX):  # a .partial file
            rows = list(csv.DictReader(f))
        else:
            f.seek(0)
            rows = list(csv.DictReader(f))
    return [
        {**row, "image": image_path(row["image"]), "error": image_path(row["error"])}
        for row in rows
    ]


def check_rows(rows, expected):
    """One row per input, named errors, scores for the good files."""
    assert len(rows) == len(expected)
    by_image = {row["image"]: row for row in rows}
    assert set(by_image) == set(expected)
    for path, error in expected.items():
        row = by_image[path]
        if error is None:
            assert row["error"] == "", (path, row)
            assert 0.0 <= float(row["score"]) <= 1.0
        else:
            assert row["score"] == "", (path, row)
            assert error in row["error"], (path, row)


def test_header_caps_reject_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(1, 100_000_000))
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb)
    strip = tmp_path / "strip.png"
    Image.fromarray(np.zeros((1, 2000, 3), np.uint8)).save(strip)
    with pytest.raises(ImageError, match="aspect ratio"):
        load_image(strip)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="FIFO"):
        load_image(fifo)  # must not block reading the pipe


def test_hostile_corpus_keras(tmp_path, model_path):
    inputs, expected = write_corpus(tmp_path / "corpus")
    output = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        cli, ["predict", "--model", model_path, "--output", str(output), *inputs]
    )
    assert result.exit_code == 0, result.output
    check_rows(read_rows(output), expected)
    assert not os.path.exists(f"{output}.partial")
    assert not os.path.exists(f"{output}.lock")
    # The undecodable name is escaped: the file is UTF-8 for any reader.
    assert b"latin1-\\xe9\\xff.png" in output.read_bytes()
    output.read_bytes().decode("utf-8")


def test_streaming_scorer_gives_per_image_errors(tmp_path, model_path):
    good = tmp_path / "good.png"
    Image.fromarray(make_image((40, 40))).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    scorer = load(model_path)
    rows = list(scorer.score_files([str(good), str(bad), str(good)], batch_size=2))
    assert [bool(r["error"]) for r in rows] == [False, True, False]
    assert rows[0]["score"] == pytest.approx(scorer.score(str(good))[0], abs=1e-6)
    assert "bad.png" in rows[1]["error"]


def folder_of(tmp_path, count):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(make_image((36, 40), seed=i)).save(folder / f"{i:02d}.png")
    return folder


def test_rows_survive_a_crash_and_the_rerun_resumes(tmp_path, model_path):
    folder = folder_of(tmp_path, 4)
    output = tmp_path / "scores.csv"
    paths = sorted(str(p) for p in folder.iterdir())
    # A run killed after its first batch: the batch's rows are on disk.
    record = model_record(load(model_path))
    with pytest.raises(RuntimeError), PredictionWriter(output, paths, record) as w:
        w.write([{"image": paths[0], "score": 0.123456, "error": ""}])
        raise RuntimeError("killed")
    assert not output.exists()
    partial = f"{output}.partial"
    assert [r["image"] for r in read_rows(partial)] == [paths[0]]
    # A line cut short by the kill is dropped, not read as a row.
    with open(partial, "a") as f:
        f.write(f"{paths[1]},0.5")
    result = CliRunner().invoke(
        cli, ["predict", "--model", model_path, "--output", str(output), str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert "Resuming: 1 rows" in result.stderr
    rows = read_rows(output)
    assert [r["image"] for r in rows] == paths
    assert rows[0]["score"] == "0.123456"  # kept, not scored again
    expected = load(model_path).score(paths[1])[0]
    assert float(rows[1]["score"]) == pytest.approx(expected, abs=1e-6)
    assert not os.path.exists(partial)


def test_a_second_writer_of_one_output_is_refused(tmp_path, model_path):
    folder = folder_of(tmp_path, 1)
    output = tmp_path / "scores.csv"
    lock = f"{output}.lock"
    with open(lock, "w") as f:
        f.write(str(os.getpid()))  # a live process holds it
    args = ["predict", "--model", model_path, "--output", str(output), str(folder)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Another process is writing" in result.output
    assert not output.exists()
    # A lock left by a process that is gone is taken over.
    pid_code = "import os; print(os.getpid())"
    dead = subprocess.run(
        [sys.executable, "-c", pid_code], capture_output=True, text=True, check=True
    ).stdout
    with open(lock, "w") as f:
        f.write(dead.strip())
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(read_rows(output)) == 1 and not os.path.exists(lock)


def test_names_with_line_breaks_and_bad_bytes_to_stdout(tmp_path, model_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    names = ["a\rb.png", "c\nd.png", os.fsdecode(b"e\xff.png")]
    for name in names:
        Image.fromarray(make_image((36, 36))).save(os.fsencode(folder / name))
    result = CliRunner().invoke(cli, ["predict", "--model", model_path, str(folder)])
    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    names_back = sorted(image_path(r["image"]) for r in rows)
    assert names_back == sorted(str(folder / n) for n in names)


def export_all(model, folder):
    from tfiqa.export import export_model

    manifest = export_model(
        model, str(folder), formats=["saved_model", "tflite"], quantize=["none"]
    )
    return {
        "keras": None,
        "saved_model": manifest["saved_model"],
        "tflite": manifest["tflite"]["none"],
    }


@pytest.mark.slow
def test_hostile_corpus_every_backend(tmp_path, tiny_model, model_path):
    """The CLI in a child process per backend: exit 0, every row, bounded RSS."""
    inputs, expected = write_corpus(tmp_path / "corpus")
    models = export_all(tiny_model, tmp_path / "export")
    models["keras"] = model_path
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    scores = {}
    for backend, path in models.items():
        output = tmp_path / f"{backend}.csv"
        # VmHWM, not ru_maxrss: after exec, ru_maxrss still holds the peak of
        # the forking parent (this pytest process), which grows with the suite.
        code = (
            "import sys; from tfiqa.cli import main; sys.argv = sys.argv[1:];"
            "\ntry:\n    main()\nfinally:\n"
            "    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]"
            "\n    print('MAXRSS', peak[0].split()[1], file=sys.stderr)"
        )
        args = [sys.executable, "-c", code, "tfiqa", "predict", "--model", path]
        args += ["--output", str(output), *inputs]
        result = subprocess.run(args, capture_output=True, env=env, timeout=600)
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 0, stderr[-2000:]
        assert "Traceback" not in stderr
        rss_mb = int(stderr.rsplit("MAXRSS", 1)[1].split()[0]) / 1024
        assert rss_mb < 2000, f"{backend}: {rss_mb:.0f} MB"
        rows = read_rows(output)
        check_rows(rows, expected)
        scores[backend] = {r["image"]: r["score"] for r in rows if r["score"]}
    # One model, one score, whatever the format.
    for backend in ("saved_model", "tflite"):
        assert scores[backend].keys() == scores["keras"].keys()
        for image, score in scores["keras"].items():
            # 1e-5 between formats, plus the CSV's 6-decimal rounding.
            got = float(scores[backend][image])
            assert got == pytest.approx(float(score), abs=1.1e-5)


def device_node(path, minor):
    """A private character device like /dev/null (1, 3) or /dev/full (1, 7):
    a test must never risk replacing the real ones."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("creating a device node needs root; not run")
    return str(path)


@pytest.mark.parametrize("target", ["null", "full", "fifo", "link"])
def test_output_onto_a_non_regular_file_is_refused(tmp_path, model_path, target):
    folder = folder_of(tmp_path, 1)
    kind = "FIFO" if target == "fifo" else "character device"
    if target == "fifo":
        target = str(tmp_path / "pipe.csv")
        os.mkfifo(target)
    elif target == "link":
        null = device_node(tmp_path / "null", 3)
        target = str(tmp_path / "null.csv")
        os.symlink(null, target)
    else:
        target = device_node(tmp_path / target, {"null": 3, "full": 7}[target])
    args = ["predict", "--model", model_path, "--output", target, str(folder)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert f"--output {target} is a {kind}" in line
    # Nothing replaced: the device (or the link to it) is still there.
    assert not os.path.isfile(target)
    assert not os.path.exists(f"{target}.lock")
    assert not os.path.exists(f"{target}.partial")
    with pytest.raises(DataError, match=f"Output {target} is a {kind}"):
        PredictionWriter(target).__enter__()


def write_partial(output, model, rows):
    """A `.partial` file as a killed run of `model` leaves it."""
    if os.path.exists(f"{output}.partial"):
        os.remove(f"{output}.partial")
    with pytest.raises(RuntimeError), PredictionWriter(output, None, model) as w:
        w.write(rows)
        raise RuntimeError("killed")


def test_a_partial_of_another_model_or_scoring_is_refused(
    tmp_path, tiny_model, model_path
):
    folder = folder_of(tmp_path, 2)
    paths = sorted(str(p) for p in folder.iterdir())
    output = tmp_path / "scores.csv"
    partial = f"{output}.partial"
    other = tmp_path / "other.keras"
    tiny_model.save(other)  # the same weights, another file: another model
    with open(other, "ab") as f:
        f.write(b"\0")
    row = {"image": paths[0], "score": 0.5, "error": ""}
    args = ["predict", "--model", model_path, "--output", str(output), str(folder)]
    cases = [
        (model_record(load(str(other))), args, "another model"),
        (model_record(load(model_path), crops=2), args, "another model"),
        (model_record(load(model_path)), [*args, "--full"], "another model"),
        (None, args, "does not record which model"),
    ]
    for record, argv, message in cases:
        write_partial(output, record, [row])
        before = Path(partial).read_bytes()
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert message in line and partial in line, line
        assert "remove it to start over, or choose another --output" in line
        assert Path(partial).read_bytes() == before  # kept as it was
        assert not output.exists() and not os.path.exists(f"{output}.lock")
    # A partial without the first-line record (an older tfiqa's) is refused too.
    with open(partial, "w") as f:
        f.write(f"image,score,error\n{paths[0]},0.500000,\n")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "does not record which model" in result.stderr
    # The same model and scoring resume it.
    write_partial(output, model_record(load(model_path)), [row])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert [r["score"] for r in read_rows(output)][0] == "0.500000"


def test_undecodable_and_backslash_names_round_trip(tmp_path, model_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    names = [b"caf\xe9.png", b"back\\x41slash.png", b"\\\\.png", b"\xff\\xff.png"]
    for name in names:
        Image.fromarray(make_image((36, 36))).save(os.fsencode(folder) + b"/" + name)
    output = tmp_path / "scores.csv"
    args = ["predict", "--model", model_path, "--output", str(output), str(folder)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    data = output.read_bytes()
    data.decode("utf-8")  # strict: the whole file is UTF-8
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    on_disk = sorted(os.fsencode(folder) + b"/" + n for n in names)
    assert sorted(os.fsencode(image_path(r["image"])) for r in rows) == on_disk
    # Every row maps back to a file that exists.
    assert all(os.path.isfile(image_path(r["image"])) for r in rows)


def test_an_unreadable_partial_is_a_one_line_error(tmp_path, monkeypatch):
    output = tmp_path / "scores.csv"
    partial = f"{output}.partial"
    Path(partial).write_text("image,score,error\n")
    real_open = open

    def open_refusing_the_partial(path, *args, **kwargs):
        if os.fspath(path) == partial:
            raise PermissionError(13, "Permission denied", partial)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_refusing_the_partial)
    with pytest.raises(DataError, match=f"^Cannot read {partial}: Permission denied$"):
        PredictionWriter(output, None, {"model": "m", "scoring": "full"}).__enter__()
    assert sorted(os.listdir(tmp_path)) == ["scores.csv.partial"]  # no lock left
