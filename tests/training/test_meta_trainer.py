"""MetaTrainer and MetaLoop: updates, validation, checkpoints, replicas."""

import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import conv_scorer

from tfiqa.errors import ConfigError
from tfiqa.training.meta_trainer import (
    MetaLoop,
    MetaTrainer,
    apply_gradient_groups,
    make_meta_optimizer_groups,
)


def conv_model(seed=0):
    return conv_scorer(8, seed)


def episodes(count=3, tasks=4, support=4, query=3, seed=0):
    """Tasks whose label is a task-specific function of image brightness."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        slope = rng.uniform(0.5, 1.5, size=(tasks, 1))
        sx = rng.uniform(0, 1, size=(tasks, support, 8, 8, 3)).astype(np.float32)
        qx = rng.uniform(0, 1, size=(tasks, query, 8, 8, 3)).astype(np.float32)
        sy = np.clip(slope * sx.mean((2, 3, 4)), 0, 1).astype(np.float32)
        qy = np.clip(slope * qx.mean((2, 3, 4)), 0, 1).astype(np.float32)
        out.append(
            {
                "support_images": sx,
                "support_labels": sy,
                "query_images": qx,
                "query_labels": qy,
            }
        )
    return out


def dataset(batches):
    return tf.data.Dataset.from_tensor_slices(
        {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    )


def weights(model):
    return [v.numpy().copy() for v in model.variables]


def test_replica_step_applies_the_meta_batch_mean_gradient():
    model = conv_model()
    trainer = MetaTrainer(model, inner_steps=1, inner_learning_rate=0.1)
    batch = {k: tf.constant(v) for k, v in episodes(1)[0].items()}
    statistics, stats = trainer.maml.meta_batch_statistics(
        batch["support_images"], batch["query_images"]
    )
    assert stats  # the model has BatchNorm; the default mode is "batch"
    _, _, grads = trainer.maml.meta_gradients(
        batch["support_images"],
        batch["support_labels"],
        batch["query_images"],
        batch["query_labels"],
        non_trainable=statistics,
    )
    moving_before = model.non_trainable_variables[0].numpy().copy()
    before = [v.numpy().copy() for v in trainer.meta_variables]
    sgd = keras.optimizers.SGD(1.0)
    terms = trainer.replica_step(batch, [(sgd, trainer.meta_variables)])
    for v, b, g in zip(trainer.meta_variables, before, grads, strict=True):
        np.testing.assert_allclose(v.numpy(), b - g.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        model.non_trainable_variables[0].numpy(),
        0.99 * moving_before + 0.01 * stats[0].numpy(),
        rtol=1e-5,
        atol=1e-7,
    )
    loss_sum, count = terms["loss"]
    assert float(count) == 4 and np.isfinite(float(loss_sum))
    assert "support_loss" in terms


def test_evaluate_adapts_copies_and_reports_srcc():
    model = conv_model()
    trainer = MetaTrainer(model, inner_steps=2, inner_learning_rate=0.5)
    before = weights(model)
    metrics = trainer.evaluate(episodes(2, tasks=2, query=6))
    assert metrics["tasks"] == 4
    for key in ("loss", "loss_0shot", "srcc", "srcc_0shot"):
        assert np.isfinite(metrics[key]), key
    assert -1 <= metrics["srcc"] <= 1
    # Adaptation on the support set changes the query predictions...
    assert metrics["loss"] != metrics["loss_0shot"]
    # ...but never the model.
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)


def test_meta_sgd_learning_rates_are_meta_variables():
    model = conv_model()
    trainer = MetaTrainer(model, learn_inner_lr=True, inner_learning_rate=0.1)
    assert len(trainer.meta_variables) == 2 * len(model.trainable_variables)
    groups = make_meta_optimizer_groups(trainer, 1e-2)
    lrs_before = [v.numpy().copy() for v in trainer.inner_lrs]
    batch = {k: tf.constant(v) for k, v in episodes(1)[0].items()}
    trainer.replica_step(batch, groups)
    assert any(
        not np.allclose(v.numpy(), b)
        for v, b in zip(trainer.inner_lrs, lrs_before, strict=True)
    )


def test_every_meta_variable_needs_an_optimizer():
    model = conv_model()
    trainer = MetaTrainer(model, learn_inner_lr=True)
    grads = [tf.zeros_like(v) for v in trainer.meta_variables]
    with pytest.raises(ValueError, match="inner_lr"):
        apply_gradient_groups(
            [(keras.optimizers.SGD(), model.trainable_variables)],
            grads,
            trainer.meta_variables,
        )


def test_head_adaptation_needs_head_variables():
    with pytest.raises(ConfigError, match="head_variables"):
        MetaTrainer(conv_model(), adapt="head")
    with pytest.raises(ConfigError, match="stages.meta.adapt"):
        MetaTrainer(conv_model(), adapt="tail")


def make_loop(tmp_path, seed, learn_inner_lr=True):
    strategy = tf.distribute.get_strategy()
    model = conv_model(seed)
    trainer = MetaTrainer(
        model, inner_steps=1, inner_learning_rate=0.1, learn_inner_lr=learn_inner_lr
    )
    groups = make_meta_optimizer_groups(trainer, 1e-2)
    loop = MetaLoop(
        strategy,
        trainer,
        groups,
        stage="meta",
        checkpoint_dir=str(tmp_path / "checkpoints" / "meta"),
        verbose=0,
    )
    return model, trainer, loop


@pytest.mark.slow
def test_meta_loop_trains_checkpoints_and_resumes_exactly(tmp_path):
    data = episodes(4)

    def dataset_fn(epoch):
        return dataset(data[2 * epoch : 2 * epoch + 2])

    # Uninterrupted: two epochs of two meta-steps.
    model_a, trainer_a, loop_a = make_loop(tmp_path / "a", seed=0)
    start = weights(model_a)
    history = loop_a.fit(dataset_fn, epochs=2, steps_per_epoch=2)["history"]
    assert len(history) == 2 and np.isfinite(history[-1]["loss"])
    assert "support_loss" in history[-1]
    assert any(
        not np.allclose(a, b) for a, b in zip(weights(model_a), start, strict=True)
    )
    # Interrupted after one epoch, resumed in a fresh process-like setup
    # (different initial weights, which the checkpoint must overwrite).
    _, _, loop_b = make_loop(tmp_path / "b", seed=0)
    loop_b.fit(dataset_fn, epochs=1, steps_per_epoch=2)
    model_c, trainer_c, loop_c = make_loop(tmp_path / "b", seed=5)
    result = loop_c.fit(dataset_fn, epochs=2, steps_per_epoch=2)
    assert result["initial_epoch"] == 1 and result["resumed_from"]
    for a, c in zip(weights(model_a), weights(model_c), strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7)
    for a, c in zip(trainer_a.inner_lrs, trainer_c.inner_lrs, strict=True):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-6, atol=1e-7)


TWO_REPLICAS = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [{tests!r}, os.path.dirname({tests!r})]
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from test_meta_trainer import conv_model, episodes, dataset
    from tfiqa.training.meta_trainer import (
        MetaLoop, MetaTrainer, make_meta_optimizer_groups)

    def run(strategy, order, batchnorm="moving"):
        with strategy.scope():
            model = conv_model(0)
            trainer = MetaTrainer(model, inner_steps=1, inner_learning_rate=0.1,
                                  order=order or "second", learn_inner_lr=True,
                                  batchnorm=batchnorm)
            groups = make_meta_optimizer_groups(trainer, 1e-2)
            loop = MetaLoop(strategy, trainer, groups, stage="meta", verbose=0)
        data = episodes(2)
        out = loop.fit(lambda e: dataset(data), epochs=1, steps_per_epoch=2)
        if batchnorm == "batch" and order is None:
            return model
        values = trainer.meta_variables + model.non_trainable_variables
        return [v.numpy() for v in values], out["history"][0]["loss"]

    mirrored = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
    assert mirrored.num_replicas_in_sync == 2
    # The same update however the tasks are split, also with statistics of
    # the meta-batch (summed across replicas, not each replica's share).
    for order, batchnorm in (("second", "moving"), ("first", "moving"),
                             ("second", "batch")):
        single, loss1 = run(tf.distribute.get_strategy(), order, batchnorm)
        double, loss2 = run(mirrored, order, batchnorm)
        np.testing.assert_allclose(loss1, loss2, rtol=1e-4)
        for a, b in zip(single, double):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    # Every replica folds the same statistics into its moving averages.
    model = run(mirrored, None, batchnorm="batch")
    for v in model.non_trainable_variables:
        copies = [c.numpy() for c in v.value.values]
        assert len(copies) == 2 and np.isfinite(copies[0]).all()
        np.testing.assert_array_equal(copies[0], copies[1])
    assert not np.allclose(model.non_trainable_variables[0].numpy(), 0.0)
    print("REPLICAS OK")
    """
)


@pytest.mark.slow
def test_two_replicas_split_tasks_and_match_one_replica(tmp_path):
    script = tmp_path / "two_replicas.py"
    script.write_text(TWO_REPLICAS.format(tests=os.path.dirname(__file__)))
    from .helpers import run_script  # here: the script imports this module

    proc = run_script(script)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "REPLICAS OK" in proc.stdout
