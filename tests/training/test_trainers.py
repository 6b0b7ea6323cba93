import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_MODEL_SETTINGS

from tfiqa.errors import ConfigError
from tfiqa.models.scoring import predict
from tfiqa.training.batchnorm import PreciseBatchNorm
from tfiqa.training.finetune_trainer import FinetuneTrainer
from tfiqa.training.ranking_trainer import RankingTrainer


def tiny_image_model(seed=0, batch_norm=False):
    import keras

    keras.utils.set_random_seed(seed)
    images = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(images)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=0.99)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    score = keras.layers.Reshape(())(keras.layers.Dense(1)(x))
    return keras.Model(images, score)


def ranking_batch(groups=2, levels=6, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (groups * levels, size, size, 3)).astype(np.uint8)
    labels = {
        "group": np.repeat(np.arange(groups), levels).astype(np.int32),
        "level": np.tile(np.arange(levels), groups).astype(np.int32),
    }
    return images, labels


def test_ranking_trainer_terms_and_evaluate():
    model = tiny_image_model()
    trainer = RankingTrainer(model, margin=0.1)
    images, labels = ranking_batch()
    terms = trainer.compute_terms((images, labels), training=True)
    hinge, pairs = terms["loss"]
    correct, pairs_again = terms["pair_accuracy"]
    assert float(pairs) == 2 * 15 == float(pairs_again)
    assert 0 <= float(correct) <= 30 and np.isfinite(float(hinge))
    metrics = trainer.evaluate([(images, labels), ranking_batch(seed=1)])
    assert set(metrics) == {"loss", "pair_accuracy", "srcc"}
    assert 0.0 <= metrics["pair_accuracy"] <= 1.0
    assert -1.0 <= metrics["srcc"] <= 1.0


def test_ranking_evaluate_perfect_order_scores_one():
    import keras

    # Score = mean brightness; darker copies play the more distorted ones.
    images_in = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(images_in)
    dense = keras.layers.Dense(1)
    score = keras.layers.Reshape(())(dense(pooled))
    model = keras.Model(images_in, score)
    dense.set_weights([np.full((3, 1), 1 / 3, np.float32), np.zeros(1, np.float32)])
    images = np.stack([np.full((8, 8, 3), 250 - 40 * lv, np.uint8) for lv in range(6)])
    labels = {"group": np.zeros(6, np.int32), "level": np.arange(6, dtype=np.int32)}
    metrics = RankingTrainer(model, margin=1.0).evaluate([(images, labels)])
    assert metrics["pair_accuracy"] == 1.0
    assert metrics["srcc"] == pytest.approx(1.0)
    assert metrics["loss"] == 0.0  # every gap is at least 40 > margin


def test_finetune_trainer_terms_and_selection():
    model = tiny_image_model()
    images = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3)).astype("uint8")
    mos = np.linspace(0, 1, 6).astype(np.float32)
    trainer = FinetuneTrainer(model, loss="mse", rank_weight=0.5, patience=2)
    assert trainer.loss_weights == {"mse": 1.0, "rank": 0.5}
    terms = trainer.compute_terms((images, mos), training=True)
    squared, count = terms["mse"]
    expected = np.sum((predict(model, images) - mos) ** 2)
    np.testing.assert_allclose(float(squared), expected, rtol=1e-4)
    assert float(count) == 6 and float(terms["rank"][1]) == 15

    assert trainer.is_better({"srcc": 0.2})
    trainer.best = {"epoch": 1, "srcc": 0.2}
    assert not trainer.is_better({"srcc": 0.1})
    assert not trainer.is_better({"srcc": float("nan")})
    assert trainer.is_better({"srcc": 0.3})
    assert not trainer.should_stop(1)  # epoch 2: one epoch since the best
    assert trainer.should_stop(2)  # epoch 3: patience 2 reached

    dataset = tf.data.Dataset.from_tensor_slices((images, mos)).batch(4)
    metrics = trainer.evaluate(dataset, fit=False)
    assert set(metrics) == {"srcc", "plcc"}
    crops = tf.data.Dataset.from_tensor_slices((images[:, None], mos))
    predictions, targets = trainer.score_dataset(crops, multi_crop=True)
    np.testing.assert_allclose(predictions, predict(model, images), rtol=1e-5)
    np.testing.assert_allclose(targets, mos)
    with pytest.raises(ConfigError, match="Received: 'huber'"):
        FinetuneTrainer(model, loss="huber")


def test_precise_batchnorm_sets_mean_of_batch_statistics():
    model = tiny_image_model(batch_norm=True)
    bn = [layer for layer in model.layers if "batch_normalization" in layer.name][0]
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 255, (4, 8, 8, 3)).astype(np.uint8) for _ in range(3)]
    assert PreciseBatchNorm(model).recalibrate(batches) == 3
    conv = model.layers[2]
    means = [
        np.mean(conv(model.layers[1](b.astype(np.float32))).numpy(), axis=(0, 1, 2))
        for b in batches
    ]
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, 0), atol=1e-5)
    # Inference now normalises like training did: outputs are close.
    train_out = model(batches[0], training=True).numpy()
    assert np.all(np.isfinite(train_out))


def tiny_iqa_model():
    from tfiqa.config import load_config
    from tfiqa.models import build_model

    config = load_config(None, list(TINY_MODEL_SETTINGS))
    keras.utils.set_random_seed(0)
    return build_model(config.model, crop_size=32)


def test_ranking_on_logits_uses_the_margin_in_logit_units():
    from tfiqa.training.losses import ranking_hinge_terms

    model = tiny_iqa_model()
    images = np.random.default_rng(1).integers(0, 255, (6, 32, 32, 3)).astype("uint8")
    labels = {"group": np.zeros(6, np.int32), "level": np.arange(6, dtype=np.int32)}
    p = np.clip(predict(model, images).astype(np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(p / (1 - p))
    trainer = RankingTrainer(model, margin=0.05, logit_margin=2.0)
    hinge, _ = trainer.compute_terms((images, labels), training=False)["loss"]
    expected, _, _ = ranking_hinge_terms(logits, labels["group"], labels["level"], 2.0)
    np.testing.assert_allclose(float(hinge), float(expected), rtol=1e-3)
    np.testing.assert_allclose(trainer.predict(images), logits, rtol=1e-3, atol=1e-4)
    on_scores, _ = RankingTrainer(model, margin=0.05).compute_terms(
        (images, labels), training=False
    )["loss"]
    assert float(on_scores) != pytest.approx(float(hinge), rel=1e-2)
    with pytest.raises(ConfigError, match="logit_margin"):
        RankingTrainer(tiny_image_model(), logit_margin=1.0)


def test_reinit_score_layer_draws_new_score_weights_only():
    from tfiqa.training.finetune_trainer import reinit_score_layer

    model = tiny_iqa_model()
    model.head.score.bias.assign([3.0])  # a saturated prior
    before = [v.numpy().copy() for v in model.trainable_variables]
    layer = reinit_score_layer(model, seed=1)
    kernel = layer.kernel.numpy()
    assert not np.allclose(kernel, before[-2]) and layer.bias.numpy()[0] == 0.0
    score_ids = {id(layer.kernel), id(layer.bias)}
    for v, b in zip(model.trainable_variables, before, strict=True):
        if id(v) not in score_ids:
            np.testing.assert_array_equal(v.numpy(), b)
    np.testing.assert_array_equal(reinit_score_layer(model, 1).kernel.numpy(), kernel)
