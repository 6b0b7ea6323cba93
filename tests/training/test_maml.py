"""The bi-level step on tiny hand-made models, checked against finite differences."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfiqa.errors import ConfigError
from tfiqa.training.batchnorm import recalibrate_batchnorm
from tfiqa.training.maml import MAMLStep, mse


def tiny_model(dtype="float64", seed=0, features=4):
    """Dense-tanh -> BatchNorm -> Dense: nonlinear in its weights, with BN."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,), dtype=dtype)
    x = keras.layers.Dense(6, activation="tanh", dtype=dtype, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(dtype=dtype, name="bn")(x)
    x = keras.layers.Dense(1, dtype=dtype, name="head")(x)
    model = keras.Model(inputs, x)
    # Non-trivial moving statistics, so that "frozen" is observable.
    model.get_layer("bn").moving_mean.assign(np.linspace(-0.2, 0.3, 6))
    model.get_layer("bn").moving_variance.assign(np.linspace(0.5, 1.5, 6))
    return model


def tiny_conv_model(dtype="float32", seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3), dtype=dtype)
    x = keras.layers.Conv2D(4, 3, activation="relu", dtype=dtype)(inputs)
    x = keras.layers.BatchNormalization(dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    x = keras.layers.Dense(1, activation="sigmoid", dtype=dtype)(x)
    return keras.Model(inputs, x)


def episode(tasks=3, support=5, query=4, features=4, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (
        tf.constant(rng.normal(size=(tasks, support, features)).astype(dtype)),
        tf.constant(rng.normal(size=(tasks, support)).astype(dtype)),
        tf.constant(rng.normal(size=(tasks, query, features)).astype(dtype)),
        tf.constant(rng.normal(size=(tasks, query)).astype(dtype)),
    )


def meta_objective(step, values, batch, non_trainable=None):
    """Mean query loss at the adapted weights, as a function of `values`."""
    params, lrs = step._split(values)
    if non_trainable is None:
        non_trainable = step.non_trainable_values()
    sx, sy, qx, qy = batch
    losses = []
    for t in range(sx.shape[0]):
        fast, _ = step.adapt(params, non_trainable, sx[t], sy[t], lrs or None)
        losses.append(mse(qy[t], step.forward(fast, non_trainable, qx[t])))
    return float(tf.add_n(losses) / len(losses))


def flat(tensors):
    return np.concatenate([np.ravel(np.asarray(t)) for t in tensors])


def unflat(vector, like):
    out, k = [], 0
    for t in like:
        n = int(np.prod(t.shape))
        out.append(tf.constant(vector[k : k + n].reshape(t.shape), dtype=t.dtype))
        k += n
    return out


def directional_fd(step, batch, direction, eps=1e-5, non_trainable=None):
    base = flat(step.meta_values())
    like = step.meta_values()
    plus = meta_objective(
        step, unflat(base + eps * direction, like), batch, non_trainable
    )
    minus = meta_objective(
        step, unflat(base - eps * direction, like), batch, non_trainable
    )
    return (plus - minus) / (2 * eps)


@pytest.mark.parametrize("learn_inner_lr", [False, True])
def test_second_order_meta_gradient_matches_finite_differences(learn_inner_lr):
    model = tiny_model()
    step = MAMLStep(
        model,
        inner_steps=2,
        inner_learning_rate=0.3,
        order="second",
        learn_inner_lr=learn_inner_lr,
        batchnorm="moving",
    )
    batch = episode()
    _, _, grads = step.meta_gradients(*batch)
    grad = flat(grads)
    rng = np.random.default_rng(0)
    for _ in range(3):
        direction = rng.normal(size=grad.shape)
        direction /= np.linalg.norm(direction)
        fd = directional_fd(step, batch, direction)
        np.testing.assert_allclose(grad @ direction, fd, rtol=1e-6, atol=1e-9)
    if learn_inner_lr:
        # The learned step sizes get their own, non-zero meta-gradient.
        n = len(model.trainable_variables)
        lr_grad = flat(grads[n:])
        assert lr_grad.shape == flat(model.trainable_variables).shape
        assert np.abs(lr_grad).max() > 1e-4
        direction = np.zeros_like(grad)
        direction[-lr_grad.size :] = rng.normal(size=lr_grad.size)
        fd = directional_fd(step, batch, direction)
        np.testing.assert_allclose(grad @ direction, fd, rtol=1e-6, atol=1e-9)


def test_batch_statistics_are_frozen_through_the_step_and_fold_into_moving():
    model = tiny_model()
    step = MAMLStep(model, inner_steps=2, inner_learning_rate=0.3, batchnorm="batch")
    batch = episode()
    sx, _, qx, _ = batch
    values, stats = step.meta_batch_statistics(sx, qx)
    hidden = keras.Model(model.input, model.get_layer("hidden").output)
    inputs = np.concatenate([np.reshape(sx, (-1, 4)), np.reshape(qx, (-1, 4))])
    features = hidden(inputs).numpy()
    np.testing.assert_allclose(stats[0].numpy(), features.mean(0), atol=1e-10)
    np.testing.assert_allclose(stats[1].numpy(), features.var(0), rtol=1e-9)
    # Exact meta-gradient of the objective with these statistics held fixed.
    _, _, grads = step.meta_gradients(*batch, non_trainable=values)
    grad = flat(grads)
    rng = np.random.default_rng(1)
    for _ in range(2):
        direction = rng.normal(size=grad.shape)
        fd = directional_fd(step, batch, direction, non_trainable=values)
        np.testing.assert_allclose(grad @ direction, fd, rtol=1e-6, atol=1e-9)
    # They are not the moving statistics, and one update folds them in.
    _, _, moving_grads = step.meta_gradients(*batch)
    assert not np.allclose(flat(moving_grads), grad)
    bn = model.get_layer("bn")
    old_mean = bn.moving_mean.numpy().copy()
    step.bn_slots.moving_update(model, stats)
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), 0.99 * old_mean + 0.01 * features.mean(0), atol=1e-10
    )
    # "moving" mode (or a model without BatchNorm) has no batch statistics.
    assert MAMLStep(model, batchnorm="moving").meta_batch_statistics(sx, qx) == (
        None,
        [],
    )


