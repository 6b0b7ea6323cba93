"""`ScoringPolicy`: one typed policy under the same names in the model, its
`.keras` config, export sidecars, the config file and `Scorer`."""

import json
import os

import keras
import numpy as np
import pytest

from tfiqa import presets
from tfiqa.config import load_config
from tfiqa.errors import ConfigError
from tfiqa.export import export_policy
from tfiqa.export.sidecar import build_sidecar
from tfiqa.inference.backends.keras import load_keras_model, model_scorer
from tfiqa.inference.backends.sidecar import read_sidecar, scorer_settings
from tfiqa.inference.scorer import Scorer
from tfiqa.models import IQAModel, build_model
from tfiqa.models.iqa_model import LEGACY_POLICY_KEYS
from tfiqa.scoring_policy import ScoringPolicy

TINY = {
    "backbone": "mobilenet_v3_small",
    "weights": "none",
    "levels": ("P5",),
    "head_units": (4,),
}
POLICY = ScoringPolicy(crop_size=48, crops=3, small_images="whole", resize=64)
# The same policy as a `.keras` file and a sidecar written before the type.
LEGACY_KERAS_KEYS = {
    "input_crop_size": 48,
    "eval_crops": 3,
    "small_images": "whole",
    "input_resize": 64,
}
LEGACY_SIDECAR = {
    "crop_size": 48,
    "crops": 3,
    "placement": "spread",
    "small_images": "whole",
    "resize": 64,
}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"crop_size": 0}, r"crop_size \(data.crop_size\) must be a positive"),
        ({"crops": 0}, r"crops \(model.scoring.crops\) must be a positive"),
        ({"crops": True}, r"Received: crops=True"),
        ({"resize": -1}, r"resize \(model.scoring.resize\) must be 0 \(off\)"),
        ({"crop_size": 64, "resize": 32}, r"at least its crop_size \(64\)"),
        ({"small_images": "pad"}, r"one of upscale, whole. .*small_images='pad'"),
    ],
)
def test_a_bad_policy_is_a_config_error_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        ScoringPolicy(**settings)


def test_a_bad_sidecar_record_is_a_config_error():
    with pytest.raises(ConfigError, match="Unknown scoring policy keys crop"):
        ScoringPolicy.from_dict({"crop": 32})
    with pytest.raises(ConfigError, match="placement must be 'spread'"):
        ScoringPolicy.from_dict({"crop_size": 32, "placement": "random"})


def test_the_record_round_trips_and_older_records_take_the_defaults():
    assert ScoringPolicy.from_dict(POLICY.to_dict()) == POLICY
    assert json.loads(json.dumps(POLICY.to_dict())) == LEGACY_SIDECAR
    # The first sidecars with a policy had no small-image rule or resize.
    older = ScoringPolicy.from_dict({"crop_size": 32, "crops": 2, "resize": None})
    assert older == ScoringPolicy(crop_size=32, crops=2)
    assert ScoringPolicy(crop_size=np.int64(32)).to_dict()["crop_size"] == 32


def test_a_model_without_a_policy_scores_under_the_defaults():
    assert ScoringPolicy.of(object()) == ScoringPolicy()


def test_model_sidecar_and_scorer_hold_one_policy(tmp_path):
    """What export writes and what `Scorer` reads back for one model."""
    model = IQAModel(**TINY, scoring_policy=POLICY)
    assert ScoringPolicy.of(model) is model.scoring_policy == POLICY
    path = tmp_path / "model.keras"
    model.save(path)
    assert load_keras_model(path).scoring_policy == POLICY
    assert model_scorer(model).policy == POLICY
    sidecar = build_sidecar(
        export_format="tflite",
        file="model.tflite",
        model=model,
        input_spec={"name": "image", "dtype": "uint8", "shape": [-1, 48, 48, 3]},
        output_spec={"name": "score", "dtype": "float32", "shape": [-1]},
        policy=export_policy(model, POLICY.crop_size),
    )
    sidecar_path = tmp_path / "model.json"
    sidecar_path.write_text(json.dumps(sidecar))
    settings = scorer_settings(read_sidecar(sidecar_path), POLICY.crop_size)
    assert settings["policy"] == POLICY
    assert Scorer(lambda batch: batch, **settings).policy == POLICY


def test_a_legacy_keras_config_and_a_legacy_sidecar_load_into_one_policy():
    model = IQAModel.from_config({**TINY, **LEGACY_KERAS_KEYS})
    from_sidecar = scorer_settings({"scoring": LEGACY_SIDECAR}, None)["policy"]
    assert model.scoring_policy == from_sidecar == POLICY
    with pytest.raises(ConfigError, match="not both"):
        IQAModel.from_config({**TINY, "eval_crops": 3, "scoring_policy": {}})


def test_a_fresh_save_writes_only_the_policy_record(tmp_path):
    model = IQAModel(**TINY, scoring_policy=POLICY)
    config = model.get_config()
    assert config["scoring_policy"] == POLICY.to_dict()
    assert not set(LEGACY_POLICY_KEYS) & set(config)
    path = tmp_path / "model.keras"
    model.save(path)
    assert keras.saving.load_model(path).get_config() == config


def test_shipped_presets_agree_across_their_files():
    """The shipped `.keras` file and preset cards (older keys) and the
    shipped TFLite sidecars (older records) give equal policies."""
    folder = presets.preset_folder("mobile-mnv3s")
    model = load_keras_model(os.path.join(folder, "model.keras"))
    sidecar = read_sidecar(os.path.join(folder, "model_none.json"))
    assert model.scoring_policy == ScoringPolicy.from_dict(sidecar["scoring"])
    assert model.scoring_policy == ScoringPolicy()
    card = IQAModel.upgrade_config(presets.preset_card("lite0-biq")["model"])
    int8_folder = presets.preset_folder("lite0-biq-int8")
    sidecar = read_sidecar(os.path.join(int8_folder, "model_int8_io.json"))
    expected = ScoringPolicy(crop_size=512, crops=1, resize=512)
    assert ScoringPolicy.from_dict(card["scoring_policy"]) == expected
    assert ScoringPolicy.from_dict(sidecar["scoring"]) == expected


def test_the_config_section_builds_the_models_policy():
    config = load_config(
        None,
        [
            "data.crop_size=64",
            "model.scoring.crops=3",
            "model.scoring.resize=96",
            "model.backbone=mobilenet_v3_small",
            "model.weights=none",
            "model.levels=[P5]",
            "model.head_units=[4]",
        ],
    )
    policy = config.model.scoring.policy(config.data.crop_size)
    assert policy == ScoringPolicy(crop_size=64, crops=3, resize=96)
    model = build_model(config.model, crop_size=config.data.crop_size)
    assert model.scoring_policy == policy
