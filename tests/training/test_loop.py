import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfiqa.errors import TrainingError
from tfiqa.training.loop import DistributedLoop, make_optimizer

from . import helpers


def make_loop(tmp_path, model, lr=0.05, verbose=0):
    strategy = tf.distribute.get_strategy()
    optimizer = make_optimizer(lr)
    return DistributedLoop(
        strategy,
        model,
        helpers.mse_terms_fn(model),
        [(optimizer, model.trainable_variables)],
        stage="finetune",
        checkpoint_dir=str(tmp_path / "ckpt"),
        log_dir=str(tmp_path / "logs"),
        verbose=verbose,
    )


def test_loop_trains_checkpoints_and_logs(tmp_path, capsys):
    x, y = helpers.regression_data()
    model = helpers.tiny_regressor()
    before = [w.copy() for w in model.get_weights()]
    loop = make_loop(tmp_path, model, verbose=1)
    result = loop.fit(
        lambda epoch: helpers.regression_dataset(x, y, 16, seed=epoch),
        epochs=3,
        steps_per_epoch=4,
        validate=lambda epoch: {"mse": float(np.mean((model(x) - y) ** 2))},
    )
    history = result["history"]
    assert sorted(history[0]) == [
        "checkpoint",
        "loss",
        "save_time",
        "time",
        "val_mse",
        "val_time",
    ]
    assert all(math.isfinite(h["loss"]) for h in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert any(
        not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True)
    )
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-3")
    assert list((tmp_path / "logs").glob("events.out.tfevents*"))
    out = capsys.readouterr().out
    assert "[finetune] epoch 3/3" in out


