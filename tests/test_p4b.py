"""Chapters 13-14 additions: the pNTK/eNTK spectrum comparison and the linear
softmax student, each against an independent oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import dynamics, kernels


def _random_kernels(rng, n=6, k=3, noise=0.01):
    """A positive-definite pNTK P and an eNTK = P (x) I + a symmetric perturbation."""
    a = rng.normal(size=(n, 2 * n))
    p = a @ a.T / (2 * n) + 0.1 * np.eye(n)
    e = rng.normal(size=(n * k, n * k))
    mat = np.kron(p, np.eye(k)) + noise * (e + e.T) / 2
    full = mat.reshape(n, k, n, k).transpose(0, 2, 1, 3)
    return full, p, mat


def test_pntk_spectrum_against_dense_linear_algebra():
    rng = np.random.default_rng(0)
    full, p, mat = _random_kernels(rng)
    s = kernels.pntk_spectrum(full, p)
    # oracle: eigenvalues of the assembled matrices, with the Kronecker product built by loops
    n, k = p.shape[0], 3
    kron = np.zeros((n * k, n * k))
    for i in range(n):
        for j in range(n):
            for a in range(k):
                kron[i * k + a, j * k + a] = p[i, j]
    lam_e, lam_kron = np.linalg.eigvalsh(mat), np.linalg.eigvalsh(kron)
    assert lam_e[0] > 0  # the fixture is positive definite
    assert s.lam_max_entk == pytest.approx(lam_e[-1], rel=1e-12)
    assert s.lam_min_entk == pytest.approx(lam_e[0], rel=1e-10)
    assert s.lam_max_pntk == pytest.approx(lam_kron[-1], rel=1e-12)  # P (x) I has P's eigenvalues
    assert s.lam_min_pntk == pytest.approx(lam_kron[0], rel=1e-10)
    assert s.err_op == pytest.approx(np.linalg.norm(mat - kron, 2), rel=1e-10)
    assert s.cond_entk == pytest.approx(lam_e[-1] / lam_e[0])
    assert s.err_over_lam_min == pytest.approx(s.err_op / lam_e[0])
    # Weyl's inequality: extreme eigenvalues move by at most the operator norm of the difference
    assert abs(s.lam_max_entk - s.lam_max_pntk) <= s.err_op + 1e-12
    assert abs(s.lam_min_entk - s.lam_min_pntk) <= s.err_op + 1e-12


def test_pntk_spectrum_of_an_exact_kronecker_kernel_has_zero_error():
    rng = np.random.default_rng(1)
    full, p, _ = _random_kernels(rng, noise=0.0)
    s = kernels.pntk_spectrum(full, p)
    assert s.err_op < 1e-12
    assert s.cond_entk == pytest.approx(s.cond_pntk, rel=1e-10)


def test_pntk_spectrum_refuses_mismatched_or_asymmetric_input():
    rng = np.random.default_rng(2)
    full, p, _ = _random_kernels(rng)
    with pytest.raises(ValueError):
        kernels.pntk_spectrum(full, p[:-1, :-1])
    with pytest.raises(ValueError):
        kernels.pntk_spectrum(full[..., 0], p)
    bad = p.copy()
    bad[0, 1] += 1.0
    with pytest.raises(ValueError):
        kernels.pntk_spectrum(full, bad)
    nan = full.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        kernels.pntk_spectrum(nan, p)


def _student_data(n=200, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w_true, b_true = rng.normal(size=(d, k)), rng.normal(size=k)
    z = x @ w_true + b_true
    q = np.exp(z - z.max(1, keepdims=True))
    return x, q / q.sum(1, keepdims=True)


def test_student_recovers_a_realisable_soft_teacher(x64):
    # With targets softmax(X W* + b*) the cross-entropy's minimisers are exactly the
    # (W, b) that reproduce those probabilities (Gibbs' inequality), so the student's
    # predictions must converge to the teacher's.
    x, q = _student_data()
    wb = dynamics.fit_softmax_student(jnp.asarray(x), jnp.asarray(q), steps=4000, learning_rate=1.0)
    got = np.asarray(dynamics.softmax_student_probs(wb, jnp.asarray(x)))
    np.testing.assert_allclose(got, q, atol=2e-3)
    # the gauge: gradient rows sum to zero over classes, and descent starts at zero
    np.testing.assert_allclose(np.asarray(wb[0]).sum(1), 0.0, atol=1e-10)


def test_student_integer_weights_equal_duplicated_rows(x64):
    x, q = _student_data(n=40, seed=3)
    counts = np.random.default_rng(4).integers(0, 4, size=40).astype(float)
    counts[0] = 1.0
    wb_w = dynamics.fit_softmax_student(jnp.asarray(x), jnp.asarray(q), steps=300, learning_rate=0.5,
                                        weights=jnp.asarray(counts))
    rep = np.repeat(np.arange(40), counts.astype(int))
    wb_r = dynamics.fit_softmax_student(jnp.asarray(x[rep]), jnp.asarray(q[rep]), steps=300, learning_rate=0.5)
    np.testing.assert_allclose(np.asarray(wb_w[0]), np.asarray(wb_r[0]), atol=1e-10)
    np.testing.assert_allclose(np.asarray(wb_w[1]), np.asarray(wb_r[1]), atol=1e-10)


def test_student_refuses_bad_targets_and_weights():
    x, q = _student_data(n=10)
    x, q = jnp.asarray(x, jnp.float32), jnp.asarray(q, jnp.float32)
    with pytest.raises(ValueError):
        dynamics.fit_softmax_student(x, 2 * q, steps=10, learning_rate=0.1)
    with pytest.raises(ValueError):
        dynamics.fit_softmax_student(x, q[:-1], steps=10, learning_rate=0.1)
    with pytest.raises(ValueError):
        dynamics.fit_softmax_student(x, q, steps=10, learning_rate=0.1, weights=jnp.zeros(10))
    with pytest.raises(ValueError):
        dynamics.fit_softmax_student(x, q, steps=0, learning_rate=0.1)
    with pytest.raises(ValueError):
        dynamics.fit_softmax_student(x, q, steps=10, learning_rate=-1.0)
