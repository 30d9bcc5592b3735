"""The hard-margin kernel SVM without offset, and the trace approximation of its optimum.

Lyu & Li (2020) show that gradient flow on a homogeneous network with logistic
loss converges in direction to a KKT point of a max-margin problem; the trace
evolution paper ([trace] Thm 4.2, problems (2)-(3)) restates this as a hard-margin
SVM with the eNTK at the limit direction ``w_bar`` as kernel:

    primal (2):  min 1/2 ||v||^2    s.t.  y_i <v, grad f(x_i; w_bar)> >= 1,
    dual (3):    max sum_i a_i - 1/2 sum_ij a_i a_j y_i y_j K_ij    s.t.  a >= 0.

There is no offset ``b`` (the network has none), hence no constraint
``sum_i a_i y_i = 0`` in the dual. The optimum ``D*`` of both problems equals
``1/2 ||v*||^2``, and the geometric margin of the SVM is ``1 / ||v*|| = 1 / sqrt(2 D*)``.

Solver. Factor ``Q = (y y^T) * K = G G^T`` (eigen-decomposition; row ``i`` of ``G``
is ``y_i phi_i`` in some basis). The primal is then the least-distance programme
``min ||v|| s.t. G v >= 1``, which Lawson & Hanson (1974, ch. 23) reduce to one
non-negative least-squares problem; :func:`scipy.optimize.nnls` (their
active-set method) solves it to machine precision in finitely many steps, with
no tolerance or penalty to tune, also when ``K`` is singular, and it detects
non-separable data (an infeasible primal) on the way.
We do not use scikit-learn's ``SVC(kernel="precomputed")``: it always fits an
offset (its dual has the equality constraint above), and a soft margin with a
large ``C`` only approaches the hard margin as ``C -> infinity``. (The tests use
``SVC`` as an independent oracle on a symmetrised problem whose optimal offset
is zero.) The solution is checked against the KKT conditions before it is returned.

The paper's approximation ([trace] eq. (4)): if ``K_ij = x`` for ``y_i = y_j``
and ``0`` otherwise, the dual optimum is ``1 / x``, and ``x = Tr K / N``; so
``1 / (Tr K / N)`` approximates ``D*`` (:func:`trace_approximation`).
:func:`block_approximation` solves the dual exactly for the best block-constant
approximation of ``K`` (within-class means ``a_+``, ``a_-`` and between-class
mean ``c``), which keeps the off-diagonal block the paper's assumption drops.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from scipy.optimize import nnls

from . import _checks


class SVMResult(NamedTuple):
    """Solution of the hard-margin kernel SVM dual (no offset).

    Attributes:
        alpha: dual variables ``a_i >= 0``, shape ``(N,)``.
        objective: the optimum ``D* = sum a - 1/2 a^T Q a = 1/2 ||v*||^2`` of (2)/(3).
        margin: the geometric margin ``1 / ||v*||``.
        norm: ``||v*|| = sqrt(sum_i a_i)``.
        support: indices with ``a_i > 0`` (up to the solver's tolerance).
        functional_margins: ``y_i <v*, phi_i> = (Q a)_i``; 1 on the support, >= 1 elsewhere.
    """

    alpha: np.ndarray
    objective: float
    margin: float
    norm: float
    support: np.ndarray
    functional_margins: np.ndarray


def _check_kernel(kernel: Any) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise ValueError(f"kernel must be a square (N, N) matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("kernel has non-finite entries")
    scale = max(float(np.max(np.abs(k))), np.finfo(float).tiny)
    if np.max(np.abs(k - k.T)) > 1e-6 * scale:
        raise ValueError("kernel must be symmetric (max |K - K^T| exceeds 1e-6 of max |K|)")
    return 0.5 * (k + k.T)


def _check_labels(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the kernel, got {y.shape}")
    if not np.all(np.isin(y, (-1, 1))):
        bad = np.unique(y[~np.isin(y, (-1, 1))])[:5]
        raise ValueError(f"labels must be -1 or +1 (binary classification), found {bad.tolist()}")
    return y.astype(np.float64)


def hard_margin_svm(kernel: Any, labels: Any, *, rtol: float = 1e-6) -> SVMResult:
    """Solve the hard-margin kernel SVM (no offset) for a precomputed kernel ([trace] eqs. 2-3).

    Args:
        kernel: ``(N, N)`` symmetric positive semi-definite kernel matrix.
        labels: ``(N,)`` labels in ``{-1, +1}``.
        rtol: relative tolerance of the KKT check (and of ``a_i > 0`` for support vectors).

    Returns:
        An :class:`SVMResult`.

    Raises:
        ValueError: a non-square or non-symmetric kernel, labels outside ``{-1, +1}``,
            or data that are not separable in the kernel's feature space (the dual
            is then unbounded and the hard-margin problem infeasible).

    >>> res = hard_margin_svm(K, y)
    >>> res.objective, res.margin, res.support
    """
    k = _check_kernel(kernel)
    y = _check_labels(labels, k.shape[0])
    q = (y[:, None] * y[None, :]) * k
    lam, vec = np.linalg.eigh(q)
    if lam[-1] <= 0:
        raise ValueError("kernel is zero on these points: no separating direction")
    if lam[0] < -1e-5 * lam[-1]:  # float32 kernels carry ~1e-7 relative rounding
        raise ValueError(f"kernel must be positive semi-definite (smallest eigenvalue {lam[0]:.3g}, "
                         f"largest {lam[-1]:.3g})")
    keep = lam > 1e-12 * lam[-1]
    # Features in the eigenbasis: row i of G is y_i phi_i, with G G^T = Q (exact for
    # rank-deficient Q too). The primal is then the least-distance programme
    # min ||v|| s.t. G v >= 1, solved through one NNLS (Lawson & Hanson 1974, ch. 23).
    g_mat = vec[:, keep] * np.sqrt(lam[keep])[None, :]
    n = k.shape[0]
    e_mat = np.vstack([g_mat.T, np.ones((1, n))])
    f_vec = np.zeros(e_mat.shape[0])
    f_vec[-1] = 1.0
    u, _ = nnls(e_mat, f_vec, maxiter=50 * n)
    slack = 1.0 - float(np.sum(u))  # = -(last residual); 0 when the constraints are incompatible
    if slack <= 1e-10:
        raise ValueError("the points are not separable in the kernel's feature space "
                         "(the hard-margin problem has no feasible direction)")
    alpha = u / slack
    qa = q @ alpha
    # KKT of max sum(a) - a^T Q a / 2, a >= 0:  (Q a)_i >= 1, with equality where a_i > 0.
    if np.min(qa) < 1.0 - 1e3 * rtol or np.max(np.abs(qa[alpha > 0] - 1.0), initial=0.0) > 1e3 * rtol:
        raise ValueError("the points are not separable in the kernel's feature space "
                         f"(KKT check failed: min functional margin {np.min(qa):.3g})")
    total = float(np.sum(alpha))
    objective = total - 0.5 * float(alpha @ qa)
    norm = float(np.sqrt(max(float(alpha @ qa), 0.0)))
    support = np.flatnonzero(alpha > rtol * max(float(np.max(alpha)), np.finfo(float).tiny))
    return SVMResult(alpha, objective, 1.0 / norm, norm, support, qa)


def trace_approximation(kernel: Any) -> float:
    """The paper's approximation ``1 / (Tr K / N)`` of the SVM optimum ([trace] Sect. 4, eq. 4).

    Exact when ``K`` equals ``Tr K / N`` on same-class pairs and 0 on pairs of
    different classes.
    """
    k = _check_kernel(kernel)
    tr = float(np.trace(k))
    if tr <= 0:
        raise ValueError(f"kernel trace must be positive, got {tr}")
    return k.shape[0] / tr


def block_approximation(kernel: Any, labels: Any) -> float:
    """The dual optimum for the class-block-mean approximation of ``K``.

    With within-class block means ``a_+``, ``a_-`` and between-class mean ``c``,
    the dual (3) depends on ``a`` only through the class sums ``s_+``, ``s_-``:
    ``max s_+ + s_- - (a_+ s_+^2 + a_- s_-^2 - 2 c s_+ s_-) / 2``, whose optimum is
    ``(a_+ + a_- + 2 c) / (2 (a_+ a_- - c^2))`` (``= 1 / (a - c)`` when
    ``a_+ = a_- = a``; the paper's eq. (4) is the case ``c = 0``).

    If the stationary point has a negative class sum, the optimum lies on the
    boundary (one class carries all the dual weight) and is returned instead.

    Raises:
        ValueError: as :func:`hard_margin_svm`; also if a class is missing, or if the
            block means do not form a PSD kernel that separates the classes.
    """
    k = _check_kernel(kernel)
    y = _check_labels(labels, k.shape[0])
    pos, neg = y > 0, y < 0
    if not pos.any() or not neg.any():
        raise ValueError("labels must contain both classes for the block approximation")
    a_p = float(k[np.ix_(pos, pos)].mean())
    a_n = float(k[np.ix_(neg, neg)].mean())
    c = float(k[np.ix_(pos, neg)].mean())
    return _two_block_optimum(a_p, a_n, c)


def _two_block_optimum(a_p: float, a_n: float, c: float) -> float:
    """``max_{s >= 0} s_+ + s_- - (a_+ s_+^2 + a_- s_-^2 - 2 c s_+ s_-) / 2`` in closed form."""
    if a_p <= 0 or a_n <= 0 or a_p * a_n - c * c < -1e-12 * a_p * a_n:
        raise ValueError(f"block means a+={a_p:.3g}, a-={a_n:.3g}, c={c:.3g} are not a PSD block kernel")

    def value(s_p: float, s_n: float) -> float:
        return s_p + s_n - 0.5 * (a_p * s_p**2 + a_n * s_n**2 - 2 * c * s_p * s_n)

    candidates = [value(1.0 / a_p, 0.0), value(0.0, 1.0 / a_n)]  # one class carries all the weight
    det = a_p * a_n - c * c
    if det > 1e-12 * a_p * a_n:
        s_p, s_n = (a_n + c) / det, (a_p + c) / det  # stationary point of the concave quadratic
        if s_p >= 0 and s_n >= 0:
            candidates.append(value(s_p, s_n))
    elif c > 0:
        raise ValueError(f"block means a+={a_p:.3g}, a-={a_n:.3g}, c={c:.3g} do not separate the classes")
    return float(max(candidates))


def normalized_gd(learning_rate: float) -> optax.GradientTransformation:
    """Gradient descent with steps of fixed length: ``w <- w - eta g / ||g||`` (``||.||`` over all leaves).

    On the logistic loss of a separable problem the gradient shrinks like the
    loss, so plain gradient descent slows down exponentially in the margin and
    the direction ``w / ||w||`` reaches its limit only logarithmically in time
    (Lyu & Li 2020, Thm 4.1 and Sect. 6, who speed it up with a learning rate
    inversely proportional to the loss). Dividing by the gradient's norm is the
    same idea carried to the end: the weights move by ``eta`` per step, the norm
    grows about linearly, and the relative step ``eta / ||w||`` shrinks like
    ``1/t``. A step turns the direction by at most ``arcsin(eta / ||w||)``, so
    while the norm grows linearly the direction covers an angle of order
    ``log t`` in ``t`` steps: still slow, but on a clock of steps rather than
    of the exponentially shrinking loss (an experiment: Lyu & Li's theorem is
    about gradient flow and descent, not steps of fixed length). In chapter 7 it closes most of the gap between the
    network's margin and the eNTK-SVM's within thousands of steps (the
    equality of the paper's Thm 4.2 is approached, not reached). Pair it with
    :func:`ntkbook.train.log_logistic_loss`, whose gradient has the same
    direction and does not underflow in float32.

    Args:
        learning_rate: the length ``eta`` of every step (> 0).

    Returns:
        An ``optax`` transformation; a zero gradient gives a zero step.
    """
    eta = _checks.positive(learning_rate, "learning_rate")

    def update(grads, state, params=None):
        del params
        norm = optax.global_norm(grads)
        scale = jax.numpy.where(norm > 0, -eta / jax.numpy.where(norm > 0, norm, 1.0), 0.0)
        return jax.tree_util.tree_map(lambda g: scale * g, grads), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