def test_first_order_is_the_query_gradient_at_fast_weights_and_differs():
    model = tiny_model()
    batch = episode()
    second = MAMLStep(model, inner_steps=2, inner_learning_rate=0.3, order="second")
    first = MAMLStep(model, inner_steps=2, inner_learning_rate=0.3, order="first")
    _, _, g2 = second.meta_gradients(*batch)
    q1, s1, g1 = first.meta_gradients(*batch)
    q2, s2, _ = second.meta_gradients(*batch)
    # Same losses, different gradients: the second-order terms matter here.
    np.testing.assert_allclose(float(q1), float(q2), rtol=1e-12)
    np.testing.assert_allclose(float(s1), float(s2), rtol=1e-12)
    g1, g2 = flat(g1), flat(g2)
    assert np.linalg.norm(g1 - g2) > 0.05 * np.linalg.norm(g2)
    # FOMAML's gradient is the mean over tasks of grad L_query(theta').
    sx, sy, qx, qy = batch
    params, non_trainable = first.meta_values(), first.non_trainable_values()
    expected = []
    for t in range(sx.shape[0]):
        fast, _ = first.adapt(params, non_trainable, sx[t], sy[t])
        with tf.GradientTape() as tape:
            tape.watch(fast)
            loss = mse(qy[t], first.forward(fast, non_trainable, qx[t]))
        expected.append(flat(tape.gradient(loss, fast)))
    np.testing.assert_allclose(g1, np.mean(expected, axis=0), rtol=1e-9, atol=1e-12)


def test_zero_inner_steps_gives_the_plain_query_gradient():
    model = tiny_model()
    step = MAMLStep(model, inner_steps=0, order="second")
    batch = episode(tasks=1)
    _, _, grads = step.meta_gradients(*batch)
    with tf.GradientTape() as tape:
        loss = mse(batch[3][0], tf.reshape(model(batch[2][0], training=False), [-1]))
    plain = tape.gradient(loss, model.trainable_variables)
    np.testing.assert_allclose(flat(grads), flat(plain), rtol=1e-10, atol=1e-12)


