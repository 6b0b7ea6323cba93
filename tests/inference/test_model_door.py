"""One door for every model reference: presets by name or folder, .keras,
SavedModel, .tflite; TFLite scoring never imports TensorFlow."""

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_image
from PIL import Image

import tfiqa
from tfiqa.cli import cli
from tfiqa.inference.loaders import resolve_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def exported_preset(tiny_model, model_path, tmp_path_factory):
    """What `tfiqa export --preset tiny` writes: OUTPUT/presets/tiny."""
    output = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(
        cli,
        [
            "export", "--model", model_path, "--output", str(output),
            "--format", "tflite", "--quantize", "none", "--preset", "tiny",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return output / "presets" / "tiny"


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(make_image((70, 90), seed=5)).save(path)
    return str(path)


def test_each_kind_of_reference_resolves_by_the_rule(exported_preset, model_path):
    folder = resolve_model(exported_preset)
    assert folder.kind == "keras" and folder.preset == str(exported_preset)
    assert not folder.shipped and folder.path.startswith(str(exported_preset))
    assert resolve_model(model_path).kind == "keras"
    assert resolve_model(model_path).needs_tensorflow
    shipped = resolve_model("mobile-mnv3s:tflite")
    assert (shipped.kind, shipped.preset, shipped.shipped) == (
        "tflite",
        "mobile-mnv3s",
        True,
    )
    assert not shipped.needs_tensorflow
    assert resolve_model("preset:mobile-mnv3s").kind == "keras"


def test_a_preset_folder_loads_from_anywhere_and_scores_like_its_model(
    exported_preset, tiny_model, photo
):
    scorer = tfiqa.load(str(exported_preset))
    assert scorer.preset == str(exported_preset)
    direct = tfiqa.load(exported_preset / "model.keras")
    np.testing.assert_allclose(scorer.score([photo]), direct.score([photo]), atol=1e-6)
    tflite = tfiqa.load(str(exported_preset / "model_none.tflite"))
    np.testing.assert_allclose(tflite.score([photo]), direct.score([photo]), atol=1e-5)


def test_an_altered_preset_folder_is_refused(exported_preset, tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(exported_preset, copy)
    with open(copy / "model.keras", "ab") as f:
        f.write(b"\0")
    with pytest.raises(tfiqa.errors.TfiqaError, match="SHA-256"):
        tfiqa.load(str(copy))


def _predict_without_tensorflow(model, photo, output):
    """`tfiqa predict` in a fresh interpreter that cannot import TensorFlow."""
    code = (
        "import sys\n"
        "class NoTF:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ImportError('TensorFlow imported for ' + name)\n"
        "sys.meta_path.insert(0, NoTF())\n"
        "from tfiqa.cli import main\n"
        "sys.argv = ['tfiqa', 'predict', '--model', sys.argv[1], '--output', "
        "sys.argv[3], sys.argv[2]]\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-c", code, model, photo, str(output)],
        capture_output=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("which", ["export", "shipped"])
def test_tflite_scores_with_tensorflow_absent(which, exported_preset, photo, tmp_path):
    model = (
        str(exported_preset / "model_none.tflite")
        if which == "export"
        else "mobile-mnv3s:tflite"
    )
    result = _predict_without_tensorflow(model, photo, tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    rows = (tmp_path / "out.csv").read_text().splitlines()
    image, score, error = rows[1].split(",")
    assert image == photo and not error
    expected = tfiqa.load(model).score([photo])[0]
    assert float(score) == pytest.approx(float(expected), abs=2e-6)


def test_a_keras_model_would_need_tensorflow(model_path, photo, tmp_path):
    # The guard above is real: the same run with a .keras model fails on it.
    result = _predict_without_tensorflow(model_path, photo, tmp_path / "out.csv")
    assert result.returncode != 0
    assert b"TensorFlow imported for" in result.stderr
