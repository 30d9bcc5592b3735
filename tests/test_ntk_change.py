"""ntk_change.train_grid against independent oracles: closed-form GD on a linear model,
a hand-written training loop, and the learning-rate rules' definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import dispersion, ntk_change


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = np.sign(rng.normal(size=12)).astype(np.float32)
    return x, y


def test_depth_one_is_linear_regression_in_closed_form(data):
    # Depth 1: f(x) = w.x + b, a linear model. Its NTK K = x x^T + 1 does not move, and GD on
    # (1/2S)|f - y|^2 contracts the residual exactly: r_t = (I - eta K / S)^t r_0.
    x, y = data
    key = jax.random.PRNGKey(3)
    res = ntk_change.train_grid(key, x, y, width=7, depths=(1,), W_vars=(0.5, 2.0), steps=40,
                                record_steps=(5, 20), lr_rule="per_network", fraction=0.7)
    np.testing.assert_array_equal(res.steps, [0, 5, 20, 40])
    K = x.astype(np.float64) @ x.T.astype(np.float64) + 1.0
    lam = np.linalg.eigvalsh(K)[-1]
    S = len(y)
    for j, w in enumerate((0.5, 2.0)):
        params = dispersion.init_mlp(jax.random.fold_in(jax.random.fold_in(key, 1), 0), (5,), W_var=w, b_var=0.0)
        f0 = np.asarray(jax.vmap(dispersion.mlp_apply, in_axes=(None, 0))(params, jnp.asarray(x)), dtype=np.float64)
        assert res.lam_max[0, j, 0] == pytest.approx(lam, rel=1e-5)
        eta = 0.7 * S / lam
        assert res.lr[0, j, 0] == pytest.approx(eta, rel=1e-5)
        step = np.eye(S) - eta * K / S
        for r, t in enumerate(res.steps):
            resid = np.linalg.matrix_power(step, int(t)) @ (f0 - y)
            assert res.loss[0, j, 0, r] == pytest.approx(0.5 * np.mean(resid**2), rel=2e-4, abs=1e-7)
        assert np.all(np.abs(res.rel_change[0, j, 0]) < 1e-5)  # a linear model's NTK is constant
    assert not res.diverged.any()


def test_matches_a_hand_written_training_loop(data):
    # A deep tanh network: the grid's numbers for one cell against plain GD written out here.
    x, y = data
    key = jax.random.PRNGKey(7)
    width, L, w, b = 9, 3, 1.7, 0.1
    res = ntk_change.train_grid(key, x, y, width=width, depths=(L,), W_vars=(w,), b_var=b, activation="tanh",
                                steps=30, record_steps=(10,), lr_rule="per_network", fraction=0.5)
    params = dispersion.init_mlp(jax.random.fold_in(jax.random.fold_in(key, L), 0), (5,) + (width,) * (L - 1),
                                W_var=w, b_var=b)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def loss(p):
        f = jax.vmap(dispersion.mlp_apply, in_axes=(None, 0, None))(p, xj, "tanh")
        return 0.5 * jnp.mean((f - yj) ** 2)

    K0 = np.asarray(dispersion.empirical_ntk_on(params, xj, "tanh"), dtype=np.float64)
    eta = 0.5 * len(y) / np.linalg.eigvalsh(K0)[-1]
    assert res.lr[0, 0, 0] == pytest.approx(eta, rel=1e-4)
    losses, rels = [float(loss(params))], [0.0]
    for t in range(1, 31):
        g = jax.grad(loss)(params)
        params = jax.tree_util.tree_map(lambda a, b: a - jnp.float32(eta) * b, params, g)
        if t in (10, 30):
            K = np.asarray(dispersion.empirical_ntk_on(params, xj, "tanh"), dtype=np.float64)
            rels.append(np.linalg.norm(K - K0) / np.linalg.norm(K0))
            losses.append(float(loss(params)))
    np.testing.assert_allclose(res.loss[0, 0, 0], losses, rtol=1e-3)
    np.testing.assert_allclose(res.rel_change[0, 0, 0], rels, rtol=1e-3, atol=1e-6)
    assert rels[-1] > 1e-3  # the oracle is not trivially zero: this network's NTK does move
    assert res.min_loss[0, 0, 0] <= min(losses) * (1 + 1e-4)


def test_shared_rate_is_set_by_the_largest_kernel(data):
    x, y = data
    res = ntk_change.train_grid(jax.random.PRNGKey(0), x, y, width=8, depths=(2, 4), W_vars=(1.0, 3.0),
                                steps=2, lr_rule="shared", fraction=1.0, n_seeds=2)
    assert res.lr.shape == (2, 2, 2) and res.rel_change.shape == (2, 2, 2, 2)
    assert res.lam_max[0, 0, 0] != res.lam_max[0, 0, 1]  # the two seeds are different networks
    scaled = res.lr * res.lam_max / len(y)  # eta lambda_max / S, the step's size against stability
    assert np.all(res.lr == res.lr[0, 0])
    assert scaled.max() == pytest.approx(1.0, rel=1e-6)
    assert np.all(scaled <= 1.0 + 1e-6)
    assert np.unravel_index(np.argmax(res.lam_max), res.lam_max.shape)[:2] == (1, 1)  # deepest, most chaotic


@pytest.mark.parametrize("kwargs, match", [
    (dict(depths=(0,)), "depths"),
    (dict(depths=()), "depths"),
    (dict(W_vars=(1.0, -1.0)), "W_vars"),
    (dict(b_var=-0.1), "b_var"),
    (dict(width=0), "width"),
    (dict(activation="gelu"), "activation"),
    (dict(steps=0), "steps"),
    (dict(record_steps=(0,)), "record_steps"),
    (dict(record_steps=(11,)), "record_steps"),
    (dict(lr_rule="adaptive"), "lr_rule"),
    (dict(fraction=2.0), "fraction"),
    (dict(n_seeds=0), "n_seeds"),
])
def test_bad_inputs_raise_before_training(data, kwargs, match):
    x, y = data
    args = dict(width=4, depths=(2,), W_vars=(1.0,), steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ntk_change.train_grid(jax.random.PRNGKey(0), x, y, **args)


def test_bad_data_raises(data):
    x, y = data
    with pytest.raises(ValueError, match="y must be"):
        ntk_change.train_grid(jax.random.PRNGKey(0), x, y[:-1], width=4, depths=(2,), W_vars=(1.0,), steps=1)
    with pytest.raises(ValueError, match="x must be"):
        ntk_change.train_grid(jax.random.PRNGKey(0), x[0], y, width=4, depths=(2,), W_vars=(1.0,), steps=1)


def test_init_mlp_accepts_traced_variances_and_checks_concrete_ones():
    widths = (3, 4, 4)
    a = jax.jit(lambda w: dispersion.init_mlp(jax.random.PRNGKey(0), widths, W_var=w, b_var=0.0))(2.0)
    b = dispersion.init_mlp(jax.random.PRNGKey(0), widths, W_var=2.0, b_var=0.0)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(u, v, rtol=1e-6)
    with pytest.raises(ValueError, match="W_var"):
        dispersion.init_mlp(jax.random.PRNGKey(0), widths, W_var=-1.0)
