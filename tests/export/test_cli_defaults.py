"""`tfiqa export` takes its formats and quantizations from the config."""

import json

from click.testing import CliRunner

from tfiqa.cli import cli
from tfiqa.cli.export import export_choices
from tfiqa.config import ExportConfig

from .helpers import tiny_model, write_images

RUN_CONFIG = """\
export:
  name: phone
  formats: [tflite]
  quantize: [none, dynamic, int8]
  input_size: 32
"""


def test_command_line_wins_over_config():
    config = ExportConfig(formats=["tflite"], quantize=["none", "int8"])
    assert export_choices(config, None, None, "cal") == (["tflite"], ["none", "int8"])
    assert export_choices(config, "all", "fp16", None) == (
        ["saved_model", "tflite"],
        ["fp16"],
    )
    assert export_choices(config, "saved_model", None, None) == (
        ["saved_model"],
        ["none"],
    )


def test_config_int8_without_calibration_is_dropped_with_a_warning(capsys):
    config = ExportConfig(formats=["tflite"], quantize=["none", "int8", "int8_io"])
    assert export_choices(config, None, None, None) == (["tflite"], ["none"])
    assert "['int8', 'int8_io']" in capsys.readouterr().err


def export_run(tmp_path, *extra):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_model().save(run_dir / "model.keras")
    (run_dir / "config.yaml").write_text(RUN_CONFIG)
    out = tmp_path / "out"
    args = ["export", "--model", str(run_dir / "model.keras"), "--output", str(out)]
    result = CliRunner().invoke(cli, args + list(extra))
    assert result.exit_code == 0, result.output
    return json.loads((out / "export.json").read_text())


def test_export_uses_the_run_config_export_section(tmp_path):
    images = write_images(tmp_path / "images", count=6)
    manifest = export_run(tmp_path, "--calibration-dir", str(images))
    assert not manifest["saved_model"]
    assert sorted(manifest["tflite"]) == ["dynamic", "int8", "none"]
    assert manifest["tflite"]["none"].endswith("phone_float32.tflite")


def test_explicit_options_override_the_run_config(tmp_path):
    manifest = export_run(tmp_path, "--format", "tflite", "--quantize", "fp16")
    assert sorted(manifest["tflite"]) == ["fp16"]
