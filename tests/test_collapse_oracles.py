"""ntkbook.collapse against constructions that share no code with it.

- :func:`collapse.compressed_spectra`: the three eigenspaces of Table 1 rebuilt from
  their projectors (``11^T / N``, ``Y^T Y / m - 11^T / N``, ``I - Y^T Y / m``) with
  numpy's eigh, and the block eigenvalues in closed form.
- :func:`collapse.collapse_along`: trajectories built by hand whose NC1-NC4 and
  within-class spread are known from the construction (a simplex ETF, a classifier
  aligned with it, biases that force one class), computed from the blocks of the
  state rather than by calling :mod:`ntkbook.metrics`.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from ntkbook import collapse


# ------------------------------------------------------------- compressed spectra
def _projectors(c, m):
    n = c * m
    y = np.zeros((c, n))
    for k in range(c):
        y[k, k * m:(k + 1) * m] = 1.0
    glob = np.ones((n, n)) / n
    same = y.T @ y / m  # averages over each class
    return np.eye(n) - same, same - glob, glob  # single, class, global


def _range_basis(p):
    lam, vec = np.linalg.eigh(p)
    return vec[:, lam > 0.5]  # a projector has eigenvalues 0 and 1


@pytest.mark.parametrize("c, m", [(2, 3), (3, 4), (5, 2)])
def test_compressed_spectra_match_projector_bases(c, m):
    rng = np.random.default_rng(c * 10 + m)
    a = rng.standard_normal((c * m, c * m + 3))
    k = a @ a.T + 0.3 * rng.standard_normal((c * m, c * m))  # not symmetric: the symmetric part is used
    ksym = 0.5 * (k + k.T)
    got = collapse.compressed_spectra(k, c, m)
    dims = (c * (m - 1), c - 1, 1)
    for g, p, dim in zip(got, _projectors(c, m), dims):
        b = _range_basis(p)
        assert b.shape[1] == dim and np.shape(g) == (dim,)
        np.testing.assert_allclose(np.sort(g), np.linalg.eigvalsh(b.T @ ksym @ b), rtol=1e-10, atol=1e-10)
        # the docstring's identity: the mean is tr(P K) / dim
        assert np.mean(g) == pytest.approx(np.trace(p @ ksym) / dim, rel=1e-10, abs=1e-12)
    # the three spaces are orthogonal and complete: their spectra account for tr K
    assert sum(np.sum(g) for g in got) == pytest.approx(np.trace(ksym), rel=1e-10)


def test_compressed_spectra_of_a_block_kernel_are_its_closed_form_eigenvalues():
    # K = d on the diagonal, w within a class, b between classes:
    # single: d - w; class: d + (m - 1) w - m b; global: d + (m - 1) w + (C - 1) m b.
    c, m, (d, w, b) = 4, 3, (2.0, 0.7, 0.2)
    n = c * m
    same = np.kron(np.eye(c), np.ones((m, m)))
    k = np.where(np.eye(n, dtype=bool), d, np.where(same > 0, w, b))
    single, klass, glob = collapse.compressed_spectra(k, c, m)
    np.testing.assert_allclose(single, np.full(c * (m - 1), d - w), rtol=1e-12)
    np.testing.assert_allclose(klass, np.full(c - 1, d + (m - 1) * w - m * b), rtol=1e-12)
    np.testing.assert_allclose(glob, [d + (m - 1) * w + (c - 1) * m * b], rtol=1e-12)


# -------------------------------------------------------------- collapse_along
C, M, NFEAT = 3, 4, 5


def _etf_means(rng, scale=1.0):
    """Centred class means forming a simplex ETF (equal norms, cosines -1/(C-1)) in R^n."""
    u, _ = np.linalg.qr(rng.standard_normal((NFEAT, C)))
    return scale * u @ (np.eye(C) - np.ones((C, C)) / C)  # (n, C), columns sum to 0


def _expected(means, dev_scatter, class_var, w, b, nc4):
    """NC1-NC3 and within_std from the definitions (Papyan et al. 2020; thesis 3.3).

    means: (n, C) class means; dev_scatter: sum_i (h_i - mu_{y_i})(...)^T; class_var:
    (C, n) within-class variances per coordinate (population, ddof = 0).
    """
    n_samples = C * M
    centred = means - means.mean(axis=1, keepdims=True)
    sigma_w = dev_scatter / n_samples
    sigma_b = centred @ centred.T / C
    nc1 = np.trace(sigma_w @ scipy.linalg.pinvh(sigma_b, atol=1e-10)) / C
    gram = centred.T @ centred
    etf = np.full((C, C), -1.0 / (C - 1)) + np.eye(C) * (1 + 1.0 / (C - 1))  # unit norms, cos = -1/(C-1)
    nc2 = np.linalg.norm(gram / np.linalg.norm(gram) - etf / np.linalg.norm(etf))
    nc3 = np.linalg.norm(w.T / np.linalg.norm(w) - centred / np.linalg.norm(centred))
    return dict(nc1=nc1, nc2=nc2, nc3=nc3, nc4=nc4, within_std=np.mean(np.sqrt(class_var)))


def _hand_states():
    """Three states: collapsed; collapsed means with small within-class spread and an
    aligned classifier; random means with a classifier biased to class 0."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal((NFEAT, 1))  # global mean of the features
    etf = _etf_means(rng)
    means = [etf + g, etf + g, rng.standard_normal((NFEAT, C)) + g]
    h2 = [np.zeros((NFEAT, C * (M - 1))),
          0.05 * rng.standard_normal((NFEAT, C * (M - 1))),
          0.02 * rng.standard_normal((NFEAT, C * (M - 1)))]
    ws = [etf.T, 2.0 * etf.T, rng.standard_normal((C, NFEAT))]
    # b = -W g removes the global mean from the logits; the last adds +50 to class 0
    bs = [-(ws[0] @ g)[:, 0], -(ws[1] @ g)[:, 0], np.array([50.0, 0.0, 0.0]) - (ws[2] @ g)[:, 0]]
    # NC4: with ETF means (equal norms) and W = s M^T the classifier is the nearest-centre
    # rule for every h; with +50 on class 0 it always says 0 while the nearest centre is
    # the true class (spread 0.02 << distance between means): disagreement on 2 of 3 classes.
    nc4 = [0.0, 0.0, (C - 1) / C]
    return means, h2, ws, bs, nc4


