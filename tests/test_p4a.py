"""Chapters 11-12 additions: output blocks of a full eNTK, the collapse geometry
(within-class spread, equinorm, equiangularity) and the misaligned read-out's cross term.

Oracles: kernels built from explicit Jacobians (so every block is a known sum), a
read-out-only model whose cross-output blocks vanish exactly, class means placed by
hand with known norms and angles, and the invariant recomputed from its definition.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import collapse, metrics


def test_output_block_norms_match_explicit_jacobians():
    rng = np.random.default_rng(0)
    n, k, p = 5, 3, 7
    jac = rng.standard_normal((n, k, p))
    kern = np.einsum("ikp,jsp->ijks", jac, jac)
    got = collapse.output_block_norms(kern)
    for a in range(k):
        for b in range(k):
            block = jac[:, a, :] @ jac[:, b, :].T  # Theta_{a,b}(X), N x N
            assert got[a, b] == pytest.approx(np.linalg.norm(block), rel=1e-12)
    # traced kernel (mean over the diagonal output pairs) is the mean of the diagonal blocks
    np.testing.assert_allclose(np.trace(kern, axis1=2, axis2=3) / k, np.mean([jac[:, a] @ jac[:, a].T for a in range(k)], 0))


def test_output_block_norms_readout_only_model_has_no_cross_blocks():
    # f_k(x) = w_k . h(x) with only W trained: d f_k / d w_s = delta_ks h(x).
    rng = np.random.default_rng(1)
    h = rng.standard_normal((6, 4))
    k = 3
    jac = np.zeros((6, k, k * 4))
    for a in range(k):
        jac[:, a, a * 4:(a + 1) * 4] = h
    norms = collapse.output_block_norms(np.einsum("ikp,jsp->ijks", jac, jac))
    assert np.all(norms[~np.eye(k, dtype=bool)] == 0.0)
    np.testing.assert_allclose(np.diag(norms), np.linalg.norm(h @ h.T))


def test_output_block_norms_rejects_bad_shapes():
    with pytest.raises(ValueError):
        collapse.output_block_norms(np.zeros((4, 4)))
    with pytest.raises(ValueError):
        collapse.output_block_norms(np.full((2, 2, 1, 1), np.nan))


def _features_from_means(means, dev):
    # class-sorted features: mean of class c plus deviations dev[c] (m, n) with zero mean
    return np.concatenate([mu + d for mu, d in zip(means, dev)]), np.repeat(np.arange(len(means)), dev.shape[1])


def test_collapse_geometry_hand_placed_means():
    m_c = np.array([[2.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])  # centred: sums to zero
    g = np.array([0.3, -0.2, 5.0])
    a = 0.1
    dev = np.zeros((3, 2, 3))
    dev[:, 0, 2], dev[:, 1, 2] = a, -a  # spread only along e3, outside the span of the means
    h, y = _features_from_means(m_c + g, dev)
    got = collapse.collapse_geometry(h, y)
    norms = np.array([2.0, np.sqrt(2), np.sqrt(2)])
    assert got.equinorm == pytest.approx(np.std(norms) / np.mean(norms), rel=1e-12)
    # cosines: (1,2) and (1,3) are -1/sqrt2, (2,3) is 0; simplex value -1/2
    assert got.equiangular == pytest.approx((4 * abs(-1 / np.sqrt(2) + 0.5) + 2 * 0.5) / 6, rel=1e-12)
    assert got.spread == pytest.approx(a**2 / np.mean(norms**2), rel=1e-12)
    # the trace form of NC1 is blind to this spread (it lies outside the span of the means)
    assert metrics.nc1(h, y) == pytest.approx(0.0, abs=1e-20)


def test_collapse_geometry_is_zero_at_a_simplex_and_scale_free():
    c = 4
    etf = np.eye(c) - 1.0 / c  # columns: a simplex ETF in R^c
    h, y = _features_from_means(etf.T + 1.0, np.zeros((c, 3, c)))
    got = collapse.collapse_geometry(h, y)
    assert got.spread == 0.0
    assert got.equinorm == pytest.approx(0.0, abs=1e-12) and got.equiangular == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(2)
    h2 = rng.standard_normal((12, 5))
    y2 = np.repeat(np.arange(3), 4)
    np.testing.assert_allclose(collapse.collapse_geometry(7.5 * h2, y2), collapse.collapse_geometry(h2, y2), rtol=1e-12)


def test_collapse_geometry_rejects_bad_input():
    h = np.ones((4, 2))
    with pytest.raises(ValueError):
        collapse.collapse_geometry(h, np.array([0, 0, 0, 0]))  # one class
    with pytest.raises(ValueError):
        collapse.collapse_geometry(h, np.array([-1, -1, 1, 1]))  # negative label
    with pytest.raises(ValueError):
        collapse.collapse_geometry(h, np.array([0, 0, 1, 1]))  # equal means: zero centred means
    with pytest.raises(ValueError):
        collapse.collapse_geometry(h, np.array([0, 1, 1]))  # length mismatch


def test_misalign_readout_adds_an_indefinite_cross_term():
    with jax.experimental.enable_x64():
        kap = (1.0, 0.6, 0.1)
        st = collapse.balanced_state(jax.random.PRNGKey(3), kap, num_classes=3, per_class=4, feature_dim=8)
        s = 1.0
        mis = collapse.misalign_readout(st, jax.random.PRNGKey(4), s)
        w, v = np.asarray(st.W), (np.asarray(mis.W) - np.asarray(st.W)) / s
        assert np.abs(w @ v.T).max() < 1e-12  # W V^T = 0 ...
        cross = w.T @ v + v.T @ w
        assert np.linalg.norm(cross) > 0.1  # ... but W^T V is not zero
        d_e = np.asarray(collapse.invariant(mis.W, mis.H1, mis.H2, kap) - collapse.invariant(st.W, st.H1, st.H2, kap))
        np.testing.assert_allclose(d_e, (s * cross + s**2 * v.T @ v) / 4, atol=1e-12)
        assert np.linalg.eigvalsh(d_e).min() < -1e-6  # indefinite