def test_meta_step_mutates_nothing_and_keeps_batchnorm_frozen():
    model = tiny_model()
    before_t = [v.numpy().copy() for v in model.trainable_variables]
    before_n = [v.numpy().copy() for v in model.non_trainable_variables]
    step = MAMLStep(model, inner_steps=3, inner_learning_rate=0.5)
    batch = episode()
    step.meta_gradients(*batch)
    step.adapt_and_predict(batch[0][0], batch[1][0], batch[2][0])
    for v, b in zip(model.trainable_variables, before_t, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    for v, b in zip(model.non_trainable_variables, before_n, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    # Inference-mode BatchNorm: a query image's score does not depend on
    # the rest of its batch.
    adapted, _ = step.adapt_and_predict(batch[0][0], batch[1][0], batch[2][0])
    alone, _ = step.adapt_and_predict(batch[0][0], batch[1][0], batch[2][0][:1])
    np.testing.assert_allclose(adapted.numpy()[:1], alone.numpy(), rtol=1e-12)


def test_adaptation_fits_the_support_set():
    model = tiny_model()
    step = MAMLStep(model, inner_steps=5, inner_learning_rate=0.1)
    sx, sy, _, _ = episode()
    params, non_trainable = step.meta_values(), step.non_trainable_values()
    fast, before = step.adapt(params, non_trainable, sx[0], sy[0])
    after = mse(sy[0], step.forward(fast, non_trainable, sx[0]))
    assert float(after) < 0.8 * float(before)


def test_adapting_only_some_variables_leaves_the_others():
    model = tiny_model()
    head = model.get_layer("head").trainable_variables
    step = MAMLStep(model, inner_steps=2, inner_learning_rate=0.3, adapt_variables=head)
    sx, sy, _, _ = episode()
    params, non_trainable = step.meta_values(), step.non_trainable_values()
    fast, _ = step.adapt(params, non_trainable, sx[0], sy[0])
    for v, p, f in zip(model.trainable_variables, params, fast, strict=True):
        changed = not np.allclose(p.numpy(), f.numpy())
        assert changed == any(v is h for h in head), v.path
    # The backbone still gets a meta-gradient (through the adapted head).
    _, _, grads = step.meta_gradients(*episode())
    assert np.abs(grads[0].numpy()).max() > 0


def test_meta_steps_reduce_query_loss_and_find_the_shared_solution():
    """Toy problem with a known answer.

    Task t: y = w_t . x with w_t = w_star + small task noise. After one inner
    step the query loss is smallest near theta = w_star; meta-training from
    zero must lower the adapted query loss and move theta towards w_star.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(inputs))
    model.layers[-1].kernel.assign(np.zeros((3, 1), np.float32))
    w_star = np.array([1.0, -2.0, 0.5], np.float32)
    step = MAMLStep(model, inner_steps=1, inner_learning_rate=0.05, order="second")
    optimizer = keras.optimizers.Adam(0.05)
    rng = np.random.default_rng(0)

    def batch(tasks=4):
        w = w_star + 0.1 * rng.normal(size=(tasks, 3))
        sx = rng.normal(size=(tasks, 8, 3))
        qx = rng.normal(size=(tasks, 8, 3))
        sy = np.einsum("tsf,tf->ts", sx, w)
        qy = np.einsum("tsf,tf->ts", qx, w)
        return [tf.constant(a, tf.float32) for a in (sx, sy, qx, qy)]

    @tf.function
    def train_step(sx, sy, qx, qy):
        _, _, grads = step.meta_gradients(sx, sy, qx, qy)
        optimizer.apply(grads, step.meta_variables)

    fixed = batch(8)
    start, _, _ = step.meta_gradients(*fixed)
    for _ in range(60):
        train_step(*batch())
    end, _, _ = step.meta_gradients(*fixed)
    assert float(end) < 0.1 * float(start)
    kernel = model.layers[-1].kernel.numpy().ravel()
    assert np.linalg.norm(kernel - w_star) < 0.25 * np.linalg.norm(w_star)


def test_conv_batchnorm_model_float32_graph_mode():
    model = tiny_conv_model()
    step = MAMLStep(model, inner_steps=1, inner_learning_rate=0.1, learn_inner_lr=True)
    rng = np.random.default_rng(0)
    batch = (
        tf.constant(rng.uniform(size=(2, 3, 8, 8, 3)), tf.float32),
        tf.constant(rng.uniform(size=(2, 3)), tf.float32),
        tf.constant(rng.uniform(size=(2, 2, 8, 8, 3)), tf.float32),
        tf.constant(rng.uniform(size=(2, 2)), tf.float32),
    )
    eager = step.meta_gradients(*batch)
    graph = tf.function(step.meta_gradients)(*batch)
    np.testing.assert_allclose(float(eager[0]), float(graph[0]), rtol=1e-5)
    np.testing.assert_allclose(flat(eager[2]), flat(graph[2]), rtol=1e-3, atol=1e-6)
    assert all(np.isfinite(flat(graph[2])))
    assert len(graph[2]) == len(model.trainable_variables) + len(step.inner_lrs)


def test_recalibrate_batchnorm_sets_precise_statistics():
    model = tiny_model(dtype="float32")
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, size=(16, 4)).astype(np.float32) for _ in range(3)]
    hidden = keras.Model(model.input, model.get_layer("hidden").output)
    features = [hidden(b).numpy() for b in batches]
    assert recalibrate_batchnorm(model, batches) == 3
    bn = model.get_layer("bn")
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), np.mean([f.mean(0) for f in features], 0), atol=1e-4
    )
    np.testing.assert_allclose(
        bn.moving_variance.numpy(),
        np.mean([f.var(0) for f in features], 0),
        rtol=1e-3,
        atol=1e-5,
    )


def test_bad_arguments():
    model = tiny_model()
    with pytest.raises(ConfigError, match="Received: 'third'"):
        MAMLStep(model, order="third")
    with pytest.raises(ConfigError, match="inner_steps"):
        MAMLStep(model, inner_steps=-1)
    with pytest.raises(ConfigError, match="stages.meta.batchnorm"):
        MAMLStep(model, batchnorm="train")
    other = tiny_model(seed=1)
    with pytest.raises(ValueError, match="adapt_variables"):
        MAMLStep(model, adapt_variables=other.trainable_variables[:1])


def dropout_before_batchnorm_model():
    """uint8 images -> Dense -> Dropout(0.5) -> BatchNorm -> score."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inputs))
    x = keras.layers.Dense(6, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


@pytest.mark.parametrize("method", ["maml", "precise_bn", "meta_batch"])
def test_batchnorm_statistics_are_measured_with_dropout_off(method):
    from tfiqa.training.batchnorm import PreciseBatchNorm

    model = dropout_before_batchnorm_model()
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (32, 4, 4, 3)).astype(np.uint8) for _ in range(2)]
    hidden = keras.Model(model.input, model.get_layer("hidden").output)
    features = [hidden(b.astype(np.float32)).numpy() for b in batches]
    bn = model.get_layer("bn")
    if method == "maml":
        recalibrate_batchnorm(model, [b.astype(np.float32) for b in batches])
        mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    elif method == "precise_bn":
        PreciseBatchNorm(model).recalibrate(batches)
        mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    else:
        step = MAMLStep(model)
        images = np.concatenate(batches).astype(np.float32)
        _, stats = step.meta_batch_statistics(images[None, :32], images[None, 32:])
        mean, variance = stats[0].numpy(), stats[1].numpy()
        features = [np.concatenate(features)]
    # Dropout (rate 0.5, scaled by 2) would shift the variance far off.
    np.testing.assert_allclose(
        mean, np.mean([f.mean(0) for f in features], 0), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        variance, np.mean([f.var(0) for f in features], 0), rtol=1e-3, atol=1e-5
    )
    assert model.layers[4].rate == 0.5  # restored
