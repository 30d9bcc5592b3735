"""Chapters 6-7 additions: the scale/turn split of a kernel change, centring, the
homogeneity split of the trace, and Rademacher probes drawn as signs.

Oracles: kernels built from explicit feature matrices (so every inner product is
known in closed form), explicit Jacobians from ``jax.jacrev``, and a one-parameter
model on which a sign probe reproduces the trace exactly (Gaussian probes would not).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntkbook import models, trace


def _psd(rng, n, d):
    phi = rng.standard_normal((n, d))
    return phi, phi @ phi.T


def test_kernel_change_recovers_a_constructed_scale_and_turn():
    rng = np.random.default_rng(0)
    _, k0 = _psd(rng, 7, 3)
    r = rng.standard_normal((7, 7))
    r = r + r.T
    r -= np.sum(r * k0) / np.sum(k0 * k0) * k0  # Gram-Schmidt: <R, K0>_F = 0
    c = 1.7
    k1 = c * k0 + r
    res = trace.kernel_change(k0, k1)
    assert res.scale == pytest.approx(c, rel=1e-12)
    expected = np.sum(r * r) / ((c - 1) ** 2 * np.sum(k0 * k0) + np.sum(r * r))
    assert res.turn_share == pytest.approx(expected, rel=1e-10)
    cos = np.sum(k0 * k1) / np.sqrt(np.sum(k0 * k0) * np.sum(k1 * k1))
    assert res.distance == pytest.approx(1 - cos, rel=1e-10)


def test_kernel_change_pure_scale_and_pure_turn():
    rng = np.random.default_rng(1)
    _, k0 = _psd(rng, 5, 5)
    assert trace.kernel_change(k0, 3.0 * k0).turn_share == pytest.approx(0.0, abs=1e-12)
    assert abs(trace.kernel_change(k0, 3.0 * k0).distance) < 1e-12
    assert trace.kernel_change(k0, k0).turn_share == 0.0
    # a change orthogonal to K0 is all turn
    r = rng.standard_normal((5, 5))
    r = r + r.T
    r -= np.sum(r * k0) / np.sum(k0 * k0) * k0
    assert trace.kernel_change(k0, k0 + r).turn_share == pytest.approx(1.0, rel=1e-12)


def test_full_kernel_layout_is_flattened_input_major():
    # K[i, j, a, b] = <g_ia, g_jb> for gradient vectors g_ia; flattened it is G G^T with rows (i, a)
    rng = np.random.default_rng(2)
    n, k, d = 4, 3, 6
    g = rng.standard_normal((n, k, d))
    full = np.einsum("iad,jbd->ijab", g, g)
    flat = g.reshape(n * k, d) @ g.reshape(n * k, d).T
    g2 = g * (1 + 0.1 * rng.standard_normal((n, k, d)))
    full2 = np.einsum("iad,jbd->ijab", g2, g2)
    flat2 = g2.reshape(n * k, d) @ g2.reshape(n * k, d).T
    a, b = trace.kernel_change(full, full2), trace.kernel_change(flat, flat2)
    assert a.scale == pytest.approx(b.scale, rel=1e-12)
    assert a.turn_share == pytest.approx(b.turn_share, rel=1e-10)
    np.testing.assert_allclose(trace.centred_kernel(full), trace.centred_kernel(flat), rtol=1e-12, atol=1e-12)


def test_centred_kernel_is_the_gram_matrix_of_centred_features():
    rng = np.random.default_rng(3)
    phi, k = _psd(rng, 9, 4)
    phi_c = phi - phi.mean(0)
    np.testing.assert_allclose(trace.centred_kernel(k), phi_c @ phi_c.T, rtol=1e-10, atol=1e-12)


def test_homogeneity_split_matches_explicit_jacobians(x64):
    # bias-free ReLU MLP with L = 3 weight layers: Tr K(w) = ||w||^4 Tr K(w / ||w||)
    net = models.mlp((16, 16), 2, b_std=None, parameterization="standard")
    params = models.init_params(net, jax.random.PRNGKey(0), (-1, 5))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 5), jnp.float64)
    flat, unravel = ravel_pytree(params)

    def tr(w):
        j = jax.jacrev(lambda v: net.apply_fn(unravel(v), x).ravel())(w)
        return float(jnp.sum(j * j))

    w0, w1 = flat, 2.5 * flat + 0.3 * jax.random.normal(jax.random.PRNGKey(2), flat.shape, jnp.float64)
    norms = np.array([float(jnp.linalg.norm(w0)), float(jnp.linalg.norm(w1))])
    dir_tr = np.array([tr(w0 / norms[0]), tr(w1 / norms[1])])
    norm_part, dir_part = trace.homogeneous_split(norms, dir_tr, 3)
    assert norm_part[0] == 0.0 and dir_part[0] == 0.0
    assert norm_part[1] + dir_part[1] == pytest.approx(np.log(tr(w1) / tr(w0)), rel=1e-10)
    assert norm_part[1] == pytest.approx(4 * np.log(norms[1] / norms[0]), rel=1e-12)


def test_rademacher_probes_are_signs():
    # One parameter: f(x_i; w) = w x_i, J = x (N x 1). A sign probe v = +-1 gives
    # ||J v||^2 = sum x_i^2 = Tr K exactly, every probe; a Gaussian probe gives z^2 Tr K.
    x = jnp.linspace(0.5, 2.0, 5)[:, None]

    def apply_fn(p, xx):
        return p["w"] * xx

    params = {"w": jnp.asarray(0.7)}
    exact = float(jnp.sum(x**2))
    rad = trace.ntk_trace(apply_fn, params, x, method="jvp", probe="rademacher", key=jax.random.PRNGKey(0),
                          probes=32)
    np.testing.assert_allclose(rad.samples, exact, rtol=1e-5)
    gauss = trace.ntk_trace(apply_fn, params, x, method="jvp", key=jax.random.PRNGKey(0), probes=32)
    assert np.std(gauss.samples / exact) > 0.3  # chi-square(1) has sd sqrt(2); 32 draws below 0.3: p < 1e-6


@pytest.mark.parametrize("bad", [np.ones((3, 4)), np.zeros((3, 3)), np.array([[1.0, 2.0], [0.0, 1.0]])])
def test_kernel_change_refuses_bad_kernels(bad):
    with pytest.raises((ValueError, TypeError)):
        trace.kernel_change(bad, np.eye(bad.shape[0]) if bad.shape[0] == bad.shape[1] else np.eye(3))


def test_homogeneous_split_refuses_bad_input():
    with pytest.raises(ValueError):
        trace.homogeneous_split([1.0, -1.0], [1.0, 1.0], 3)
    with pytest.raises(ValueError):
        trace.homogeneous_split([1.0, 1.0], [1.0], 3)
    with pytest.raises(ValueError):
        trace.homogeneous_split([1.0, np.nan], [1.0, 1.0], 3)
    with pytest.raises((ValueError, TypeError)):
        trace.homogeneous_split([1.0, 1.0], [1.0, 1.0], 0)
    with pytest.raises(ValueError):
        trace.centred_kernel(np.ones((1, 1)))


def test_flop_costs_match_the_auto_choice_and_scale_with_outputs():
    # Oracle: flop counts grow with the work. The exact trace does one backward pass per
    # output, a probe one JVP whatever the output count: c_exact grows ~k, and faster
    # than c_probe, which only grows through the size of the last layer.
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 5))
    costs = {}
    for k in (2, 32):
        net = models.mlp((16,), k)
        p = models.init_params(net, jax.random.PRNGKey(1), (-1, 5))
        costs[k] = trace.flop_costs(net.apply_fn, p, x)
    if not all(np.isfinite(c) for pair in costs.values() for c in pair):
        pytest.skip("backend reports no flop counts")
    assert costs[32][0] > 8 * costs[2][0]  # 16x the outputs
    assert costs[32][0] / costs[32][1] > costs[2][0] / costs[2][1]
    with pytest.raises(ValueError):
        trace.flop_costs(net.apply_fn, p, x, probe="uniform")


def test_normalized_gd_takes_steps_of_fixed_length():
    from ntkbook import svm
    import optax
    # Oracle: on f(w) = ||A w - b||^2 / 2 the gradient is A^T (A w - b); one step must move w by
    # exactly eta along -g / ||g||, whatever the gradient's size.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal(6)
    params = {"w": jnp.asarray(rng.standard_normal(4)), "v": jnp.asarray(rng.standard_normal(2))}
    grads = {"w": jnp.asarray(a.T @ (a @ np.asarray(params["w"]) - b)), "v": jnp.asarray([3e-30, 0.0])}
    opt = svm.normalized_gd(0.25)
    upd, _ = opt.update(grads, opt.init(params), params)
    g = np.concatenate([np.asarray(grads["w"]), np.asarray(grads["v"])])
    step = np.concatenate([np.asarray(upd["w"]), np.asarray(upd["v"])])
    np.testing.assert_allclose(step, -0.25 * g / np.linalg.norm(g), rtol=1e-6)
    assert np.linalg.norm(step) == pytest.approx(0.25, rel=1e-6)
    zero, _ = opt.update({"w": jnp.zeros(4), "v": jnp.zeros(2)}, opt.init(params), params)
    assert all(np.all(np.asarray(z) == 0) for z in jax.tree_util.tree_leaves(zero))
    new = optax.apply_updates(params, upd)
    assert float(jnp.linalg.norm(new["w"] - params["w"])) <= 0.25 + 1e-6
    with pytest.raises((ValueError, TypeError)):
        svm.normalized_gd(0.0)
