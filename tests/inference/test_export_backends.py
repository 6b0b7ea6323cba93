"""`load` dispatches SavedModel folders and .tflite files to the exporters."""

import numpy as np
import pytest
from conftest import make_image

from tfiqa.inference import load

from .conftest import CROP


@pytest.mark.slow
@pytest.mark.parametrize("input_size", [None, CROP])
def test_saved_model_backend_matches_keras(
    tiny_model, model_path, tmp_path, input_size
):
    from tfiqa.export.saved_model import export_saved_model
    from tfiqa.export.sidecar import model_summary

    # The sidecar carries the training crop size for dynamic-size exports.
    sidecar = {"model": model_summary(tiny_model)}
    export_saved_model(tiny_model, str(tmp_path / "iqa"), 1, input_size, sidecar)
    scorer = load(tmp_path)  # the export folder: finds iqa/1
    assert scorer.backend == "saved_model"
    assert scorer.input_size == input_size
    image = make_image((40, 48), seed=7)
    expected = load(model_path).score(image, crops=5)
    np.testing.assert_allclose(scorer.score(image, crops=5), expected, atol=1e-5)


@pytest.mark.slow
def test_tflite_backend_matches_keras(tiny_model, model_path, tmp_path):
    pytest.importorskip("ai_edge_litert")
    from tfiqa.export.tflite import export_tflite_variants

    path = tmp_path / "model.tflite"
    export_tflite_variants(tiny_model, {"none": str(path)}, CROP)
    scorer = load(path)
    assert scorer.backend == "tflite"
    assert scorer.policy.crop_size == CROP
    images = np.stack([make_image((36, 44), seed=s) for s in range(2)])
    expected = load(model_path).score(images, crops=2)
    np.testing.assert_allclose(scorer.score(images, crops=2), expected, atol=1e-4)


@pytest.mark.slow
def test_every_format_scores_like_keras_under_the_models_policy(tmp_path):
    """.keras, SavedModel, float and int8 TFLite through `tfiqa.load`, with the
    model's own policy (3 crops of 32 px, small images upscaled)."""
    pytest.importorskip("ai_edge_litert")
    from tfiqa.export import export_model
    from tfiqa.export.verify import TOLERANCES
    from tfiqa.models import IQAModel
    from tfiqa.scoring_policy import ScoringPolicy

    model = IQAModel(
        backbone="resnet18", weights="none", levels=("P3", "P5"), head_units=(8,),
        dropout=0.0, scoring_policy=ScoringPolicy(crop_size=CROP, crops=3),
    )  # fmt: skip
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    sizes = [(40, 48), (64, 36), (20, 50), (12, 12), (96, 80), (33, 33)]
    images = [make_image(size, seed=i) for i, size in enumerate(sizes)]
    from PIL import Image

    for i, image in enumerate(images):
        Image.fromarray(image).save(calibration / f"{i}.png")
    manifest = export_model(
        model, str(tmp_path / "out"), quantize=["none", "int8"],
        calibration_dir=str(calibration),
    )  # fmt: skip
    assert manifest["input_size"] == CROP
    assert ScoringPolicy.from_dict(manifest["scoring"]) == model.scoring_policy
    exports = [manifest["saved_model"], *manifest["tflite"].values()]
    for path in [model_path, *exports]:
        assert load(path).policy == model.scoring_policy, path
    expected = load(model_path).score(images)
    saved = load(manifest["saved_model"])
    np.testing.assert_allclose(saved.score(images), expected, atol=1e-5)
    float_scores = load(manifest["tflite"]["none"]).score(images)
    np.testing.assert_allclose(float_scores, expected, atol=1e-5)
    int8_scores = load(manifest["tflite"]["int8"]).score(images)
    assert np.max(np.abs(int8_scores - expected)) <= TOLERANCES["int8"]["max_abs_diff"]
