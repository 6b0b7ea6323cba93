import click
import pytest
from click.testing import CliRunner
from conftest import python_stdout

from tfiqa.cli import cli


def test_help_lists_every_command_without_importing_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from tfiqa.cli import cli;"
        "r = CliRunner().invoke(cli, ['--help']); print(r.output);"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_NOT_LOADED')"
    )
    out = python_stdout(code)
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


def commands():
    return {name: cli.get_command(None, name) for name in cli.list_commands(None)}


def test_every_option_has_help_text():
    missing = [
        f"{name} {param.opts[0]}"
        for name, command in commands().items()
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert missing == []


def test_export_help_offers_only_export_settings():
    out = CliRunner().invoke(cli, ["export", "--help"]).output
    assert "export.version" in out
    assert "finetune" not in out
    assert "--data-dir" not in out


def test_closed_choices_are_rejected_with_the_valid_values(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "distort",
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
            "--distortion-set",
            "kodak",
        ],
    )
    assert result.exit_code == 2
    assert "'kadid', 'live'" in result.output


@pytest.mark.parametrize(
    "what, expected",
    [
        ("backbones", "mobilenet_v3_small"),
        ("datasets", "koniq10k"),
        ("distortions", "gaussian_blur"),
        ("configs", "quickstart"),
    ],
)
def test_list_prints_the_registered_names(what, expected):
    result = CliRunner().invoke(cli, ["list", what])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        line == expected or expected in line.split(": ", 1)[-1].split(", ")
        for line in lines
    )


def test_list_names_match_the_registries():
    from tfiqa.data.readers import READERS
    from tfiqa.distortions import DISTORTION_SETS
    from tfiqa.models.backbones import BACKBONES

    def listed(what):
        return CliRunner().invoke(cli, ["list", what]).output.splitlines()

    assert listed("backbones") == BACKBONES.names()
    assert listed("datasets") == READERS.names()
    assert listed("distortions") == [
        f"{name}: {', '.join(types)}" for name, types in DISTORTION_SETS.items()
    ]


def test_list_rejects_an_unknown_kind():
    result = CliRunner().invoke(cli, ["list", "losses"])
    assert result.exit_code == 2


def test_public_api_is_discoverable():
    import tfiqa

    assert {"Scorer", "load", "load_config"} <= set(dir(tfiqa))
    for name in tfiqa.__all__:
        assert getattr(tfiqa, name) is not None


@pytest.mark.parametrize(
    "args, formats, quantize",
    [
        ([], ["tflite"], ["none", "dynamic"]),
        (
            ["--format", "all", "--quantize", "fp16"],
            ["saved_model", "tflite"],
            ["fp16"],
        ),
    ],
)
def test_export_takes_formats_and_quantize_from_the_config(
    tmp_path, monkeypatch, args, formats, quantize
):
    import keras

    import tfiqa.export

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.save(tmp_path / "m.keras")
    config = tmp_path / "export.yaml"
    config.write_text("export:\n  formats: [tflite]\n  quantize: [none, dynamic]\n")
    seen = {}

    def record(model, output, **kwargs):
        seen.update(kwargs)
        return {"saved_model": None, "tflite": {}}

    monkeypatch.setattr(tfiqa.export, "export_model", record)
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--config",
            str(config),
            "--model",
            str(tmp_path / "m.keras"),
            "--output",
            str(tmp_path / "out"),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["formats"] == formats and seen["quantize"] == quantize
