"""A damaged model file is one line naming the file and the damage, exit 2."""

import glob
import os
import shutil

import pytest
from click.testing import CliRunner

from tfiqa.cli import cli
from tfiqa.errors import DataError
from tfiqa.export.saved_model import export_saved_model
from tfiqa.inference import load


@pytest.fixture(scope="module")
def saved_model(tiny_model, tmp_path_factory):
    return export_saved_model(
        tiny_model, str(tmp_path_factory.mktemp("sm") / "iqa"), 1, None
    )


def damaged_copy(source, tmp_path, damage):
    target = str(tmp_path / "iqa" / "1")
    shutil.copytree(source, target)
    damage(target)
    return target


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


DAMAGES = {
    "no_variables": lambda d: shutil.rmtree(os.path.join(d, "variables")),
    "truncated_variables": lambda d: truncate(
        glob.glob(os.path.join(d, "variables", "variables.data-*"))[0]
    ),
    "empty_pb": lambda d: open(os.path.join(d, "saved_model.pb"), "wb").close(),
    "truncated_pb": lambda d: truncate(os.path.join(d, "saved_model.pb")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_saved_model(saved_model, tmp_path, damage):
    path = damaged_copy(saved_model, tmp_path, DAMAGES[damage])
    with pytest.raises(DataError, match="Corrupt SavedModel") as info:
        load(path)
    message = str(info.value)
    assert path in message and "\n" not in message


def test_truncated_keras_file(model_path, tmp_path):
    path = tmp_path / "model.keras"
    shutil.copy(model_path, path)
    truncate(path)
    with pytest.raises(DataError, match="Corrupt Keras model") as info:
        load(path)
    assert str(path) in str(info.value) and "not found" not in str(info.value)


def test_cli_reports_a_damaged_model_in_one_line(saved_model, tmp_path):
    path = damaged_copy(saved_model, tmp_path, DAMAGES["no_variables"])
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["predict", "--model", path, str(image)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Corrupt SavedModel" in result.output
