"""The scoring policy's resize step: any resolution scored at the training scale."""

import numpy as np
import pytest
import tensorflow as tf

import tfiqa
from tfiqa.errors import ConfigError
from tfiqa.models import IQAModel
from tfiqa.models.scoring import predict, resize_short_side, tf_policy_score
from tfiqa.scoring_policy import ScoringPolicy

SMALL = dict(backbone="resnet18", levels=("P4", "P5"), head_units=(8,))


def photo(height, width, seed=0):
    rng = np.random.default_rng(seed)
    # A smooth gradient plus texture: resizing changes it measurably.
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 255.0 / width + y * 100.0 / height)[..., None] + rng.normal(
        0, 30, (height, width, 3)
    )
    return np.clip(base, 0, 255).astype(np.uint8)


def test_the_short_side_becomes_the_target_both_ways():
    assert resize_short_side(photo(96, 128), 48).shape == (48, 64, 3)
    assert resize_short_side(photo(128, 96), 48).shape == (64, 48, 3)
    assert resize_short_side(photo(20, 30), 40).shape == (40, 60, 3)
    same = photo(48, 70)
    np.testing.assert_array_equal(resize_short_side(same, 48), same)


def test_shrinking_is_antialiased():
    # A one-pixel checkerboard averages to grey; without antialiasing a
    # 4x bilinear shrink samples the pattern and keeps its extremes.
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    board = np.repeat(board[..., None], 3, axis=-1)
    small = resize_short_side(board, 16).numpy().astype(float)
    assert np.abs(small - 127.5).max() < 10


def test_policy_crops_resize_first_then_crop():
    policy = ScoringPolicy(crop_size=32, crops=1, resize=32)
    image = photo(64, 96)
    expected = resize_short_side(image, 32).numpy()[:, 8:40]  # centre 32 x 32
    np.testing.assert_array_equal(policy.crops_of(image)[0], expected)
    without = ScoringPolicy(crop_size=32, crops=1)
    assert not np.array_equal(without.crops_of(image)[0], expected)


def test_bad_resize_values_are_config_errors():
    with pytest.raises(ConfigError, match=r"resize \(32\) must be 0 or at least"):
        ScoringPolicy(crop_size=64, resize=32)
    with pytest.raises(ConfigError, match=r"resize \(model.scoring.resize\)"):
        ScoringPolicy(crop_size=64, resize=-1)


def test_the_model_carries_the_rule_into_every_entry_point(tmp_path):
    policy = ScoringPolicy(crop_size=32, crops=1, resize=32)
    model = IQAModel(**SMALL, weights="none", scoring_policy=policy)
    path = str(tmp_path / "model.keras")
    model.save(path)
    image = photo(64, 96)
    resized_centre = resize_short_side(image, 32).numpy()[None, :, 8:40]
    expected = float(predict(model, resized_centre)[0])
    scorer = tfiqa.load(path)
    assert scorer.policy == policy
    np.testing.assert_allclose(scorer.score([image])[0], expected, atol=1e-5)
    graph = tf_policy_score(model, tf.constant(image), scorer.policy)
    np.testing.assert_allclose(float(graph), expected, atol=1e-5)


def test_the_feature_cache_sees_what_scoring_sees(tmp_path):
    from PIL import Image

    from tfiqa.training.transfer import PooledFeatureCache, fingerprint

    policy = ScoringPolicy(crop_size=32, crops=1, resize=32)
    model = IQAModel(**SMALL, weights="none", scoring_policy=policy)
    image = photo(64, 96)
    path = str(tmp_path / "photo.png")
    Image.fromarray(image).save(path)
    cached = PooledFeatureCache(model, str(tmp_path / "cache"), 32).features([path], 1)
    crop = resize_short_side(image, 32).numpy()[None, :, 8:40].astype("float32")
    expected = np.asarray(model.head.pool(model.features(crop)))
    np.testing.assert_allclose(cached[:, 0], expected, rtol=1e-5, atol=1e-5)
    plain = IQAModel(
        **SMALL, weights="none", scoring_policy=ScoringPolicy(crop_size=32, crops=1)
    )
    plain.set_weights(model.get_weights())
    assert fingerprint(plain, 32) != fingerprint(model, 32)
