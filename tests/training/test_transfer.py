import json
import os

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from tfiqa.config import load_config
from tfiqa.errors import ConfigError
from tfiqa.models import IQAModel
from tfiqa.scoring_policy import ScoringPolicy
from tfiqa.training import transfer

SMALL = {
    "backbone": "resnet18",
    "weights": "none",
    "levels": ("P3", "P5"),
    "pooling": ("avg", "std"),
    "head_units": (8,),
}


@pytest.fixture(scope="module")
def model():
    return IQAModel(**SMALL, scoring_policy=ScoringPolicy(crop_size=32))


def backbone_layer(model, name):
    return transfer._feature_network(model).get_layer(name)


def test_freeze_until_a_level_freezes_exactly_the_layers_before_it(model):
    everything = len(model.trainable_variables)
    frozen = transfer.freeze_backbone(model, "P3")
    assert frozen > 0
    assert not backbone_layer(model, "stack1_block1_2_conv").trainable  # P3 block
    assert backbone_layer(model, "stack2_block0_1_conv").trainable  # after P3
    trainable = {id(v) for v in model.trainable_variables}
    assert id(backbone_layer(model, "conv1_conv").kernel) not in trainable
    assert id(backbone_layer(model, "stack3_block1_2_conv").kernel) in trainable
    transfer.freeze_backbone(model, "all")
    assert {id(v) for v in model.trainable_variables} == {
        id(v) for v in model.head.trainable_variables
    }
    transfer.freeze_backbone(model, "none")
    assert len(model.trainable_variables) == everything


def test_freeze_rejects_unknown_levels(model):
    with pytest.raises(ConfigError, match="freeze_backbone"):
        transfer.freeze_backbone(model, "P9")


def write_images(folder, count, size=(48, 56)):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img {i}.png"
        Image.fromarray(make_image(size=size, seed=i)).save(path)
        paths.append(str(path))
    return paths


def test_cached_features_score_like_the_model(model, tmp_path):
    from tfiqa.data.crops import eval_crops
    from tfiqa.data.image_io import load_image

    paths = write_images(tmp_path / "images", 3)
    cache = transfer.PooledFeatureCache(model, str(tmp_path / "cache"), 32)
    pooled = cache.features(paths, 5)
    assert pooled.shape[:2] == (3, 5)
    expected = [
        model.predict(eval_crops(load_image(p), 32, 5), verbose=0).mean() for p in paths
    ]
    np.testing.assert_allclose(transfer.head_scores(model, pooled), expected, atol=1e-5)

    # A second cache over the same folder reads the files, never the backbone.
    again = transfer.PooledFeatureCache(model, str(tmp_path / "cache"), 32)
    again._compute = lambda path, views: pytest.fail(f"recomputed {path}")
    np.testing.assert_array_equal(again.features(paths, 5), pooled)


def test_cache_follows_image_content_not_path_or_time(model, tmp_path):
    import shutil

    paths = write_images(tmp_path / "images", 2)
    cache = transfer.PooledFeatureCache(model, str(tmp_path / "cache"), 32)
    pooled = cache.features(paths, 1)
    # A copy elsewhere, with new modification times, reuses the features.
    copies = [str(tmp_path / f"copy{i}.png") for i in range(2)]
    for path, copy in zip(paths, copies, strict=True):
        shutil.copyfile(path, copy)
        os.utime(copy, (1, 1))
    again = transfer.PooledFeatureCache(model, str(tmp_path / "cache"), 32)
    computed = []
    compute = again._compute
    again._compute = lambda path, views: computed.append(path) or compute(path, views)
    np.testing.assert_array_equal(again.features(copies, 1), pooled)
    assert computed == []
    # New pixels under an old name are new features.
    Image.fromarray(make_image(size=(48, 56), seed=99)).save(copies[0])
    changed = again.features(copies, 1)
    assert computed == [copies[0]]
    assert not np.allclose(changed[0], pooled[0])
    np.testing.assert_array_equal(changed[1], pooled[1])


def test_heads_with_other_levels_share_the_cache(model, tmp_path):
    paths = write_images(tmp_path / "images", 2)
    cache = transfer.PooledFeatureCache(model, str(tmp_path / "cache"), 32)
    pooled = cache.features(paths, 1)
    single = IQAModel(**{**SMALL, "levels": ("P5",), "pooling": ("std",)})
    single.backbone.set_weights(model.backbone.get_weights())
    other = transfer.PooledFeatureCache(single, str(tmp_path / "cache"), 32)
    other._compute = lambda path, views: pytest.fail(f"recomputed {path}")
    # P5's std is the last quarter of (P3 avg, P3 std, P5 avg, P5 std).
    np.testing.assert_array_equal(other.features(paths, 1), pooled[..., -512:])


