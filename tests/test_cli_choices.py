"""Closed choices of the commands fail at parse time, with the valid values."""

from click.testing import CliRunner
from conftest import python_stdout

from tfiqa.cli import cli


def test_evaluate_dataset_is_a_registered_reader(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["evaluate", "--dataset", "konik", "--predictions", "p.csv"],
    )
    assert result.exit_code == 2
    assert "Unknown dataset reader 'konik'. Did you mean 'koniq10k'?" in result.output
    shown = CliRunner().invoke(cli, ["evaluate", "--help"]).output
    assert "csv|" in shown and "koniq10k" in shown


def test_counts_must_be_positive(tmp_path):
    result = CliRunner().invoke(
        cli, ["lodo", "--workdir", str(tmp_path), "--repeats", "0"]
    )
    assert result.exit_code == 2
    assert "'--repeats': 0 is not in the range x>=1" in result.output
    assert not (tmp_path / "data").exists()  # refused before any work


def test_group_help_loads_no_reader():
    code = (
        "import sys; from click.testing import CliRunner; from tfiqa.cli import cli;"
        "CliRunner().invoke(cli, ['--help']);"
        "print('tfiqa.data.readers' in sys.modules, 'pandas' in sys.modules)"
    )
    out = python_stdout(code)
    assert out.split() == ["False", "False"]
