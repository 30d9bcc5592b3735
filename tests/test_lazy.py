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
