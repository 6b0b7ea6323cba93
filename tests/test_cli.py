import subprocess
import sys

from click.testing import CliRunner

from tfiqa.cli import cli


def test_help_lists_every_command_without_importing_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from tfiqa.cli import cli;"
        "r = CliRunner().invoke(cli, ['--help']); print(r.output);"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for command in ("train", "predict", "evaluate", "export", "distort"):
        assert command in out
    assert "TF_NOT_LOADED" in out


def test_bad_config_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  colour: red\n")
    result = CliRunner().invoke(
        cli, ["train", "--config", str(path), "--workdir", str(tmp_path / "w")]
    )
    assert result.exit_code == 2
    assert "model.colour" in result.output
    assert "Traceback" not in result.output


def test_bad_override_exits_2(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--set", "data.batch_size=many", "--workdir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "data.batch_size" in result.output
