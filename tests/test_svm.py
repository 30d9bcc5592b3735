"""The hard-margin kernel SVM against independent solvers and closed forms.

Oracles: the primal problem with explicit features solved by scipy's SLSQP, the
dual solved by L-BFGS-B with bounds, scikit-learn's SVC on a symmetrised
problem whose optimal offset is zero, and the closed-form optimum of a
block-constant kernel.
"""

import numpy as np
import pytest
from scipy import optimize
from sklearn.svm import SVC

from ntkbook import svm


def _separable(n=14, d=6, seed=0):
    """Explicit features phi_i (rows) and labels with a margin: y_i = sign(<u, phi_i>), |<u, phi_i>| >= 0.3."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    phi = rng.standard_normal((n, d))
    s = phi @ u
    phi += np.outer(np.sign(s) * 0.3, u)  # push every point at least 0.3 away from the hyperplane
    y = np.sign(phi @ u)
    return phi, y


def test_matches_the_primal_solved_by_slsqp():
    phi, y = _separable()
    k = phi @ phi.T  # rank 6 < N = 14: Q is singular, the solver must cope
    res = svm.hard_margin_svm(k, y)
    cons = {"type": "ineq", "fun": lambda w: y * (phi @ w) - 1.0, "jac": lambda w: y[:, None] * phi}
    primal = optimize.minimize(lambda w: 0.5 * w @ w, np.zeros(phi.shape[1]), jac=lambda w: w,
                               constraints=[cons], method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    assert primal.success
    w_star = primal.x
    assert res.objective == pytest.approx(0.5 * w_star @ w_star, rel=1e-7)
    assert res.margin == pytest.approx(1 / np.linalg.norm(w_star), rel=1e-7)
    # the primal solution is recovered from the dual: w = sum_i a_i y_i phi_i
    np.testing.assert_allclose((res.alpha * y) @ phi, w_star, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.functional_margins, y * (phi @ w_star), rtol=1e-6, atol=1e-8)
    active = np.flatnonzero(np.abs(y * (phi @ w_star) - 1) < 1e-6)
    assert set(res.support) <= set(active) and res.support.size >= 1
    assert res.norm**2 == pytest.approx(np.sum(res.alpha), rel=1e-9)  # ||w||^2 = sum a at the optimum


def test_matches_the_dual_solved_by_lbfgsb():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 3))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.3, 1.0, -1.0)
    k = np.exp(-0.5 * np.sum((x[:, None] - x[None]) ** 2, -1))  # RBF: full rank, separable
    q = np.outer(y, y) * k
    dual = optimize.minimize(lambda a: 0.5 * a @ q @ a - a.sum(), np.zeros(20), jac=lambda a: q @ a - 1,
                             bounds=[(0, None)] * 20, method="L-BFGS-B",
                             options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000})
    res = svm.hard_margin_svm(k, y)
    assert res.objective == pytest.approx(-dual.fun, rel=1e-6)
    np.testing.assert_allclose(res.alpha, dual.x, rtol=1e-3, atol=1e-4 * dual.x.max())


def test_matches_sklearn_on_a_problem_whose_offset_is_zero():
    # Adding (-phi_i, -y_i) for every (phi_i, y_i) makes the problem symmetric, so the
    # optimal offset of SVC is 0 and its solution is that of the offset-free SVM; the
    # added constraints are copies of the old ones, so the optimum is unchanged.
    phi, y = _separable(n=10, d=5, seed=2)
    k = phi @ phi.T
    k_aug = np.block([[k, -k], [-k, k]])
    y_aug = np.concatenate([y, -y])
    clf = SVC(kernel="precomputed", C=1e8, tol=1e-10).fit(k_aug, y_aug)
    coef = np.zeros(20)
    coef[clf.support_] = clf.dual_coef_[0]
    assert abs(clf.intercept_[0]) < 1e-5
    res = svm.hard_margin_svm(k, y)
    assert res.objective == pytest.approx(0.5 * coef @ k_aug @ coef, rel=1e-5)
    assert svm.hard_margin_svm(k_aug, y_aug).objective == pytest.approx(res.objective, rel=1e-9)


@pytest.mark.parametrize("a_p, a_n, c", [(2.0, 2.0, 0.0), (2.0, 3.0, 0.8), (3.0, 1.5, -0.5), (4.0, 1.0, -1.5)])
def test_block_constant_kernels_have_the_closed_form_optimum(a_p, a_n, c):
    y = np.array([1.0] * 5 + [-1.0] * 8)
    k = np.where(np.outer(y, y) > 0, np.where(y[:, None] > 0, a_p, a_n), c)
    res = svm.hard_margin_svm(k, y)
    assert svm.block_approximation(k, y) == pytest.approx(res.objective, rel=1e-9)
    if a_p == a_n:
        expected = 1.0 / (a_p - c)  # [trace] eq. (4), generalised to a between-class value c
        assert res.objective == pytest.approx(expected, rel=1e-9)
    if c == 0 and a_p == a_n:
        assert svm.trace_approximation(k) == pytest.approx(res.objective, rel=1e-12)  # the paper's case


def test_trace_approximation_is_n_over_trace():
    k = np.diag([1.0, 2.0, 3.0, 4.0])
    assert svm.trace_approximation(k) == pytest.approx(4 / 10)


@pytest.mark.parametrize(
    "kernel, labels, match",
    [
        (np.ones((3, 4)), np.ones(3), "square"),
        (np.ones((3,)), np.ones(3), "square"),
        (np.eye(3), np.array([1, 0, -1]), r"-1 or \+1"),
        (np.eye(3), np.array([1, 2, -1]), r"-1 or \+1"),
        (np.eye(3), np.ones(4), "shape"),
        (np.array([[1.0, 0.5], [0.0, 1.0]]), np.array([1, -1]), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([1, -1]), "positive semi-definite"),
        (np.ones((2, 2)), np.array([1, -1]), "not separable"),  # one point with both labels
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), np.array([1, -1]), "non-finite"),
    ],
)
def test_bad_inputs_raise(kernel, labels, match):
    with pytest.raises(ValueError, match=match):
        svm.hard_margin_svm(kernel, labels)


def test_approximations_reject_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        svm.trace_approximation(np.ones((2, 3)))
    with pytest.raises(ValueError, match="trace must be positive"):
        svm.trace_approximation(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="both classes"):
        svm.block_approximation(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match=r"-1 or \+1"):
        svm.block_approximation(np.eye(3), np.array([0, 1, 1]))