def test_cache_folder_changes_with_the_backbone_weights(model, tmp_path):
    before = transfer.fingerprint(model, 32)
    assert transfer.fingerprint(model, 48) != before
    kernel = backbone_layer(model, "conv1_conv").kernel
    original = kernel.numpy()
    kernel.assign(original + 1.0)
    try:
        assert transfer.fingerprint(model, 32) != before
    finally:
        kernel.assign(original)
    assert transfer.fingerprint(model, 32) == before


def test_precise_head_batchnorm_uses_the_exact_input_statistics(model):
    pooled = np.random.default_rng(0).normal(3.0, 2.0, (64, 2 * (128 + 512)))
    pooled = pooled.astype("float32")
    assert transfer.precise_head_batchnorm(model, pooled) == 1
    dense, bn = model.head.hidden[0], model.head.hidden[1]
    inputs = dense(pooled).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy(), inputs.mean(0), atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), inputs.var(0), rtol=1e-3)


def test_cached_dataset_draws_one_view_per_image_per_epoch():
    pooled = np.arange(4 * 3 * 2, dtype="float32").reshape(4, 3, 2)
    mos = np.float32([0.1, 0.2, 0.3, 0.4])
    x, y = next(iter(transfer.cached_head_dataset(pooled, mos, 4, 0, False)))
    x, y = x.numpy(), y.numpy()
    # Each row is one of its image's views, every image once.
    images = [int(row[0]) // 6 for row in x]
    assert sorted(images) == [0, 1, 2, 3]
    np.testing.assert_allclose(y, mos[images])
    other = next(iter(transfer.cached_head_dataset(pooled, mos, 4, 1, False)))[0]
    assert not np.array_equal(other.numpy(), x)


# -- the finetune stage with transfer options --------------------------------


def csv_dataset(tmp_path, count=16):
    paths = write_images(tmp_path / "mos", count, size=(40, 44))
    rows = ["image,mos"] + [
        f"{os.path.basename(p)},{(i % 7) / 7:.3f}" for i, p in enumerate(paths)
    ]
    (tmp_path / "mos" / "mos.csv").write_text("\n".join(rows) + "\n")
    return str(tmp_path / "mos")


def transfer_config(tmp_path, *overrides):
    folder = csv_dataset(tmp_path)
    base = [
        "model.backbone=resnet18",
        "model.weights=none",
        "model.levels=[P4, P5]",
        "model.pooling=[avg, std]",
        "model.head_units=[8]",
        "data.dataset=csv",
        f"data.dataset_dir={folder}",
        "data.crop_size=32",
        "data.batch_size=4",
        "data.val_ratio=0.25",
        "data.test_ratio=0.25",
        "model.scoring.crops=2",
        "stages.order=[finetune]",
        "runtime.verbose=-1",
        "runtime.precise_bn_batches=1",
        "stages.finetune.optimizer.learning_rate=0.01",
        "stages.finetune.optimizer.head_learning_rate=0.01",
        "stages.finetune.schedule.patience=0",
    ]
    return load_config(None, base + list(overrides))


def backbone_kernels(model):
    network = transfer._feature_network(model)
    return {
        layer.name: layer.kernel.numpy().copy()
        for layer in network.layers
        if hasattr(layer, "kernel")
    }


@pytest.mark.slow
def test_frozen_backbone_with_cached_features_trains_only_the_head(tmp_path):
    import keras

    from tfiqa.training.run import run_experiment

    config = transfer_config(
        tmp_path,
        "stages.finetune.freeze_backbone=all",
        "stages.finetune.cache_views=3",
        "stages.finetune.schedule.epochs=3",
    )
    keras.utils.set_random_seed(0)
    initial = IQAModel(
        **{**SMALL, "levels": ("P4", "P5")}, scoring_policy=ScoringPolicy(crop_size=32)
    )
    initial.save_weights(tmp_path / "init.weights.h5")
    config.runtime.init_from = str(tmp_path / "init.weights.h5")
    metrics = run_experiment(config, str(tmp_path / "run"))
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    before, after = backbone_kernels(initial), backbone_kernels(model)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    head_before = initial.head.score.kernel.numpy()
    assert not np.allclose(head_before, model.head.score.kernel.numpy())
    test = metrics["stages"]["finetune"]["test"]
    assert test["scored_from"] == "feature cache"
    assert metrics["stages"]["finetune"]["phases"] == {"warmup": 3}
    cache_files = list((tmp_path / "run" / "cache" / "features").rglob("*.npz"))
    assert len(cache_files) >= 8  # train views, val and test crops of 16 images


@pytest.mark.slow
def test_warmup_then_unfreeze_keeps_early_blocks_frozen(tmp_path):
    import keras

    from tfiqa.training.run import run_experiment

    config = transfer_config(
        tmp_path,
        "stages.finetune.schedule.warmup_epochs=1",
        "stages.finetune.freeze_backbone=P3",
        "stages.finetune.schedule.epochs=2",
        "stages.finetune.schedule.steps_per_epoch=2",
        "data.val_ratio=0",  # keep the last epoch, not the best one
    )
    keras.utils.set_random_seed(0)
    initial = IQAModel(
        **{**SMALL, "levels": ("P4", "P5")}, scoring_policy=ScoringPolicy(crop_size=32)
    )
    initial.save_weights(tmp_path / "init.weights.h5")
    config.runtime.init_from = str(tmp_path / "init.weights.h5")
    metrics = run_experiment(config, str(tmp_path / "run"))
    result = metrics["stages"]["finetune"]
    assert result["phases"] == {"warmup": 1, "finetune": 1}
    assert len(result["history"]) == 2
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    before, after = backbone_kernels(initial), backbone_kernels(model)
    np.testing.assert_array_equal(before["conv1_conv"], after["conv1_conv"])
    np.testing.assert_array_equal(
        before["stack1_block1_2_conv"], after["stack1_block1_2_conv"]
    )
    assert not np.allclose(
        before["stack3_block1_2_conv"], after["stack3_block1_2_conv"]
    )
    # Resuming a finished run trains nothing more and keeps the result.
    again = run_experiment(config, str(tmp_path / "run"))
    assert again["stages"]["finetune"]["skipped"] == "already done"
    with open(tmp_path / "run" / "metrics.json") as f:
        assert json.load(f)["stages"]["finetune"]


PLAIN = {**SMALL, "levels": ("P4", "P5"), "pooling": ("avg",)}


@pytest.mark.slow
def test_rank_and_meta_stages_train_only_the_unfrozen_blocks(tmp_path):
    import keras

    from tfiqa.training.experiment import run_experiment

    config = load_config(
        None,
        [
            "model.backbone=resnet18",
            "model.weights=none",
            "model.levels=[P4, P5]",
            "model.pooling=[avg]",
            "model.head_units=[8]",
            "data.crop_size=32",
            "data.pristine_count=6",
            "data.pristine_size=48",
            "data.pristine_val_ratio=0.34",
            "stages.rank.types=[jpeg, gaussian_blur]",
            "stages.rank.schedule.epochs=1",
            "stages.rank.schedule.steps_per_epoch=2",
            "stages.rank.schedule.val_steps=1",
            "stages.rank.optimizer.learning_rate=0.001",
            "stages.rank.freeze_backbone=P3",
            "stages.meta.types=[jpeg, gaussian_blur, white_noise]",
            "stages.meta.support_size=4",
            "stages.meta.query_size=3",
            "stages.meta.meta_batch_size=2",
            "stages.meta.schedule.epochs=1",
            "stages.meta.schedule.steps_per_epoch=2",
            "stages.meta.schedule.val_steps=1",
            "stages.meta.label=level",
            "stages.meta.optimizer.learning_rate=0.01",
            "stages.meta.freeze_backbone=P4",
            "stages.order=[rank, meta]",
            "runtime.verbose=-1",
            "runtime.precise_bn_batches=1",
        ],
    )
    keras.utils.set_random_seed(0)
    initial = IQAModel(**PLAIN, scoring_policy=ScoringPolicy(crop_size=32))
    initial.save_weights(tmp_path / "init.weights.h5")
    config.runtime.init_from = str(tmp_path / "init.weights.h5")
    run_experiment(config, str(tmp_path / "run"))
    ranked = IQAModel(**PLAIN, scoring_policy=ScoringPolicy(crop_size=32))
    ranked.load_weights(tmp_path / "run" / "checkpoints" / "rank" / "final.weights.h5")
    final = keras.saving.load_model(tmp_path / "run" / "model.keras")
    start, after_rank, end = map(backbone_kernels, (initial, ranked, final))
    # Ranking: P3 and below frozen, P4 trains; meta: P4 and below frozen.
    np.testing.assert_array_equal(start["conv1_conv"], after_rank["conv1_conv"])
    np.testing.assert_array_equal(
        start["stack1_block1_2_conv"], after_rank["stack1_block1_2_conv"]
    )
    assert not np.allclose(
        start["stack2_block1_2_conv"], after_rank["stack2_block1_2_conv"]
    )
    np.testing.assert_array_equal(
        after_rank["stack2_block1_2_conv"], end["stack2_block1_2_conv"]
    )
    assert not np.allclose(
        after_rank["stack3_block1_2_conv"], end["stack3_block1_2_conv"]
    )
    # The saved model is plain: everything trains again.
    assert all(layer.trainable for layer in transfer._feature_network(final).layers)


def test_stage_freeze_values_are_checked_before_work():
    with pytest.raises(ConfigError, match="stages.meta.freeze_backbone"):
        load_config(None, ["stages.meta.freeze_backbone=P9"]).validate()
    with pytest.raises(ConfigError, match="stages.rank.freeze_backbone"):
        load_config(None, ["stages.rank.freeze_backbone=block3"]).validate()