def test_loop_resumes_from_checkpoint(tmp_path):
    x, y = helpers.regression_data()
    data = lambda epoch: helpers.regression_dataset(x, y, 16, seed=epoch)  # noqa: E731
    full = helpers.tiny_regressor(seed=1)
    make_loop(tmp_path / "a", full).fit(data, epochs=3, steps_per_epoch=3)

    first = helpers.tiny_regressor(seed=1)
    before = make_loop(tmp_path / "b", first).fit(data, epochs=2, steps_per_epoch=3)
    resumed = helpers.tiny_regressor(seed=7)  # different init: must be restored
    keras.utils.set_random_seed(1)  # the global seed also drives the shuffle
    loop = make_loop(tmp_path / "b", resumed)
    result = loop.fit(data, epochs=3, steps_per_epoch=3)
    assert result["initial_epoch"] == 2
    assert result["resumed_from"].endswith("ckpt-2")
    assert len(result["history"]) == 1
    # The epochs before the resume are kept (for metrics.json).
    earlier = result["earlier_history"]
    assert [h["loss"] for h in earlier] == [h["loss"] for h in before["history"]]
    for a, b in zip(full.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_loop_nan_loss_raises_and_keeps_last_checkpoint(tmp_path):
    x, y = helpers.regression_data()
    model = helpers.tiny_regressor()
    loop = make_loop(tmp_path, model)
    loop.fit(
        lambda e: helpers.regression_dataset(x, y, 16), epochs=1, steps_per_epoch=2
    )
    bad_y = y.copy()
    bad_y[:] = np.nan
    with pytest.raises(TrainingError, match=r"finetune stage.*epoch 2, step 1"):
        loop.fit(
            lambda e: helpers.regression_dataset(x, bad_y, 16),
            epochs=2,
            steps_per_epoch=2,
        )
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-1")


def test_two_optimizers_update_their_own_variables(tmp_path):
    x, y = helpers.regression_data()
    model = helpers.tiny_regressor()
    first, second = model.layers[1], model.layers[2]
    strategy = tf.distribute.get_strategy()
    loop = DistributedLoop(
        strategy,
        model,
        helpers.mse_terms_fn(model),
        [
            (make_optimizer(0.0), first.trainable_variables),
            (make_optimizer(0.05), second.trainable_variables),
        ],
        stage="finetune",
        verbose=0,
    )
    frozen = [w.copy() for w in first.get_weights()]
    head = [w.copy() for w in second.get_weights()]
    loop.fit(lambda e: helpers.regression_dataset(x, y, 16), 1, 3, resume=False)
    for a, b in zip(frozen, first.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(head[0], second.get_weights()[0])


def test_mixed_precision_optimizer_is_loss_scaled():
    import keras

    from tfiqa.errors import ConfigError
    from tfiqa.training.strategy import precision_policy

    optimizer = make_optimizer(1e-3, mixed_precision=True)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    # bfloat16 keeps float32's range: no loss scaling.
    bf16 = make_optimizer(1e-3, mixed_precision="mixed_bfloat16")
    assert isinstance(bf16, keras.optimizers.Adam)
    assert isinstance(make_optimizer(1e-3, weight_decay=1e-4), keras.optimizers.AdamW)
    assert [precision_policy(v) for v in (False, "false", True, "mixed_bfloat16")] == [
        "float32",
        "float32",
        "mixed_float16",
        "mixed_bfloat16",
    ]
    with pytest.raises(ConfigError, match="Received: 'bf16'"):
        precision_policy("bf16")


@pytest.mark.parametrize(
    "setting, dtype", [(True, "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_loop_under_mixed_precision_policies(tmp_path, setting, dtype):
    import keras

    from tfiqa.training.strategy import set_mixed_precision

    previous = keras.mixed_precision.global_policy().name
    try:
        assert set_mixed_precision(setting) == f"mixed_{dtype}"
        x, y = helpers.regression_data()
        model = helpers.tiny_regressor()
        assert model.layers[1].compute_dtype == dtype
        before = model.get_weights()[0].copy()
        optimizer = make_optimizer(0.01, mixed_precision=setting)
        loop = DistributedLoop(
            tf.distribute.get_strategy(),
            model,
            helpers.mse_terms_fn(model),
            [(optimizer, model.trainable_variables)],
            stage="finetune",
            verbose=-1,
        )
        result = loop.fit(
            lambda e: helpers.regression_dataset(x, y, 16), 1, 3, resume=False
        )
        assert math.isfinite(result["history"][0]["loss"])
        assert model.get_weights()[0].dtype == np.float32  # float32 masters
        assert not np.allclose(before, model.get_weights()[0])
    finally:
        keras.mixed_precision.set_global_policy(previous)


class Recorder(keras.callbacks.Callback):
    """Records the hooks the loop calls and the logs they receive."""

    def __init__(self):
        super().__init__()
        self.calls, self.batch_logs, self.epoch_logs = [], [], []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_loop_drives_keras_callbacks(tmp_path):
    x, y = helpers.regression_data()
    model = helpers.tiny_regressor()
    recorder = Recorder()
    result = make_loop(tmp_path, model).fit(
        lambda epoch: helpers.regression_dataset(x, y, 16, seed=epoch),
        epochs=2,
        steps_per_epoch=3,
        callbacks=[recorder],
    )
    assert recorder.calls == [
        "train_begin",
        "epoch_begin 0",
        "epoch_end 0",
        "epoch_begin 1",
        "epoch_end 1",
        "train_end",
    ]
    assert len(recorder.batch_logs) == 6
    # Batch logs are running means; the last of an epoch is the epoch's loss.
    for epoch, logs in enumerate(result["history"]):
        assert recorder.batch_logs[3 * epoch + 2]["loss"] == pytest.approx(logs["loss"])
        assert recorder.epoch_logs[epoch]["loss"] == logs["loss"]


def test_early_stopping_callback_ends_the_stage(tmp_path):
    x, y = helpers.regression_data()
    model = helpers.tiny_regressor()
    # Validation never improves, so EarlyStopping(patience=1) stops after
    # the second epoch.
    result = make_loop(tmp_path, model).fit(
        lambda epoch: helpers.regression_dataset(x, y, 16, seed=epoch),
        epochs=5,
        steps_per_epoch=2,
        validate=lambda epoch: {"mse": 1.0},
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_mse", mode="min", patience=1)
        ],
    )
    assert len(result["history"]) == 2
    assert result["stopped_early"]
