"""An export scored without its sidecar warns, in one line naming the
missing file and the policy used instead; with its sidecar it is silent."""

import os
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from tests.export.helpers import SIZE, tiny_model, write_images
from tfiqa.errors import MissingSidecarWarning
from tfiqa.inference import load


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from tfiqa.export import export_model

    out = tmp_path_factory.mktemp("exports")
    manifest = export_model(tiny_model(), str(out), quantize=["none"], input_size=SIZE)
    return manifest["saved_model"], manifest["tflite"]["none"]


def without_sidecar(exports, kind, tmp_path):
    """A copy of the SavedModel or `.tflite` export, its sidecar removed;
    returns (model path, the missing sidecar's path)."""
    saved_model, tflite = exports
    if kind == "saved_model":
        copy = tmp_path / "1"
        shutil.copytree(saved_model, copy)
        sidecar = copy / "assets.extra" / "tfiqa.json"
    else:
        copy = tmp_path / os.path.basename(tflite)
        shutil.copy(tflite, copy)
        sidecar = tmp_path / (copy.stem + ".json")
    sidecar.unlink(missing_ok=True)
    return str(copy), str(sidecar)


@pytest.mark.parametrize("kind", ["saved_model", "tflite"])
def test_missing_sidecar_warns_with_the_policy_used(exports, kind, tmp_path):
    path, sidecar = without_sidecar(exports, kind, tmp_path)
    with pytest.warns(MissingSidecarWarning) as caught:
        scorer = load(path)
    (warning,) = [w for w in caught if w.category is MissingSidecarWarning]
    message = str(warning.message)
    assert sidecar in message and f"x {SIZE} px crops" in message
    assert "\n" not in message
    image = np.full((40, 48, 3), 128, np.uint8)
    assert np.isfinite(scorer.score(image))


@pytest.mark.parametrize("kind", [0, 1])
def test_export_with_its_sidecar_is_silent(exports, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingSidecarWarning)
        load(exports[kind])


def test_predict_prints_one_warning_line(exports, tmp_path):
    from tfiqa.cli import cli

    path, sidecar = without_sidecar(exports, "tflite", tmp_path)
    images = write_images(tmp_path / "images", count=2)
    result = CliRunner().invoke(cli, ["predict", "--model", path, str(images)])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("Warn")]
    assert len(warned) == 1 and sidecar in warned[0], result.stderr
