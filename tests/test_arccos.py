"""Our arc-cosine (ReLU) NNGP/NTK recursion against neural-tangents' stax kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import kernels, models


def _inputs(n1, n2, d, seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return (jax.random.normal(k1, (n1, d), dtype=jnp.float64),
            jax.random.normal(k2, (n2, d), dtype=jnp.float64))


@pytest.mark.parametrize("hidden, w_std, b_std, out_w", [
    (1, 1.0, 0.0, None),
    (2, np.sqrt(2.0), 0.1, None),
    (4, 1.3, 0.5, 0.7),
    (7, 1.6, None, None),
])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_stax_in_float64(x64, hidden, w_std, b_std, out_w, symmetric):
    x1, x2 = _inputs(6, 4, 5, seed=hidden)
    x2 = None if symmetric else x2
    net = models.mlp([9] * hidden, 1, W_std=w_std, b_std=b_std, out_W_std=out_w)
    ref = net.kernel_fn(x1, x2, ("nngp", "ntk"))
    ours = kernels.arccos_kernels(x1, x2, hidden_layers=hidden, W_std=w_std, b_std=b_std, out_W_std=out_w)
    assert ours.ntk.dtype == jnp.float64
    for got, want in ((ours.nngp, ref.nngp), (ours.ntk, ref.ntk)):
        # Both are the same closed forms evaluated in a different order: rounding only.
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * float(jnp.abs(want).max()))


def test_one_hidden_layer_by_hand(x64):
    # Oracle written out: for x = x', Sigma^1 = s^2 |x|^2/n0 + b^2, Sigma^2 = s^2 Sigma^1 / 2 + b^2,
    # Theta^2 = Sigma^2 + s^2 (1/2) Sigma^1.
    x = jnp.array([[1.0, 2.0, 2.0]])
    s2, b2 = 1.7, 0.2
    sig1 = s2 * 9.0 / 3 + b2
    sig2 = s2 * sig1 / 2 + b2
    k = kernels.arccos_kernels(x, hidden_layers=1, W_std=np.sqrt(s2), b_std=np.sqrt(b2))
    np.testing.assert_allclose(k.nngp[0, 0], sig2, rtol=1e-14)
    np.testing.assert_allclose(k.ntk[0, 0], sig2 + s2 * 0.5 * sig1, rtol=1e-14)


def test_orthogonal_inputs_use_the_arccos_formula(x64):
    # Two orthogonal unit-variance inputs, no bias: E[relu(u) relu(v)] = q / (2 pi) at c = 0.
    x = jnp.array([[np.sqrt(2.0), 0.0], [0.0, np.sqrt(2.0)]])
    k = kernels.arccos_kernels(x, hidden_layers=1, W_std=1.0, b_std=0.0)
    np.testing.assert_allclose(k.nngp[0, 1], 1.0 / (2 * np.pi), rtol=1e-14)
    np.testing.assert_allclose(k.ntk[0, 1], 1.0 / (2 * np.pi) + 0.0, atol=1e-15)  # Theta^1 off-diagonal is 0


def test_float32_runs_and_is_close():
    x1 = jax.random.normal(jax.random.PRNGKey(0), (5, 4), dtype=jnp.float32)
    k = kernels.arccos_kernels(x1, hidden_layers=3)
    ref = models.mlp([8] * 3, 1, b_std=0.0).kernel_fn(x1, None, "ntk")
    assert k.ntk.dtype == jnp.float32
    # arccos near 1 turns float32 rounding (6e-8) into an angle error of ~sqrt(6e-8) = 2.4e-4:
    # 1e-3 relative is what float32 can promise for strongly correlated pairs.
    np.testing.assert_allclose(k.ntk, ref, rtol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden_layers=0), "hidden_layers"),
    (dict(hidden_layers=2.5), "hidden_layers"),
    (dict(hidden_layers=2, W_std=0.0), "W_std"),
    (dict(hidden_layers=2, b_std=-0.1), "b_std"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kernels.arccos_kernels(jnp.ones((2, 3)), **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match="shapes"):
        kernels.arccos_kernels(jnp.ones((2, 3)), jnp.ones((2, 4)), hidden_layers=1)
    with pytest.raises(ValueError, match="shapes"):
        kernels.arccos_kernels(jnp.ones(3), hidden_layers=1)
