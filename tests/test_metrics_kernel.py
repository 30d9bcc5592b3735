"""Kernel distance, kernel velocity, margins and block structure (chapters 06-07).

Oracles: scipy's cosine distance (an independent implementation of S), the
homogeneity of bias-free ReLU networks, least squares onto class indicators.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cosine

from ntkbook import metrics, models


def _psd(n, seed):
    a = np.random.default_rng(seed).standard_normal((n, n + 3))
    return a @ a.T


def test_kernel_distance_is_scipys_cosine_distance():
    k1, k2 = _psd(6, 0), _psd(6, 1)
    assert metrics.kernel_distance(k1, k2) == pytest.approx(cosine(k1.ravel(), k2.ravel()), rel=1e-12)
    assert metrics.kernel_distance(k1, k2) == pytest.approx(metrics.kernel_distance(k2, k1), rel=1e-12)
    assert metrics.kernel_distance(np.diag([1.0, 0.0]), np.diag([0.0, 1.0])) == pytest.approx(1.0)
    full = np.random.default_rng(2).standard_normal((3, 3, 2, 2))  # (N, N, k, k) kernels are flattened
    assert metrics.kernel_distance(full, full + 1) == pytest.approx(cosine(full.ravel(), (full + 1).ravel()))


@pytest.mark.parametrize("c", [0.5, 2.0, 10.0])
def test_a_rescaled_kernel_has_distance_zero_but_a_different_trace(c):
    # [trace] Thm 4.3: S alone cannot tell K from c K; the trace can.
    k = _psd(7, 3)
    assert metrics.kernel_distance(k, c * k) == pytest.approx(0.0, abs=1e-14)
    assert np.trace(c * k) != pytest.approx(np.trace(k), rel=0.1)
    # S = 0 and equal traces together force equality: here c = 1 is the only such kernel
    other = _psd(7, 4)
    assert metrics.kernel_distance(k, other) > 1e-3


def test_kernel_velocity():
    ks = np.stack([_psd(5, 0), 3 * _psd(5, 0), _psd(5, 1), _psd(5, 1)])
    t = np.array([0.0, 2.0, 3.0, 7.0])
    v = metrics.kernel_velocity(ks, t)
    expected = [cosine(ks[i].ravel(), ks[i + 1].ravel()) / (t[i + 1] - t[i]) for i in range(3)]
    np.testing.assert_allclose(v, expected, rtol=1e-12, atol=1e-15)
    assert v[0] == pytest.approx(0.0, abs=1e-14) and v[2] == pytest.approx(0.0, abs=1e-14)


def test_normalized_margin_is_scale_invariant_for_homogeneous_nets():
    net = models.mlp([16, 16], 1, b_std=None)  # bias-free ReLU net: 3-homogeneous in its weights
    params = models.init_params(net, jax.random.PRNGKey(0), (-1, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (12, 4))
    f = net.apply_fn(params, x)[:, 0]
    y = np.sign(np.asarray(f))  # labels the net classifies correctly
    scaled = jax.tree_util.tree_map(lambda a: 2.5 * a, params)
    f2 = net.apply_fn(scaled, x)[:, 0]
    np.testing.assert_allclose(f2, 2.5**3 * f, rtol=1e-5)
    g1 = metrics.normalized_margin(f, y, params, 3)
    g2 = metrics.normalized_margin(f2, y, scaled, 3)
    assert g1 > 0 and g2 == pytest.approx(g1, rel=1e-5)
    assert g1 == pytest.approx(float(np.min(np.abs(f))) / float(metrics.tree_norm(params)) ** 3, rel=1e-6)


def test_multiclass_margin_and_smoothed_margin():
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.5]])
    labels = np.array([0, 1])
    params = {"w": jnp.array([2.0])}  # norm 2
    assert metrics.normalized_margin(logits, labels, params, 2) == pytest.approx(0.5 / 4)
    # the smoothed margin is below the margin and approaches it as the outputs grow
    q = np.array([1.0, 2.0, 3.0])
    y = np.ones(3)
    gaps = []
    for scale in (3.0, 10.0, 30.0):
        sm = metrics.smoothed_margin(scale * q, y, params, 1)
        nm = metrics.normalized_margin(scale * q, y, params, 1)
        assert sm <= nm
        gaps.append(nm - sm)
    assert gaps[0] > gaps[1] > gaps[2] > 0
    # closed form: L = sum log(1 + e^-q) and -log(e^L - 1) / ||w||
    loss = np.sum(np.log1p(np.exp(-10 * q)))
    assert metrics.smoothed_margin(10 * q, y, params, 1) == pytest.approx(-np.log(np.expm1(loss)) / 2, rel=1e-10)
    assert np.isnan(metrics.smoothed_margin(np.array([0.1, -1.0]), np.ones(2), params, 1))  # loss >= log 2


def test_block_constant_fit():
    y = np.array([0, 0, 1, 1, 1, 2])
    means = np.array([[2.0, 0.5, -1.0], [0.5, 3.0, 0.2], [-1.0, 0.2, 1.0]])
    k = means[y][:, y]
    fit = metrics.block_constant_fit(k, y)
    np.testing.assert_allclose(fit.means, means)
    assert fit.fraction == pytest.approx(1.0)
    # a general kernel: the projection is least squares onto the class-pair indicators
    kk = _psd(6, 5)
    fit = metrics.block_constant_fit(kk, y)
    onehot = np.eye(3)[y]
    basis = np.stack([np.outer(onehot[:, c], onehot[:, d]).ravel() for c in range(3) for d in range(3)], 1)
    coef = np.linalg.lstsq(basis, kk.ravel(), rcond=None)[0]
    np.testing.assert_allclose(fit.means.ravel(), coef, rtol=1e-10)
    proj = basis @ coef
    assert fit.fraction == pytest.approx(np.sum(proj**2) / np.sum(kk**2), rel=1e-12)
    assert 0 < fit.fraction < 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.kernel_distance(np.ones((2, 3)), np.ones((2, 3))), "square"),
        (lambda: metrics.kernel_distance(np.eye(2), np.eye(3)), "same shape"),
        (lambda: metrics.kernel_distance(np.zeros((2, 2)), np.eye(2)), "zero kernel"),
        (lambda: metrics.kernel_velocity(np.stack([np.eye(2)] * 3), [0, 1]), "T times"),
        (lambda: metrics.kernel_velocity(np.stack([np.eye(2)] * 2), [1, 1]), "increasing"),
        (lambda: metrics.normalized_margin(np.ones(3), np.array([1, 0, 1]), {"w": jnp.ones(1)}, 2), "-1, \\+1"),
        (lambda: metrics.normalized_margin(np.ones((3, 2)), np.array([0, 2, 1]), {"w": jnp.ones(1)}, 2),
         r"labels must lie in \[0, 2\)"),
        (lambda: metrics.normalized_margin(np.ones(2), np.ones(2), {"w": jnp.ones(1)}, 0), "degree"),
        (lambda: metrics.block_constant_fit(np.ones((3, 2)), np.ones(3)), "square"),
        (lambda: metrics.block_constant_fit(np.eye(3), np.ones(2)), "labels"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
