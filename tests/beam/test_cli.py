"""`tfiqa beam-predict` writes the CSV of `tfiqa predict`, in shards."""

import pytest

pytest.importorskip(
    "apache_beam", reason="apache-beam is not installed: pip install '.[beam]'"
)

from click.testing import CliRunner  # noqa: E402
from inference.hostile import write_corpus  # noqa: E402

from tfiqa.cli import cli  # noqa: E402

from .helpers import CSV_TOLERANCE, assert_same_rows, read_csv, read_shards  # noqa: E402


def beam_predict(*args):
    return CliRunner().invoke(cli, ["beam-predict", *args])


@pytest.mark.slow
def test_hostile_folder_gives_predicts_rows_in_two_shards(
    tmp_path, beam_model, direct_runner
):
    inputs, expected_errors = write_corpus(tmp_path / "corpus")
    predict_csv = tmp_path / "predict.csv"
    result = CliRunner().invoke(
        cli, ["predict", "--model", beam_model, "--output", str(predict_csv), *inputs]
    )
    assert result.exit_code == 0, result.output
    prefix = tmp_path / "beam" / "scores"
    args = ["--model", beam_model, "--output", f"{prefix}.csv", "--num-shards", "2"]
    for item in inputs:
        args += ["--input", item]
    result = beam_predict(*args, "--direct_num_workers=1")
    assert result.exit_code == 0, result.output
    shards = sorted(prefix.parent.iterdir())
    assert [p.name for p in shards] == [
        "scores-00000-of-00002.csv",
        "scores-00001-of-00002.csv",
    ]
    rows = read_shards(str(prefix))
    assert_same_rows(rows, read_csv(predict_csv), CSV_TOLERANCE)
    # Every bad file has its error row, every good one a score.
    assert {r["image"] for r in rows} == set(expected_errors)
    for row in rows:
        error = expected_errors[row["image"]]
        if error is None:
            assert row["error"] == "" and 0.0 <= row["score"] <= 1.0, row
        else:
            assert error in row["error"] and row["score"] is None, row
    # Undecodable names are escaped as predict does: every shard is UTF-8.
    data = b"".join(p.read_bytes() for p in shards)
    assert b"latin1-\\xe9\\xff.png" in data
    data.decode("utf-8")
    assert data.count(b"image,score,error\n") == 2
    n_bad = sum(e is not None for e in expected_errors.values())
    assert f"{len(rows) - n_bad} of {len(rows)} images" in result.stderr
    assert f"{n_bad} failed" in result.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--crop", "3"], "Unknown option for tfiqa beam-predict or Beam"),
        (["--runner", "DataflowRunner"], "DataflowRunner workers cannot read"),
        (["--crops", "2", "--full"], "mutually exclusive"),
        (["--crops", "200000"], "200000 is not in the range 1<=x<=100"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, beam_model, extra, message):
    result = beam_predict(
        "--model", beam_model, "--output", str(tmp_path / "s"), "--input", ".", *extra
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_missing_model_and_inputs_are_one_line_errors(tmp_path):
    missing = str(tmp_path / "nope.keras")
    result = beam_predict("--model", missing, "--output", "s", "--input", ".")
    assert result.exit_code == 2
    assert f"Model not found. Received: {missing}" in result.stderr
    result = beam_predict("--model", "mobile-mnv3s", "--output", "s")
    assert result.exit_code == 2
    assert "Nothing to score" in result.stderr
