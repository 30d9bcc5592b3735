"""The classification driver, the logistic losses and MLP intermediate outputs (chapters 06-07)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import data, models, train

KEY = jax.random.PRNGKey(0)


def test_logistic_losses():
    f = jnp.array([[2.0], [-1.0], [0.5]])
    y = jnp.array([1.0, 1.0, -1.0])
    manual = np.mean(np.log1p(np.exp(-np.asarray(y) * np.asarray(f[:, 0]))))
    apply_fn = lambda p, x: x  # noqa: E731
    assert float(train.logistic_loss(apply_fn)(None, (f, y))) == pytest.approx(manual, rel=1e-6)
    assert float(train.log_logistic_loss(apply_fn)(None, (f, y))) == pytest.approx(np.log(manual), rel=1e-6)
    # huge margins: the naive log(mean(softplus)) underflows to -inf, the stable one does not
    big = jnp.array([[150.0], [200.0]])
    yb = jnp.ones(2)
    val, grad = jax.value_and_grad(lambda z: train.log_logistic_loss(apply_fn)(None, (z, yb)))(big)
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
    assert float(val) == pytest.approx(-150.0 - np.log(2.0), abs=1e-3)  # log(mean(e^-q)) for large q
    assert not np.isfinite(float(jnp.log(train.logistic_loss(apply_fn)(None, (big, yb)))))
    assert float(train.binary_accuracy(f, y)) == pytest.approx(1 / 3)


def test_classifier_optimizer_is_heavy_ball_sgd_with_l2_and_cosine():
    w = jnp.array([1.0, -2.0])
    grads = [jnp.array([0.5, 0.1]), jnp.array([-0.2, 0.3]), jnp.array([0.1, 0.1])]
    lr, mu, wd, steps = 0.1, 0.9, 0.01, 3
    opt = train.classifier_optimizer(lr, steps, momentum=mu, weight_decay=wd)
    state = opt.init(w)
    ref_w, v = np.asarray(w), np.zeros(2)
    for t, g in enumerate(grads):
        upd, state = opt.update(g, state, w)
        w = optax.apply_updates(w, upd)
        v = np.asarray(g) + wd * ref_w + mu * v  # PyTorch's SGD: v <- g + wd w + mu v
        ref_w = ref_w - lr * 0.5 * (1 + np.cos(np.pi * t / steps)) * v
        np.testing.assert_allclose(w, ref_w, rtol=1e-6)


def test_fit_classifier_full_batch_matches_plain_fit():
    split = data.digits_split(6, 4, KEY, classes=(0, 1, 2))
    net = models.mlp([32], 3)
    p0 = models.init_params(net, KEY, (-1, 64))
    p1, hist = train.fit_classifier(net.apply_fn, p0, split, 20, learning_rate=0.5, momentum=0.0, schedule="constant",
                                    batch_size=None, record_steps=[0, 10, 20],
                                    recorders={"norm": lambda p: jnp.sum(p[0][0] ** 2)}, progress=False)
    p2, _ = train.fit(train.cross_entropy_loss(net.apply_fn), p0, optax.sgd(0.5), 20,
                      data=(jnp.asarray(split.x_train), jnp.asarray(split.y_train)), progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert set(hist.metrics) == {"train_loss", "train_acc", "test_loss", "test_acc", "norm"}
    np.testing.assert_array_equal(hist.steps, [0, 10, 20])
    final_acc = float(train.accuracy(net.apply_fn(p1, split.x_train), split.y_train))
    assert hist["train_acc"][-1] == pytest.approx(final_acc)
    assert hist["norm"][0] == pytest.approx(float(jnp.sum(p0[0][0] ** 2)))


def test_fit_classifier_minibatches_and_logistic_loss():
    split = data.digits_split(10, 5, KEY, classes=(3, 5))
    pm = lambda y: np.where(y == 0, 1.0, -1.0)  # noqa: E731
    binary = (split.x_train, pm(split.y_train), split.x_test, pm(split.y_test))
    net = models.mlp([32], 1, b_std=None)
    p0 = models.init_params(net, KEY, (-1, 64))
    run = lambda key: train.fit_classifier(net.apply_fn, p0, binary, 30, loss="logistic", batch_size=8,  # noqa: E731
                                           key=key, learning_rate=0.1, progress=False)
    pa, ha = run(jax.random.PRNGKey(1))
    pb, _ = run(jax.random.PRNGKey(1))
    pc, _ = run(jax.random.PRNGKey(2))
    np.testing.assert_array_equal(pa[0][0], pb[0][0])
    assert not np.allclose(pa[0][0], pc[0][0])
    assert ha["train_loss"][-1] < ha["train_loss"][0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss="hinge"), "loss"),
        (dict(schedule="step"), "schedule"),
        (dict(batch_size=0, key=KEY), "batch_size"),
        (dict(batch_size=1000, key=KEY), "batch_size"),
        (dict(batch_size=4), "PRNG key"),
        (dict(loss="logistic", batch_size=None), r"\{-1, \+1\}"),
        (dict(momentum=1.0, batch_size=None), "momentum"),
        (dict(learning_rate=0.0, batch_size=None), "learning_rate"),
    ],
)
def test_fit_classifier_rejects_bad_arguments(kwargs, match):
    split = data.digits_split(4, 2, KEY, classes=(0, 1))
    net = models.mlp([8], 2)
    p0 = models.init_params(net, KEY, (-1, 64))
    with pytest.raises(ValueError, match=match):
        train.fit_classifier(net.apply_fn, p0, split, 5, progress=False, **kwargs)


def test_mlp_features_share_the_mlp_parameters():
    kwargs = dict(activation="tanh", b_std=0.3, parameterization="standard")
    net = models.mlp([16, 8], 3, **kwargs)
    feats = models.mlp_features([16, 8], 3, **kwargs)
    params = models.init_params(net, KEY, (-1, 5))
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    np.testing.assert_array_equal(feats["logits"](params, x), net.apply_fn(params, x))
    w1, b1 = params[0]
    h1 = jnp.tanh(x @ w1 + b1)  # standard parameterisation: the first layer by hand
    np.testing.assert_allclose(feats["hidden1"](params, x), h1, rtol=1e-5, atol=1e-6)
    assert feats["hidden2"](params, x).shape == (4, 8)
    with pytest.raises(ValueError, match="hidden"):
        models.mlp_features([], 3)
