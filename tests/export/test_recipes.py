"""The export recipes (configs/export/) export a real model, and the serving
example (export/) scores its files as tfiqa itself does."""

import importlib.util
import os

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_image, tiny_resnet
from PIL import Image

from tfiqa.cli import cli
from tfiqa.config import load_config
from tfiqa.scoring_policy import ScoringPolicy

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXPORT_DIR = os.path.join(ROOT, "export")
RECIPES = os.path.join(ROOT, "configs", "export")


def serve_example():
    path = os.path.join(EXPORT_DIR, "serve_example.py")
    spec = importlib.util.spec_from_file_location("serve_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recipe(name):
    return os.path.join(RECIPES, f"{name}.yaml")


def test_recipes_are_valid_configs():
    names = sorted(n[:-5] for n in os.listdir(RECIPES) if n.endswith(".yaml"))
    assert names == ["phone", "phone_int8", "server"]
    server = load_config(recipe("server"), []).export
    assert server.formats == ["saved_model"]
    phone = load_config(recipe("phone"), []).export
    assert phone.formats == ["tflite"] and "int8" not in phone.quantize
    assert load_config(recipe("phone_int8"), []).export.quantize == ["int8", "int8_io"]


def test_crop_offsets_follow_the_policy():
    offsets = serve_example().crop_offsets
    assert offsets(40, 60, 32, 1) == [(4, 14)]
    # Centre and corners; a portrait image spreads them the same way.
    assert offsets(40, 60, 32, 5) == [(4, 14), (0, 0), (0, 28), (8, 0), (8, 28)]
    assert offsets(60, 40, 32, 5) == [(14, 4), (0, 0), (28, 0), (0, 8), (28, 8)]
    assert offsets(32, 96, 32, 3) == [(0, 0), (0, 32), (0, 64)]


@pytest.mark.parametrize("size", [(24, 30), (30, 17), (31, 31), (5, 40)])
def test_upscale_gives_tfiqas_pixels(size):
    from tfiqa.models.scoring import upscale_to_crop

    image = make_image(size, seed=sum(size))
    expected = upscale_to_crop(image, 32).numpy()
    np.testing.assert_array_equal(serve_example().upscaled(image, 32), expected)
    assert min(expected.shape[:2]) == 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model exported with every recipe, and images to score."""
    root = tmp_path_factory.mktemp("recipes")
    images = root / "images"
    images.mkdir()
    # Landscape, portrait, and one smaller than the crop (upscaled).
    for i, size in enumerate([(40, 56), (64, 36), (48, 48), (24, 30)]):
        Image.fromarray(make_image(size, seed=i)).save(images / f"{i}.png")
    model_path = str(root / "model.keras")
    tiny_resnet(scoring_policy=ScoringPolicy(crop_size=32, crops=5)).save(model_path)
    out = root / "out"
    for name in ("server", "phone", "phone_int8"):
        args = ["export", "--model", model_path, "--config", recipe(name)]
        args += ["--output", str(out), "--calibration-dir", str(images)]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    paths = sorted(str(p) for p in images.iterdir())
    return out, paths


@pytest.mark.slow
def test_serve_example_scores_every_export_as_tfiqa_does(exported, capsys):
    import tfiqa

    out, paths = exported
    example = serve_example()
    files = [str(out / "tfiqa" / "1")] + sorted(
        str(out / "tflite" / f) for f in os.listdir(out / "tflite") if ".tflite" in f
    )
    assert len(files) == 1 + 5  # server; phone's three; phone_int8's two
    reference = tfiqa.load(files[0]).score(paths)
    assert np.ptp(reference) > 1e-4  # the images score differently
    for path in files:
        expected = tfiqa.load(path).score(paths)
        np.testing.assert_allclose(example.score(path, paths), expected, atol=2e-6)
    example.main([files[0], *paths])
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in printed] == paths
    np.testing.assert_allclose(
        [float(line.split(",")[1]) for line in printed], reference, atol=1e-6
    )
