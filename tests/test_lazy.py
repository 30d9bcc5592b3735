"""Lazy-training diagnostics against closed forms and dense Hessians."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import lazy, models


def _one_hidden_tanh(width, seed):
    net = models.mlp([width], 1, activation="tanh", parameterization="standard", W_std=1.0, b_std=None)
    params = models.init_params(net, jax.random.PRNGKey(seed), (-1, 1))
    return net, params


@pytest.mark.parametrize("width", [3, 50, 400])
def test_hessian_norm_matches_block_closed_form(x64, width):
    # y = sum_i b_i tanh(a_i x): the Hessian is block-diagonal with one 2x2 block
    # [[b_i tanh''(a_i x) x^2, tanh'(a_i x) x], [tanh'(a_i x) x, 0]] per neuron.
    net, params = _one_hidden_tanh(width, 0)
    params = jax.tree_util.tree_map(lambda t: t.astype(jnp.float64), params)
    x = 1.3
    f = lambda p: net.apply_fn(p, jnp.array([[x]]))  # noqa: E731
    named = models.named_layers(params)
    a, b = np.asarray(named["W1"][0]), np.asarray(named["W2"][:, 0])
    t = np.tanh(a * x)
    d1, d2 = 1 - t**2, -2 * t * (1 - t**2)
    blocks = np.stack([np.stack([b * d2 * x**2, d1 * x], -1), np.stack([d1 * x, np.zeros_like(a)], -1)], -2)
    expected = np.abs(np.linalg.eigvalsh(blocks)).max()
    assert lazy.hessian_operator_norm(f, params, tol=1e-10) == pytest.approx(expected, rel=1e-8)
    grad_expected = np.sqrt(np.sum((b * d1 * x) ** 2) + np.sum(t**2))
    assert lazy.gradient_norm(f, params) == pytest.approx(grad_expected, rel=1e-10)


def test_hessian_norm_matches_dense_hessian_on_a_deeper_net(x64):
    net = models.mlp([6, 5], 1, activation="erf")
    params = jax.tree_util.tree_map(lambda t: t.astype(jnp.float64),
                                    models.init_params(net, jax.random.PRNGKey(3), (-1, 2)))
    x = jnp.array([[0.4, -1.1]])
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    dense = jax.hessian(lambda q: net.apply_fn(unravel(q), x)[0, 0])(flat)
    expected = np.abs(np.linalg.eigvalsh(np.asarray(dense))).max()
    got = lazy.hessian_operator_norm(lambda p: net.apply_fn(p, x), params, tol=1e-10)
    assert got == pytest.approx(expected, rel=1e-8)


def test_diagnostics_combine_consistently():
    net, params = _one_hidden_tanh(64, 1)
    f = lambda p: net.apply_fn(p, jnp.array([[0.5]]))  # noqa: E731
    d = lazy.diagnostics(f, params, target=2.0)
    assert d.residual == pytest.approx(abs(float(f(params)[0, 0]) - 2.0), rel=1e-6)
    assert d.kappa == pytest.approx(d.residual * d.hessian_norm / d.grad_norm**2, rel=1e-6)


def test_non_scalar_output_raises():
    net, params = _one_hidden_tanh(8, 0)
    with pytest.raises(ValueError, match="scalar"):
        lazy.gradient_norm(lambda p: net.apply_fn(p, jnp.ones((3, 1))), params)


# ------------------------------------------------------------- jacobian_change
def _pair(width, activation, seed, shift):
    net = models.mlp([width, width], 2, activation=activation, b_std=0.5)
    p0 = jax.tree_util.tree_map(lambda t: t.astype(jnp.float64),
                                models.init_params(net, jax.random.PRNGKey(seed), (-1, 3)))
    noise = models.init_params(net, jax.random.PRNGKey(seed + 100), (-1, 3))
    p1 = jax.tree_util.tree_map(lambda a, b: a + shift * b.astype(jnp.float64), p0, noise)
    return net, p0, p1


def _oracle(net, p0, p1, x):
    # Forward-mode Jacobian of the flattened parameters (jacfwd, not the reverse
    # mode the library uses) and the plain vjp/jvp eNTK of kernels.ntk_reference.
    from ntkbook import kernels

    def jac(p):
        flat, unravel = jax.flatten_util.ravel_pytree(p)
        return np.asarray(jax.jacfwd(lambda q: net.apply_fn(unravel(q), x).ravel())(flat))

    j0, j1 = jac(p0), jac(p1)
    k0 = np.asarray(kernels.ntk_reference(net.apply_fn, p0, x)).transpose(0, 2, 1, 3).reshape(j0.shape[0], -1)
    k1 = np.asarray(kernels.ntk_reference(net.apply_fn, p1, x)).transpose(0, 2, 1, 3).reshape(j0.shape[0], -1)
    return np.linalg.norm(j1 - j0) / np.linalg.norm(j0), np.linalg.norm(k1 - k0) / np.linalg.norm(k0)


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_jacobian_change_matches_forward_mode_and_reference_kernel(x64, activation):
    net, p0, p1 = _pair(7, activation, 0, 0.05)
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 3), dtype=jnp.float64)
    got = lazy.jacobian_change(net.apply_fn, p0, p1, x)
    jac, ker = _oracle(net, p0, p1, x)
    assert got.jacobian == pytest.approx(jac, rel=1e-10)
    assert got.kernel == pytest.approx(ker, rel=1e-10)
    assert got.jacobian > 0 and got.kernel > 0


def test_jacobian_change_matches_finite_differences(x64):
    # Central differences of f in each parameter: an oracle with no autodiff at all.
    net, p0, p1 = _pair(3, "erf", 1, 0.2)
    x = jnp.array([[0.3, -0.7, 1.1], [1.0, 0.2, -0.4]])

    def fd_jac(p):
        flat, unravel = jax.flatten_util.ravel_pytree(p)
        flat = np.asarray(flat)
        h = 1e-6
        cols = []
        for i in range(flat.size):
            e = np.zeros_like(flat)
            e[i] = h
            cols.append((np.asarray(net.apply_fn(unravel(jnp.asarray(flat + e)), x)).ravel()
                         - np.asarray(net.apply_fn(unravel(jnp.asarray(flat - e)), x)).ravel()) / (2 * h))
        return np.stack(cols, axis=1)

    j0, j1 = fd_jac(p0), fd_jac(p1)
    k0, k1 = j0 @ j0.T, j1 @ j1.T
    got = lazy.jacobian_change(net.apply_fn, p0, p1, x)
    assert got.jacobian == pytest.approx(np.linalg.norm(j1 - j0) / np.linalg.norm(j0), rel=1e-6)
    assert got.kernel == pytest.approx(np.linalg.norm(k1 - k0) / np.linalg.norm(k0), rel=1e-6)


def test_jacobian_change_ensemble_equals_one_network_at_a_time(x64):
    net = models.mlp([5, 5], 1, activation="relu", b_std=0.5)
    p0 = jax.tree_util.tree_map(lambda t: t.astype(jnp.float64),
                                models.init_ensemble(net, jax.random.PRNGKey(2), (-1, 1), 3))
    p1 = jax.tree_util.tree_map(lambda t: t * 1.01 + 0.01, p0)
    x = jnp.linspace(-1.0, 1.0, 4)[:, None]
    got = lazy.jacobian_change(net.apply_fn, p0, p1, x, ensemble=True)
    assert got.jacobian.shape == got.kernel.shape == (3,)
    for i in range(3):
        one = lazy.jacobian_change(net.apply_fn, jax.tree_util.tree_map(lambda t: t[i], p0),
                                   jax.tree_util.tree_map(lambda t: t[i], p1), x)
        assert got.jacobian[i] == pytest.approx(one.jacobian, rel=1e-10)
        assert got.kernel[i] == pytest.approx(one.kernel, rel=1e-10)


def test_jacobian_change_is_zero_without_a_move():
    net = models.mlp([4], 1, activation="erf")
    p0 = models.init_params(net, jax.random.PRNGKey(0), (-1, 2))
    got = lazy.jacobian_change(net.apply_fn, p0, p0, jnp.ones((3, 2)))
    assert got.jacobian == 0.0 and got.kernel == 0.0


def test_jacobian_change_rejects_bad_inputs():
    net = models.mlp([4], 1, activation="erf")
    p0 = models.init_params(net, jax.random.PRNGKey(0), (-1, 2))
    other = models.init_params(models.mlp([5], 1, activation="erf"), jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(ValueError, match="leaf shapes"):
        lazy.jacobian_change(net.apply_fn, p0, other, jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="tree structure"):
        lazy.jacobian_change(net.apply_fn, p0, p0[:1], jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="x must have shape"):
        lazy.jacobian_change(net.apply_fn, p0, p0, jnp.ones(3))
    with pytest.raises(ValueError, match="leading network axis"):
        lazy.jacobian_change(net.apply_fn, p0, p0, jnp.ones((3, 2)), ensemble=True)