def test_collapse_along_a_reduced_trajectory_matches_the_definitions(x64):
    # For a ReducedState the features are H = sqrt(m) [H1, H2] Q^T with Q orthogonal and
    # Q2 = I_C (x) Q2~ (Q2~ orthonormal, orthogonal to 1_m): H1 holds the class means and
    # the within-class deviations of class k are sqrt(m) H2_k Q2~^T, so their scatter is
    # m H2_k H2_k^T and the per-coordinate variance of class k is diag(H2_k H2_k^T).
    # This needs only the orthonormality of Q, not the library's choice of Q2~.
    means, h2, ws, bs, nc4 = _hand_states()
    states = collapse.ReducedState(*(jnp.asarray(np.stack(a)) for a in (means, h2, ws, bs)))
    got = collapse.collapse_along(collapse.Trajectory(np.array([0.0, 1.0, 2.0]), states, 0))
    for t in range(3):
        blocks = np.split(h2[t], C, axis=1)  # (n, m - 1) per class
        scatter = sum(M * blk @ blk.T for blk in blocks)
        class_var = np.stack([np.sum(blk**2, axis=1) for blk in blocks])
        want = _expected(means[t], scatter, class_var, ws[t], bs[t], nc4[t])
        for name, value in want.items():
            assert got[name][t] == pytest.approx(value, rel=1e-8, abs=1e-10), (t, name)
    # the collapsed state really is collapsed, and the spread state is not
    assert got["nc1"][0] == pytest.approx(0.0, abs=1e-12) and got["nc1"][1] > 1e-4
    np.testing.assert_allclose(got["nc2"][:2], 0.0, atol=1e-7)
    np.testing.assert_allclose(got["nc3"][:2], 0.0, atol=1e-7)


def test_collapse_along_a_full_trajectory_matches_the_definitions(x64):
    # FullState: features given column by column, samples sorted by class; the
    # deviations are drawn directly (zero mean within each class).
    means, _, ws, bs, nc4 = _hand_states()
    rng = np.random.default_rng(1)
    hs, scatters, variances = [], [], []
    for t, spread in enumerate((0.0, 0.05, 0.02)):
        dev = spread * rng.standard_normal((NFEAT, C, M))
        dev -= dev.mean(axis=2, keepdims=True)
        hs.append((means[t][:, :, None] + dev).reshape(NFEAT, C * M))  # class-major columns
        scatters.append(np.einsum("ikm,jkm->ij", dev, dev))
        variances.append(np.mean(dev**2, axis=2).T)
    states = collapse.FullState(*(jnp.asarray(np.stack(a)) for a in (hs, ws, bs)))
    got = collapse.collapse_along(collapse.Trajectory(np.array([0.0, 1.0, 2.0]), states, 0))
    for t in range(3):
        want = _expected(means[t], scatters[t], variances[t], ws[t], bs[t], nc4[t])
        for name, value in want.items():
            assert got[name][t] == pytest.approx(value, rel=1e-8, abs=1e-10), (t, name)
