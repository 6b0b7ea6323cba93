"""Preset names: files checked against their card, names never paths, and
which one wins when a path has a preset's name."""

import shutil
import warnings

import pytest
from click.testing import CliRunner
from conftest import conv_scorer, make_image, tiny_resnet
from PIL import Image

from tfiqa import presets
from tfiqa.cli import cli
from tfiqa.errors import AmbiguousModelWarning, TfiqaError

SHIPPED = "mobile-mnv3s"


@pytest.fixture
def copied_preset(tmp_path, monkeypatch):
    """A copy of a shipped preset's card and `.keras` file in a preset folder
    that the lookup uses; returns the copied model file."""
    source = presets.PRESETS_DIR
    root = tmp_path / "presets"
    (root / SHIPPED).mkdir(parents=True)
    for name in ("preset.json", "model.keras"):
        shutil.copy(f"{source}/{SHIPPED}/{name}", root / SHIPPED / name)
    monkeypatch.setattr(presets, "PRESETS_DIR", str(root))
    return root / SHIPPED / "model.keras"


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def put_another_model(path):
    """A valid `.keras` file, but not the one the card records."""
    conv_scorer(size=32).save(path)


def test_preset_file_matching_its_card_is_used(copied_preset):
    assert presets.preset_file(SHIPPED) == ("keras", str(copied_preset))


@pytest.mark.parametrize("alter", [flip_a_byte, put_another_model])
def test_altered_preset_file_is_refused_naming_the_file(copied_preset, tmp_path, alter):
    import tfiqa

    alter(copied_preset)
    with pytest.raises(TfiqaError, match="SHA-256") as info:
        tfiqa.load(SHIPPED)
    assert str(copied_preset) in str(info.value) and "\n" not in str(info.value)
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["predict", "--model", SHIPPED, str(image)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "model.keras" in result.output


@pytest.mark.parametrize(
    "name", ["../../X", "/tmp/x", "a/b", "a\\b", ".", "..", "", ".hidden", "a:b"]
)
def test_export_preset_name_that_is_a_path_is_one_line_error(tmp_path, name):
    output = tmp_path / "deep" / "out"
    model = tmp_path / "model.keras"  # never read: the name is checked first
    result = CliRunner().invoke(
        cli,
        ["export", "--model", str(model), "--output", str(output), "--preset", name],
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "preset name" in result.output
    assert "not found" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["mobile-mnv3s", "my_model.v2", "A1"])
def test_plain_preset_names_are_accepted(name):
    assert presets.check_preset_name(name) == name


def test_export_never_writes_a_preset_outside_output(tmp_path):
    model = tmp_path / "model.keras"
    tiny_resnet().save(model)
    output = tmp_path / "deep" / "out"
    args = ["export", "--model", str(model), "--output", str(output)]
    args += ["--format", "tflite", "--quantize", "none", "--preset", "../../X"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "X").exists() and not (tmp_path / "deep").exists()


@pytest.fixture
def shadowing_folder(copied_preset, tmp_path, monkeypatch):
    """A SavedModel folder named like the preset, in the working directory."""
    import tensorflow as tf

    module = tf.Module()
    spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")

    @tf.function(input_signature=[spec])
    def score(images):
        return {"score": tf.zeros([tf.shape(images)[0]])}

    monkeypatch.chdir(tmp_path)
    tf.saved_model.save(module, SHIPPED, signatures={"score_uint8": score})
    return tmp_path / SHIPPED


def test_path_named_like_a_preset_wins_with_a_warning(shadowing_folder):
    import tfiqa

    with pytest.warns(AmbiguousModelWarning, match=f"'preset:{SHIPPED}'") as record:
        scorer = tfiqa.load(SHIPPED)
    # The hand-made SavedModel has no sidecar: that is warned about too.
    ambiguous = [r for r in record if r.category is AmbiguousModelWarning]
    assert scorer.backend == "saved_model" and len(ambiguous) == 1
    assert str(shadowing_folder) in str(ambiguous[0].message)


def test_preset_prefix_always_means_the_preset(shadowing_folder):
    import tfiqa

    with warnings.catch_warnings():
        warnings.simplefilter("error", AmbiguousModelWarning)
        scorer = tfiqa.load(f"preset:{SHIPPED}")
    assert scorer.preset == SHIPPED and scorer.backend == "keras"
    with pytest.raises(TfiqaError, match=f"Did you mean '{SHIPPED}'"):
        tfiqa.load("preset:mobile-mnv3")


def test_cli_says_which_one_it_used_in_one_line(shadowing_folder):
    image = shadowing_folder.parent / "x.png"
    Image.fromarray(make_image((40, 40))).save(image)
    result = CliRunner().invoke(cli, ["predict", "--model", SHIPPED, str(image)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "preset:" in line]
    assert len(lines) == 1 and f"preset:{SHIPPED}" in lines[0]
    assert lines[0].startswith("Warning: ")
