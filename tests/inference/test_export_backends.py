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
    assert scorer.crop_size == CROP
    images = np.stack([make_image((36, 44), seed=s) for s in range(2)])
    expected = load(model_path).score(images, crops=2)
    np.testing.assert_allclose(scorer.score(images, crops=2), expected, atol=1e-4)
