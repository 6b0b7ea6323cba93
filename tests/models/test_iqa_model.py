import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfiqa.config import ModelConfig
from tfiqa.errors import ConfigDeprecationWarning, ConfigError
from tfiqa.models import IQAModel, build_backbone, build_model
from tfiqa.models.backbones import resnet18_network
from tfiqa.scoring_policy import ScoringPolicy

SMALL = {"backbone": "resnet18", "weights": "none", "head_units": (8,)}


def images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


@pytest.fixture(scope="module")
def model():
    return IQAModel(levels=("P3", "P5"), pooling=("avg", "std"), **SMALL)


@pytest.mark.parametrize("size", [(64, 64), (96, 80)])
def test_any_input_size_gives_one_score_per_image(model, size):
    scores = np.asarray(model(images((2, *size, 3))))
    assert scores.shape == (2,)
    assert scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))


def test_uint8_and_float_inputs_agree(model):
    x = images((2, 48, 40, 3), seed=1)
    np.testing.assert_allclose(
        np.asarray(model(x)), np.asarray(model(x.astype("float32"))), rtol=1e-6
    )


def test_output_is_named_score(model):
    assert model.output_names == ["score"]


def test_variables_split_between_backbone_and_head(model):
    backbone = {id(v) for v in model.backbone_variables}
    head = {id(v) for v in model.head_variables}
    assert backbone and head and not backbone & head
    assert backbone | head == {id(v) for v in model.trainable_variables}


def test_features_returns_the_backbone_levels(model):
    features = model.features(images((1, 64, 64, 3)))
    assert tuple(features["P5"].shape) == (1, 2, 2, 512)


def test_keras_round_trip_same_class_config_and_outputs(tmp_path):
    model = IQAModel(
        levels=("P2", "P4"),
        pooling=("avg", "max"),
        head_units=(8, 4),
        head_activation="prelu",
        output_activation="linear",
        scoring_policy=ScoringPolicy(crop_size=48, crops=3, small_images="whole"),
        backbone="mobilenet_v3_small",
        weights="none",
    )
    x = images((2, 64, 72, 3), seed=2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is IQAModel
    assert loaded.get_config() == model.get_config()
    assert loaded.scoring_policy == model.scoring_policy
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_loading_never_reads_the_original_weights_file(tmp_path):
    weights = tmp_path / "backbone.weights.h5"
    resnet18_network().save_weights(weights)
    model = IQAModel(**{**SMALL, "weights": str(weights)})
    path = tmp_path / "model.keras"
    model.save(path)
    os.remove(weights)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["weights"] == str(weights)


def test_the_older_constructor_arguments_still_build_with_a_warning():
    with pytest.warns(ConfigDeprecationWarning, match="eval_crops.*crops="):
        model = IQAModel(**SMALL, input_crop_size=32, eval_crops=2)
    assert model.scoring_policy == ScoringPolicy(crop_size=32, crops=2)
    with (
        pytest.raises(ConfigError, match="not both"),
        pytest.warns(ConfigDeprecationWarning),
    ):
        IQAModel(**SMALL, eval_crops=2, scoring_policy=ScoringPolicy(crops=3))


def test_a_bad_policy_record_is_a_config_error():
    with pytest.raises(ConfigError, match="crop_size"):
        IQAModel(scoring_policy={"crop_size": 0}, **SMALL)
    with pytest.raises(ConfigError, match="small_images"):
        IQAModel.from_config({**SMALL, "small_images": "pad"})


@pytest.mark.parametrize("order", ["tfiqa_first", "keras_first"])
def test_keras_load_model_works_after_import_tfiqa(tmp_path, order):
    path = tmp_path / "model.keras"
    IQAModel(**SMALL).save(path)
    imports = "import tfiqa, keras" if order == "tfiqa_first" else "import keras, tfiqa"
    code = (
        f"{imports}; m = keras.saving.load_model({str(path)!r}); "
        "print(type(m).__name__, m.scoring_policy.crops)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["IQAModel", "5"]


def test_build_model_from_config():
    config = ModelConfig(
        backbone="mobilenet_v3_small",
        weights="none",
        levels=["P5"],
        pooling=["avg"],
        head_units=[8],
        dropout=0.1,
        head_activation="prelu",
        batch_norm=False,
    )
    model = build_model(config, crop_size=64)
    assert isinstance(model, IQAModel)
    assert model.levels == ("P5",)
    assert model.scoring_policy == ScoringPolicy(crop_size=64)
    assert model.head.dropout == pytest.approx(0.1)
    assert (model.head_activation, model.batch_norm) == ("prelu", False)


def test_mixed_precision_still_outputs_float32_scores():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = IQAModel(**SMALL)
        scores = model(images((2, 32, 32, 3)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert scores.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(scores)))


def test_backbone_object_is_used_as_is_and_saved_with_the_model(tmp_path):
    backbone = build_backbone("mobilenet_v3_small", weights="none")
    model = IQAModel(backbone=backbone, levels=("P3", "P5"), head_units=(8,))
    assert model.backbone is backbone
    assert model.backbone_name == "mobilenet_v3_small_backbone"
    x = images((2, 64, 72, 3), seed=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is IQAModel
    assert loaded.backbone.name == "mobilenet_v3_small_backbone"
    # The file stores JSON: tuples in the backbone's config come back as lists.
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
