"""The `meta` stage end to end on generated pristine images and a tiny model."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfiqa.config import load_config
from tfiqa.errors import ConfigError
from tfiqa.training.stages.meta import run_meta_stage

TYPES = ["gaussian_blur", "white_noise", "jpeg", "darken"]


def tiny_scorer(seed=0, crop=32):
    """uint8 crops -> scores in [0, 1], with BatchNorm."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((crop, crop, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, keras.layers.Reshape(())(x))


def meta_config(*overrides):
    return load_config(
        None,
        [
            "data.crop_size=32",
            "data.pristine_count=6",
            "data.pristine_size=48",
            "data.pristine_val_ratio=0.34",
            f"stages.meta.types={TYPES}",
            "stages.meta.holdout=[darken]",
            "stages.meta.support_size=4",
            "stages.meta.query_size=3",
            "stages.meta.val_query_size=6",
            "stages.meta.meta_batch_size=2",
            "stages.meta.schedule.epochs=2",
            "stages.meta.schedule.steps_per_epoch=2",
            "stages.meta.schedule.val_steps=1",
            "stages.meta.inner_learning_rate=0.05",
            "stages.meta.optimizer.learning_rate=0.01",
            "stages.meta.bn_recalibration_batches=1",
            "stages.order=[meta]",
            "runtime.verbose=0",
            *overrides,
        ],
    )


@pytest.mark.slow
def test_meta_stage_trains_validates_checkpoints_and_resumes(tmp_path):
    config = meta_config("stages.meta.label=level")
    strategy = tf.distribute.get_strategy()
    model = tiny_scorer()
    before = [v.numpy().copy() for v in model.trainable_variables]
    bn = model.layers[3]
    assert isinstance(bn, keras.layers.BatchNormalization)
    result = run_meta_stage(config, model, strategy, str(tmp_path))
    for key in ("loss", "srcc", "loss_0shot", "srcc_0shot", "holdout_srcc"):
        assert key in result, key
    assert np.isfinite(result["loss"]) and result["tasks"] == 2
    assert result["fit"]["epochs_done"] == 2
    assert result["tasks_info"]["types"] == TYPES[:3]
    assert result["tasks_info"]["holdout"] == ["darken"]
    history = result["fit"]["history"]
    assert len(history) == 2 and "val_srcc" in history[-1]
    # The meta-parameters moved and BatchNorm statistics describe them.
    assert any(
        not np.allclose(v.numpy(), b)
        for v, b in zip(model.trainable_variables, before, strict=True)
    )
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "meta"))
    with open(tmp_path / "splits" / "pristine.json") as f:
        assert json.load(f)
    # Resume: a fresh model restores the last epoch and trains one more.
    config = meta_config("stages.meta.label=level", "stages.meta.schedule.epochs=3")
    model2 = tiny_scorer(seed=3)
    again = run_meta_stage(config, model2, strategy, str(tmp_path))
    assert again["fit"]["initial_epoch"] == 2
    assert again["fit"]["epochs_done"] == 3
    assert again["fit"]["resumed_from"]


@pytest.mark.slow
def test_meta_stage_first_order_meta_sgd_head_lr(tmp_path):
    config = meta_config(
        "stages.meta.order=first",
        "stages.meta.learn_inner_lr=true",
        "stages.meta.optimizer.head_learning_rate=0.02",
        "stages.meta.schedule.epochs=1",
        "stages.meta.holdout=[]",
    )
    model = tiny_scorer()
    result = run_meta_stage(config, model, tf.distribute.get_strategy(), str(tmp_path))
    assert result["fit"]["order"] == "first" and result["fit"]["learn_inner_lr"]
    assert "holdout_srcc" not in result


@pytest.mark.slow
def test_meta_stage_from_real_mos_records(tmp_path):
    """Tasks from a dataset with distortion labels (the `distorted` layout)."""
    from tfiqa.data.pristine import generate_pristine
    from tfiqa.training.stages.data import synthesize_mos_set

    pristine = generate_pristine(tmp_path / "pristine", count=4, size=40, seed=0)
    synthesize_mos_set(
        pristine, str(tmp_path / "mos"), ["gaussian_blur", "jpeg"], [1, 3, 5], 0
    )
    config = meta_config(
        "stages.meta.task_source=distorted",
        f"stages.meta.task_dir={tmp_path / 'mos'}",
        "stages.meta.types=[]",
        "stages.meta.holdout=[jpeg]",
        "stages.meta.val_ratio=0.5",
        "stages.meta.schedule.epochs=1",
        "stages.meta.meta_batch_size=1",
    )
    result = run_meta_stage(
        config, tiny_scorer(), tf.distribute.get_strategy(), str(tmp_path / "run")
    )
    assert result["tasks_info"]["source"] == "distorted"
    assert result["tasks_info"]["types"] == ["gaussian_blur"]
    assert np.isfinite(result["loss"])
    assert not os.path.exists(tmp_path / "run" / "splits" / "pristine.json")


def test_meta_stage_config_errors(tmp_path):
    strategy = tf.distribute.get_strategy()
    with pytest.raises(ConfigError, match="stages.meta.holdout"):
        run_meta_stage(
            meta_config("stages.meta.holdout=[not_a_type]"),
            tiny_scorer(),
            strategy,
            tmp_path,
        )
    with pytest.raises(ConfigError, match="task_dir"):
        run_meta_stage(
            meta_config("stages.meta.task_source=tid2013"),
            tiny_scorer(),
            strategy,
            tmp_path,
        )
    with pytest.raises(ConfigError, match="stages.meta.label"):
        run_meta_stage(
            meta_config("stages.meta.label=mos"), tiny_scorer(), strategy, tmp_path
        )


TWO_REPLICA_STAGE = """
import os, sys
sys.path.insert(0, {tests!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from test_meta_stage import meta_config, tiny_scorer
from tfiqa.training.stages.meta import run_meta_stage
from tfiqa.training.strategy import get_strategy

config = meta_config(
    "stages.meta.label=level",
    "stages.meta.schedule.epochs=1",
    "runtime.strategy=mirrored",
)
strategy = get_strategy(config.runtime)
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    model = tiny_scorer()
result = run_meta_stage(config, model, strategy, {workdir!r})
assert result["fit"]["replicas"] == 2 and np.isfinite(result["loss"])
for v in model.non_trainable_variables:
    copies = [c.numpy() for c in v.value.values]
    np.testing.assert_array_equal(copies[0], copies[1])
print("STAGE OK")
"""


@pytest.mark.slow
def test_meta_stage_on_two_replicas(tmp_path):

    script = tmp_path / "stage.py"
    script.write_text(
        TWO_REPLICA_STAGE.format(
            tests=os.path.dirname(os.path.abspath(__file__)),
            workdir=str(tmp_path / "run"),
        )
    )
    from .helpers import run_script  # here: the script imports this module

    proc = run_script(script)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "STAGE OK" in proc.stdout
