"""`tfiqa evaluate`: predictions CSV -> matched records -> metrics and plot."""

import csv
import json
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfiqa.cli import cli
from tfiqa.errors import DataError
from tfiqa.evaluation import (
    Predictions,
    evaluate_dataset,
    match_predictions,
    read_predictions,
    write_outputs,
)
from tfiqa.metrics import srcc
from tfiqa.scoring_policy import ScoringPolicy

N_IMAGES = 8


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def dataset(tmp_path):
    """A tiny `csv` dataset: images/ with awkward names and mos.csv."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    mos = np.linspace(0.1, 0.9, N_IMAGES)
    names = [f"images/img ({i}).png" for i in range(N_IMAGES)]
    for name in names:
        # Only existence is checked when reading records; keep them tiny.
        Image.new("RGB", (4, 4)).save(root / name)
    write_csv(root / "mos.csv", ["image", "mos"], zip(names, mos, strict=True))
    return root, names, mos


def records_for(root, names, mos):
    return [
        {"image_path": str(root / n), "mos": float(m), "ref_id": n}
        for n, m in zip(names, mos, strict=True)
    ]


def test_read_predictions_with_failed_rows(tmp_path):
    path = write_csv(
        tmp_path / "p.csv",
        ["image", "score", "error"],
        [
            ["a.png", "0.5", ""],
            ["b, c.png", "", "cannot decode"],
            ["d.png", "1e-3", ""],
        ],
    )
    table = read_predictions(path)
    assert table.scores == {"a.png": 0.5, "d.png": 0.001}
    assert table.failed == {"b, c.png": "cannot decode"}


@pytest.mark.parametrize(
    "header, rows, message",
    [
        (["image", "mos"], [["a.png", "0.5"]], "no 'score' column"),
        (["image", "score"], [["a.png", "good"]], "line 2.*score='good'"),
        (["image", "score"], [["a.png", "nan"]], "finite"),
        (["image", "score"], [["a.png", "1"], ["a.png", "2"]], "line 3.*twice"),
    ],
)
def test_read_predictions_rejects_bad_files(tmp_path, header, rows, message):
    path = write_csv(tmp_path / "p.csv", header, rows)
    with pytest.raises(DataError, match=message):
        read_predictions(path)


def test_read_predictions_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found.*nope.csv"):
        read_predictions(str(tmp_path / "nope.csv"))


def test_match_accepts_absolute_relative_and_bare_names(dataset):
    root, names, mos = dataset
    records = records_for(root, names, mos)
    scores = {
        str(root / names[0]): 0.0,  # absolute
        names[1]: 1.0,  # relative to the dataset folder
        os.path.basename(names[2]): 2.0,  # bare file name
        "images/../images/img (3).png": 3.0,  # unnormalised relative path
        "elsewhere.png": 9.0,
    }
    match = match_predictions(Predictions(scores, {names[4]: "boom"}), records, root)
    assert [(r["image_path"], s) for r, s in match.pairs] == [
        (str(root / names[i]), float(i)) for i in range(4)
    ]
    assert match.unmatched == [("elsewhere.png", "no record with this path")]
    assert [r["image_path"] for r in match.failed] == [str(root / names[4])]
    assert [r["image_path"] for r in match.missing] == [
        str(root / n) for n in names[5:]
    ]


def test_match_refuses_ambiguous_names_and_double_predictions(tmp_path):
    records = [
        {"image_path": str(tmp_path / "a" / "x.png"), "mos": 0.1},
        {"image_path": str(tmp_path / "b" / "x.png"), "mos": 0.2},
    ]
    match = match_predictions(Predictions({"x.png": 1.0}, {}), records, tmp_path)
    assert match.pairs == []
    assert match.unmatched == [("x.png", "file name shared by 2 records")]
    double = Predictions({"a/x.png": 1.0, str(tmp_path / "a" / "x.png"): 2.0}, {})
    with pytest.raises(DataError, match="same image"):
        match_predictions(double, records, tmp_path)
    # The dataset's own duplicates are refused the same way.
    twice = records + [{"image_path": str(tmp_path / "a" / "x.png"), "mos": 0.9}]
    with pytest.raises(DataError, match="lists an image twice"):
        match_predictions(Predictions({"a/x.png": 1.0}, {}), twice, tmp_path)


def test_evaluate_dataset_metrics_and_counts(dataset, tmp_path):
    root, names, mos = dataset
    rng = np.random.default_rng(0)
    scores = mos * 3 + rng.normal(0, 0.2, N_IMAGES)
    rows = [[n, f"{s:.6f}", ""] for n, s in zip(names, scores, strict=True)]
    rows[0] = [names[0], "", "truncated file"]
    rows.append(["not/in/dataset.png", "0.3", ""])
    path = write_csv(tmp_path / "p.csv", ["image", "score", "error"], rows)

    result = evaluate_dataset("csv", str(root), predictions=path)
    m = result.metrics
    assert m["n"] == N_IMAGES - 1
    assert m["srcc"] == pytest.approx(srcc(scores[1:], mos[1:]))
    assert (m["n_predictions"], m["n_failed"], m["n_unmatched"], m["n_missing"]) == (
        N_IMAGES + 1,
        1,
        1,
        0,
    )
    assert m["fit"] == "logistic4" and len(m["logistic_params"]) == 4
    notes = " ".join(result.notes)
    assert "1 image(s) whose prediction failed" in notes
    assert "not/in/dataset.png" in notes

    paths = write_outputs(result, str(tmp_path / "out"))
    with open(paths["metrics"]) as f:
        assert json.load(f) == m
    with Image.open(paths["scatter"]) as png:
        assert png.format == "PNG" and png.width >= 600


def test_evaluate_dataset_with_no_match_is_an_error(dataset, tmp_path):
    root, _, _ = dataset
    path = write_csv(tmp_path / "p.csv", ["image", "score"], [["zzz.png", "1"]])
    with pytest.raises(DataError, match="No prediction.*zzz.png"):
        evaluate_dataset("csv", str(root), predictions=path)


def run_cli(*args):
    return CliRunner().invoke(cli, ["evaluate", *args])


def evaluate_csv(root, out, *source):
    """`tfiqa evaluate` of `source` on the csv dataset in `root`, writing to
    `out`; asserts it succeeded and returns (result, printed metrics)."""
    result = run_cli(
        *source, "--dataset", "csv", "--data-dir", str(root), "--output", str(out)
    )
    assert result.exit_code == 0, result.output
    return result, json.loads(result.stdout)


def test_cli_prints_json_and_writes_outputs(dataset, tmp_path):
    root, names, mos = dataset
    rows = [[str(root / n), f"{m**2:.6f}"] for n, m in zip(names, mos, strict=True)]
    rows.pop()  # one dataset image without a prediction
    path = write_csv(tmp_path / "p.csv", ["image", "score"], rows)
    out = tmp_path / "out"
    result, printed = evaluate_csv(root, out, "--predictions", path)
    assert printed["n"] == N_IMAGES - 1 and printed["n_missing"] == 1
    assert printed["srcc"] == pytest.approx(1.0)
    assert "1 of 8 dataset image(s) have no prediction" in result.stderr
    assert json.loads((out / "metrics.json").read_text()) == printed
    assert (out / "scatter.png").stat().st_size > 1000


def test_cli_constant_predictions_give_null_metrics(dataset, tmp_path):
    root, names, _ = dataset
    path = write_csv(
        tmp_path / "p.csv", ["image", "score"], [[n, "0.5"] for n in names]
    )
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="constant"):
        _, printed = evaluate_csv(root, out, "--predictions", path)
    assert printed["srcc"] is None and printed["plcc"] is None
    assert printed["fit"] == "failed"
    assert (out / "scatter.png").exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_csv", "Predictions CSV not found"),
        ("no_score_column", "no 'score' column"),
        ("unknown_kind", "Unknown dataset reader 'livee'. Did you mean 'live'?"),
        ("no_source", "exactly one of --predictions"),
        ("split_without_workdir", "needs --workdir"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(dataset, tmp_path, case, message):
    root, names, _ = dataset
    good = write_csv(tmp_path / "good.csv", ["image", "score"], [[names[0], "1"]])
    args = {
        "missing_csv": ["--predictions", str(tmp_path / "nope.csv")],
        "no_score_column": [
            "--predictions",
            write_csv(tmp_path / "bad.csv", ["image", "mos"], [[names[0], "1"]]),
        ],
        "unknown_kind": ["--predictions", good, "--dataset", "livee"],
        "no_source": [],
        "split_without_workdir": ["--predictions", good, "--split", "test"],
    }[case]
    if "--dataset" not in args:
        args += ["--dataset", "csv"]
    result = run_cli(*args, "--data-dir", str(root), "--output", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    # One line of error (after click's usage lines for a bad option value).
    assert len(result.output.split("Error: ")[-1].strip().splitlines()) == 1


def test_cli_evaluates_one_saved_split(dataset, tmp_path):
    from tfiqa.data.readers import read_dataset
    from tfiqa.data.splits import make_splits, save_splits

    root, names, mos = dataset
    records = read_dataset("csv", str(root))
    workdir = tmp_path / "run"
    splits = make_splits(records, n=2, val_ratio=0.25, test_ratio=0.5, seed=1)
    save_splits(str(workdir / "splits" / "splits.json"), splits, {"split_index": 1})
    rows = [[n, f"{m:.6f}"] for n, m in zip(names, mos, strict=True)]
    path = write_csv(tmp_path / "p.csv", ["image", "score"], rows)
    args = ["--predictions", path, "--dataset", "csv", "--data-dir", str(root)]
    args += ["--workdir", str(workdir), "--split", "test", "--output", str(tmp_path)]

    result = run_cli(*args, "--set", "data.split_index=1")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    test_images = splits[1]["test"]
    assert printed["n"] == printed["n_records"] == len(test_images) == 4
    assert printed["n_outside_split"] == N_IMAGES - 4
    assert printed["srcc"] == pytest.approx(1.0)
    assert printed["n_missing"] == printed["n_unmatched"] == 0

    result = run_cli(*args)  # split_index 0 differs from the run's
    assert result.exit_code == 0, result.output
    assert "the run used split 1" in result.stderr

    bad = run_cli(*args[:-4], "--workdir", str(tmp_path / "empty"), "--split", "val")
    assert bad.exit_code == 2 and "No splits file" in bad.output


@pytest.mark.slow
def test_cli_scores_with_a_model_first(tmp_path):
    from conftest import make_image

    from tfiqa.models import IQAModel

    root = tmp_path / "data"
    root.mkdir()
    rows = []
    for i in range(4):
        Image.fromarray(make_image((40, 48), seed=i)).save(root / f"{i}.png")
        rows.append([f"{i}.png", f"{0.2 * i + 0.1:.2f}"])
    # An unreadable image is one failed prediction, not the end of the run.
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rows.append(["bad.png", "0.5"])
    write_csv(root / "mos.csv", ["image", "mos"], rows)
    model = IQAModel(
        backbone="resnet18",
        weights="none",
        head_units=(8,),
        scoring_policy=ScoringPolicy(crop_size=32),
    )
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)

    out = tmp_path / "out"
    _, printed = evaluate_csv(root, out, "--model", model_path)
    assert printed["n"] == 4 and printed["model"] == model_path
    assert printed["n_failed"] == 1
    assert printed["n_missing"] == printed["n_unmatched"] == 0
    with open(out / "predictions.csv") as f:
        written = list(csv.DictReader(f))
    assert [os.path.basename(r["image"]) for r in written] == [
        f"{i}.png" for i in range(4)
    ]
    scores = np.array([float(r["score"]) for r in written])
    assert np.all((scores >= 0) & (scores <= 1))


def test_read_predictions_maps_escaped_names_back_to_files(tmp_path):
    # What `tfiqa predict` writes for b"caf\xe9 \\x41.png": the undecodable
    # byte escaped, the name's own backslash doubled.
    path = write_csv(
        tmp_path / "p.csv", ["image", "score"], [["caf\\xe9 \\\\x41.png", "0.5"]]
    )
    table = read_predictions(path)
    assert [os.fsencode(image) for image in table.scores] == [b"caf\xe9 \\x41.png"]


def test_read_predictions_rejects_a_nul_byte_in_a_name(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,score\nbad\0name.png,0.5\n")
    with pytest.raises(DataError, match="line 2: image name holds a NUL byte"):
        read_predictions(str(path))
    # The escaped form of a NUL byte is refused the same way.
    path.write_text("image,score\nbad\\x00name.png,0.5\n")
    with pytest.raises(DataError, match="line 2: image name holds a NUL byte"):
        read_predictions(str(path))


def test_read_predictions_says_what_a_non_file_is(tmp_path):
    link = tmp_path / "p.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="p.csv is a character device, not a file"):
        read_predictions(str(link))
    with pytest.raises(DataError, match="is a folder, not a file"):
        read_predictions(str(tmp_path))
    dangling = tmp_path / "gone.csv"
    dangling.symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(DataError, match="not found .a broken symbolic link"):
        read_predictions(str(dangling))


def test_all_failed_predictions_are_named_as_such(dataset, tmp_path):
    root, names, _ = dataset
    rows = [[n, "", f"Cannot decode image (boom {i})"] for i, n in enumerate(names)]
    path = write_csv(tmp_path / "p.csv", ["image", "score", "error"], rows)
    with pytest.raises(DataError) as caught:
        evaluate_dataset("csv", str(root), predictions=path)
    message = str(caught.value)
    assert f"All {N_IMAGES} predictions in {path} are errors" in message
    assert f"First: {names[0]!r}: Cannot decode image (boom 0)" in message
    assert "\n" not in message


def test_write_outputs_refuses_a_device_and_keeps_files_on_failure(tmp_path):
    result = evaluate_dataset_result(tmp_path)
    out = tmp_path / "out"
    write_outputs(result, str(out))
    before = (out / "metrics.json").read_text()
    null = tmp_path / "null"
    try:  # a private /dev/null: a test must never risk replacing the real one
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root; not run")
    with pytest.raises(DataError, match=f"--output {null} is a character device"):
        write_outputs(result, str(null))
    (out / "scatter.png").unlink()
    (out / "scatter.png").symlink_to(null)
    with pytest.raises(DataError, match="scatter.png is a character device"):
        write_outputs(result, str(out))
    assert os.path.islink(out / "scatter.png")
    assert (out / "metrics.json").read_text() == before


def test_predictions_csv_escapes_undecodable_names(tmp_path):
    result = evaluate_dataset_result(tmp_path)
    result.images[0] = os.fsdecode(b"/data/caf\xe9.png")
    paths = write_outputs(result, str(tmp_path / "out"), predictions_csv=True)
    with open(paths["predictions"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["image"] == "/data/caf\\xe9.png"


def evaluate_dataset_result(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    names = [f"{i}.png" for i in range(N_IMAGES)]
    for name in names:
        Image.new("RGB", (4, 4)).save(root / name)
    mos = np.linspace(0.1, 0.9, N_IMAGES)
    write_csv(root / "mos.csv", ["image", "mos"], zip(names, mos, strict=True))
    path = write_csv(
        tmp_path / "p.csv",
        ["image", "score"],
        [[n, m] for n, m in zip(names, mos, strict=True)],
    )
    return evaluate_dataset("csv", str(root), predictions=path)
