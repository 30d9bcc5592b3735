"""Block-structured kernels and the gradient flow that drives neural collapse.

This module implements the model of Seleznova et al., "Neural (Tangent Kernel)
Collapse" (NeurIPS 2023; thesis section 3.3), with the thesis's notation:

- ``C`` classes with ``m`` training samples each, ``N = C m``, and the samples
  **sorted by class** (samples ``(c-1) m .. c m - 1`` belong to class ``c``);
- last-layer features ``H`` of shape ``(n, N)`` (one column per sample), a
  classifier ``W`` of shape ``(C, n)`` and biases ``b`` of shape ``(C,)``, so the
  logits are ``f(X) = W H + b 1_N^T`` (eq. 1), and one-hot labels ``Y`` ``(C, N)``;
- the square loss ``L = 1/2 ||f(X) - Y||_F^2`` (eq. 4) and gradient flow on it.

A kernel has a *block structure* with values ``(lambda_1, lambda_2, lambda_3)``
(Def. 3.1, eq. 5) if it equals ``lambda_1`` on the diagonal, ``lambda_2`` on pairs
of distinct samples of one class and ``lambda_3`` on pairs from different classes,
with ``lambda_1 > lambda_2 > lambda_3 >= 0``. Assumption 3.2 gives the NTK the
values ``(gamma_d, gamma_c, gamma_n)`` and the last-layer feature kernel the
values ``(kappa_d, kappa_c, kappa_n)``. Under it, the features, weights and
biases follow the closed system of Thm 4.1 (eq. 19), or, after splitting the
features into class means ``H1`` and within-class deviations ``H2`` (eqs. 21-24),
the system of Thm 5.1 (eq. 25), which conserves the matrix ``E`` of eq. (26).

Two typos of the thesis text are corrected here (each checked by a unit test):
the proof's eq. (40) writes ``-m (R1 H1^T - W H2 H2^T)`` for ``dW/dt`` where
eq. (25) and a direct computation give ``+``; and ``mu_single``, ``mu_class`` are
the two *smallest* eigenvalues of the feature kernel (Table 1), not the largest.

Integration uses diffrax (Kidger 2021) with an adaptive Runge-Kutta method whose
tolerances are exposed, so that the conservation of ``E`` can be checked against
the tolerance. Use float64 (``jax.experimental.enable_x64()``) for tight tolerances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import diffrax

from . import _checks


# ------------------------------------------------------------------ containers
class BlockValues(NamedTuple):
    """The three values of a block-structured kernel (Def. 3.1): on the diagonal,
    within a class (distinct samples), between classes."""

    diag: float
    within: float
    between: float


class BlockSpectrum(NamedTuple):
    """Eigen-decomposition of a block-structured ``N x N`` kernel (thesis 3.3, Table 1).

    ``eigenvalues = (lambda_single, lambda_class, lambda_global)`` with
    ``multiplicities = (N - C, C - 1, 1)``; ``bases`` are matching orthonormal
    bases of the three eigenspaces, of shapes ``(N, N - C)``, ``(N, C - 1)`` and
    ``(N, 1)``.
    """

    eigenvalues: tuple[float, float, float]
    multiplicities: tuple[int, int, int]
    bases: tuple[np.ndarray, np.ndarray, np.ndarray]


class FlowConstants(NamedTuple):
    """Constants of the dynamics (Thm 5.1): ``mu_single = kappa_d - kappa_c``,
    ``mu_class = mu_single + m (kappa_c - kappa_n)`` and
    ``alpha = kappa_n m / (mu_class + C kappa_n m)``."""

    mu_single: float
    mu_class: float
    alpha: float


class FullState(NamedTuple):
    """State of the system (19): features ``H (n, N)``, weights ``W (C, n)``, biases ``b (C,)``."""

    H: jax.Array
    W: jax.Array
    b: jax.Array


class ReducedState(NamedTuple):
    """State of the system (25): class means ``H1 (n, C)``, within-class part
    ``H2 (n, N - C)`` (eq. 23), weights ``W (C, n)`` and biases ``b (C,)``."""

    H1: jax.Array
    H2: jax.Array
    W: jax.Array
    b: jax.Array


class Trajectory(NamedTuple):
    """A solution: ``states`` has the type of the initial state with a leading time axis."""

    ts: np.ndarray
    states: Any
    num_steps: int


# ---------------------------------------------------------------------- checks
def _layout(num_classes: Any, per_class: Any) -> tuple[int, int]:
    return _checks.positive_int(num_classes, "num_classes", 2), _checks.positive_int(per_class, "per_class", 2)


def check_block_values(values: Sequence[float], name: str = "values") -> BlockValues:
    """Return ``values`` as :class:`BlockValues` after checking Def. 3.1's ordering.

    Raises:
        ValueError: unless ``diag > within > between >= 0`` (all finite).
    """
    try:
        d, c, n = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be three numbers (diag, within, between), got {values!r}") from None
    if not np.all(np.isfinite([d, c, n])):
        raise ValueError(f"{name} must be finite, got {(d, c, n)}")
    if not d > c > n >= 0:
        raise ValueError(
            f"{name} = (diag={d:g}, within={c:g}, between={n:g}) violate the block structure of Def. 3.1, "
            "which needs diag > within > between >= 0"
        )
    return BlockValues(d, c, n)


def balanced_layout(labels: Any) -> tuple[int, int]:
    """``(C, m)`` for integer labels sorted by class with ``m`` samples in each of ``C`` classes.

    Raises:
        ValueError: labels not 1-D integers ``0..C-1``, unbalanced, or not sorted by class.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a non-empty 1-D integer array, got dtype {y.dtype} and shape {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if not np.array_equal(classes, np.arange(classes.size)):
        raise ValueError(f"labels must take the values 0..C-1, got {classes.tolist()}")
    if classes.size < 2 or np.any(counts != counts[0]) or counts[0] < 2:
        raise ValueError(
            f"the block-structure theory needs balanced classes with at least 2 samples each; "
            f"got class counts {counts.tolist()}"
        )
    c, m = int(classes.size), int(counts[0])
    if not np.array_equal(y, np.repeat(np.arange(c), m)):
        raise ValueError("labels must be sorted by class (all of class 0 first, then class 1, ...)")
    return c, m


# ------------------------------------------------------------ labels and bases
def label_matrix(num_classes: int, per_class: int) -> np.ndarray:
    """One-hot labels ``Y`` of shape ``(C, N)`` for class-sorted samples (eq. 4)."""
    c, m = _layout(num_classes, per_class)
    return np.kron(np.eye(c), np.ones((1, m)))


def _helmert(k: int) -> np.ndarray:
    """An orthonormal basis ``(k, k-1)`` of the vectors orthogonal to ``1_k``.

    Column ``j`` is ``(1, ..., 1, -j, 0, ..., 0) / sqrt(j (j + 1))`` with ``j`` ones.
    """
    q = np.zeros((k, k - 1))
    for j in range(1, k):
        q[:j, j - 1] = 1.0
        q[j, j - 1] = -float(j)
        q[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return q


def label_basis(num_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The orthogonal matrix ``Q = [Q1, Q2]`` of the SVD of the labels (eqs. 21-22).

    ``Q1 = I_C (x) 1_m / sqrt(m)`` ``(N, C)`` and ``Q2 = I_C (x) Q2~`` ``(N, N - C)``, where
    ``Q2~`` ``(m, m - 1)`` is an orthonormal basis orthogonal to ``1_m`` (we use the
    Helmert basis; any choice gives the same ``H2 H2^T``).
    """
    c, m = _layout(num_classes, per_class)
    q1 = np.kron(np.eye(c), np.ones((m, 1))) / np.sqrt(m)
    q2 = np.kron(np.eye(c), _helmert(m))
    return q1, q2


def split_features(H: Any, num_classes: int, per_class: int) -> tuple[jax.Array, jax.Array]:
    """``H1 = H Q1 / sqrt(m)`` (the class means) and ``H2 = H Q2 / sqrt(m)`` (eqs. 23-24)."""
    c, m = _layout(num_classes, per_class)
    H = jnp.asarray(H)
    if H.ndim != 2 or H.shape[1] != c * m:
        raise ValueError(f"H must have shape (n, {c * m}) for {c} classes of {m}, got {H.shape}")
    q1, q2 = label_basis(c, m)
    scale = 1.0 / np.sqrt(m)
    return H @ jnp.asarray(q1 * scale, H.dtype), H @ jnp.asarray(q2 * scale, H.dtype)


def merge_features(H1: Any, H2: Any) -> jax.Array:
    """Inverse of :func:`split_features`: ``H = sqrt(m) [H1, H2] Q^T``."""
    H1, H2 = jnp.asarray(H1), jnp.asarray(H2)
    c, m = _reduced_layout(H1, H2)
    q1, q2 = label_basis(c, m)
    return np.sqrt(m) * (H1 @ jnp.asarray(q1.T, H1.dtype) + H2 @ jnp.asarray(q2.T, H2.dtype))


def _reduced_layout(H1: jax.Array, H2: jax.Array) -> tuple[int, int]:
    if H1.ndim != 2 or H2.ndim != 2 or H1.shape[0] != H2.shape[0]:
        raise ValueError(f"H1 (n, C) and H2 (n, N - C) must be matrices with n rows, got {H1.shape}, {H2.shape}")
    c = H1.shape[1]
    if c < 2 or H2.shape[1] % c:
        raise ValueError(f"H2 must have a multiple of C={c} columns (C (m - 1)), got {H2.shape[1]}")
    return c, H2.shape[1] // c + 1


# --------------------------------------------------------------- block kernels
def block_kernel(values: Sequence[float], num_classes: int, per_class: int) -> np.ndarray:
    """The ``N x N`` kernel with a block structure (Def. 3.1, eq. 5) on class-sorted samples.

    ``K = (d - c) I + (c - n) Y^T Y + n 1 1^T`` for ``values = (d, c, n)``.

    Raises:
        ValueError: values violating ``d > c > n >= 0``, or fewer than 2 classes / samples.
    """
    d, w, b = check_block_values(values)
    c, m = _layout(num_classes, per_class)
    y = label_matrix(c, m)
    n_total = c * m
    return (d - w) * np.eye(n_total) + (w - b) * (y.T @ y) + b * np.ones((n_total, n_total))


def block_eigenvalues(values: Sequence[float], num_classes: int, per_class: int) -> tuple[float, float, float]:
    """``(lambda_single, lambda_class, lambda_global)`` of Table 1:
    ``d - c``, ``d - c + m (c - n)`` and ``d - c + m (c - n) + N n``."""
    d, w, b = check_block_values(values)
    c, m = _layout(num_classes, per_class)
    single = d - w
    klass = single + m * (w - b)
    return single, klass, klass + c * m * b


def block_eigendecomposition(values: Sequence[float], num_classes: int, per_class: int) -> BlockSpectrum:
    """Eigenvalues, multiplicities and orthonormal eigenbases of a block kernel (Table 1).

    The eigenspaces are: vectors that sum to zero within every class
    (``lambda_single``, multiplicity ``N - C``), class-wise constant vectors that
    sum to zero overall (``lambda_class``, ``C - 1``), and ``1_N`` (``lambda_global``).
    Under Def. 3.1 ``lambda_single < lambda_class <= lambda_global``.

    Raises:
        ValueError: as :func:`block_kernel`.

    >>> spec = block_eigendecomposition((1.0, 0.5, 0.1), num_classes=3, per_class=4)
    >>> spec.eigenvalues, spec.multiplicities
    ((0.5, 2.1, 3.3), (9, 2, 1))
    """
    c, m = _layout(num_classes, per_class)
    lam = block_eigenvalues(values, c, m)
    q1, q2 = label_basis(c, m)
    klass = q1 @ _helmert(c)
    glob = np.ones((c * m, 1)) / np.sqrt(c * m)
    return BlockSpectrum(lam, (c * (m - 1), c - 1, 1), (q2, klass, glob))


def table1_eigenvectors(num_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (non-orthogonal) eigenvectors exactly as listed in Table 1, as columns.

    ``v_i^c`` ``(N, N)``: ``(m - 1)`` at sample ``i`` of class ``c``, ``-1`` at the other
    samples of that class, 0 elsewhere, divided by ``m - 1`` (they span the
    ``N - C``-dimensional ``lambda_single`` space); ``v_c`` ``(N, C)``: ``C - 1`` on
    class ``c``, ``-1`` elsewhere, divided by ``C - 1``; ``v_0 = 1_N`` ``(N, 1)``.
    """
    c, m = _layout(num_classes, per_class)
    single = np.kron(np.eye(c), (m * np.eye(m) - np.ones((m, m))) / (m - 1))
    klass = (c * np.kron(np.eye(c), np.ones((m, 1))) - np.ones((c * m, c))) / (c - 1)
    return single, klass, np.ones((c * m, 1))


def block_projection(kernel: Any, num_classes: int, per_class: int) -> np.ndarray:
    """The block-structured kernel closest to ``kernel`` in Frobenius norm.

    Averaging over the diagonal, the within-class and the between-class entries
    is the orthogonal projection onto the span of the three indicator matrices
    (they have disjoint supports). No ordering check: the average of a real
    kernel need not satisfy Def. 3.1.
    """
    c, m = _layout(num_classes, per_class)
    k = np.asarray(kernel, dtype=float)
    n_total = c * m
    if k.shape != (n_total, n_total):
        raise ValueError(f"kernel must have shape ({n_total}, {n_total}), got {k.shape}")
    same = np.kron(np.eye(c), np.ones((m, m))).astype(bool)
    eye = np.eye(n_total, dtype=bool)
    d = k[eye].mean()
    w = k[same & ~eye].mean()
    b = k[~same].mean()
    return np.where(eye, d, np.where(same, w, b))


def compressed_spectra(kernel: Any, num_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues of ``kernel`` compressed to each eigenspace of Table 1: ``eig(B_s^T K B_s)``.

    ``B_s`` are the orthonormal bases of :func:`block_eigendecomposition`, in the
    order (single, class, global). For a block-structured kernel every compressed
    spectrum is a single repeated value, the block eigenvalue; for any symmetric
    kernel their means equal the eigenvalues of :func:`block_projection`'s kernel
    (the mean of ``eig(B^T K B)`` is ``tr(B^T K B) / dim``), so the block statistics
    of eq. (23) are the subspace-averaged decay rates of the real kernel.
    """
    c, m = _layout(num_classes, per_class)
    k = np.asarray(kernel, dtype=float)
    if k.shape != (c * m, c * m):
        raise ValueError(f"kernel must have shape ({c * m}, {c * m}), got {k.shape}")
    k = 0.5 * (k + k.T)
    q1, q2 = label_basis(c, m)
    bases = (q2, q1 @ _helmert(c), np.ones((c * m, 1)) / np.sqrt(c * m))
    return tuple(np.linalg.eigvalsh(b.T @ k @ b) for b in bases)


def output_block_norms(kernel: Any) -> np.ndarray:
    """Frobenius norms ``||Theta_{k,s}(X)||_F`` of the output blocks of a full eNTK.

    Thesis 3.3, eqs. (8)-(9) move each output's residual by its own block
    ``Theta_{k,k}(X)`` and assume the cross-output blocks ``k != s`` vanish (their
    size is looked at in Fig. 1c-d). Traced kernels average the diagonal blocks and
    cannot show the others; this returns the ``(k, k)`` matrix of all block norms.

    Args:
        kernel: ``(N, N, k, k)`` kernel, e.g. ``kernels.empirical_ntk(..., trace_axes=())``.

    Raises:
        ValueError: a kernel that is not finite or not of shape ``(N, N, k, k)``.
    """
    k = _checks.finite_values(kernel, "kernel")
    if k.ndim != 4 or k.shape[0] != k.shape[1] or k.shape[2] != k.shape[3]:
        raise ValueError(f"kernel must have shape (N, N, k, k), got {k.shape}")
    return np.sqrt(np.einsum("ijks,ijks->ks", k, k))


# ------------------------------------------------------------------ residuals
def residuals(W: Any, H: Any, b: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(R, R_class, R_global)`` of eqs. (16)-(18) for class-sorted, balanced samples.

    ``R = W H + b 1^T - Y``, ``R_class = R Y^T Y / m`` (class means of the residual,
    repeated ``m`` times), ``R_global = R 1 1^T / N``. The number of classes is
    ``W.shape[0]``.

    Raises:
        ValueError: inconsistent shapes, or ``N`` not a multiple of ``C``.
    """
    W, H, b = jnp.asarray(W), jnp.asarray(H), jnp.asarray(b)
    c, m = _full_layout(H, W, b)
    y = jnp.asarray(label_matrix(c, m), H.dtype)
    r = W @ H + b[:, None] - y
    r_class = jnp.repeat(r.reshape(c, c, m).mean(axis=2), m, axis=1)
    r_global = jnp.broadcast_to(r.mean(axis=1, keepdims=True), r.shape)
    return r, r_class, r_global


def residual_components(R: Any, num_classes: int, per_class: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Split residuals ``R (k, N)`` (or ``(N,)``) along the three eigenspaces of Table 1.

    Returns ``(global, class, single)`` = ``(R_global, R_class - R_global, R - R_class)``,
    mutually orthogonal, summing to ``R``. Under a block kernel's linear dynamics they
    decay at ``lambda_global``, ``lambda_class`` and ``lambda_single`` (eqs. 13-15).
    """
    c, m = _layout(num_classes, per_class)
    r = jnp.asarray(R)
    vec = r.ndim == 1
    r = r[None] if vec else r
    if r.ndim != 2 or r.shape[1] != c * m:
        raise ValueError(f"R must have shape (k, {c * m}) or ({c * m},), got {jnp.shape(R)}")
    r_class = jnp.repeat(r.reshape(r.shape[0], c, m).mean(axis=2), m, axis=1)
    r_global = jnp.broadcast_to(r.mean(axis=1, keepdims=True), r.shape)
    out = (r_global, r_class - r_global, r - r_class)
    return tuple(o[0] for o in out) if vec else out


def _full_layout(H: jax.Array, W: jax.Array, b: jax.Array) -> tuple[int, int]:
    if H.ndim != 2 or W.ndim != 2 or b.ndim != 1:
        raise ValueError(f"need H (n, N), W (C, n), b (C,); got shapes {H.shape}, {W.shape}, {b.shape}")
    c = W.shape[0]
    if W.shape[1] != H.shape[0] or b.shape[0] != c:
        raise ValueError(f"shapes do not match: H {H.shape}, W {W.shape}, b {b.shape}")
    if c < 2 or H.shape[1] % c or H.shape[1] // c < 2:
        raise ValueError(
            f"balanced classes needed: N={H.shape[1]} samples must be C={c} classes of m >= 2 samples each"
        )
    return c, H.shape[1] // c


# ------------------------------------------------------------------- dynamics
def flow_constants(kappas: Sequence[float], num_classes: int, per_class: int) -> FlowConstants:
    """``mu_single``, ``mu_class`` and ``alpha`` of Thm 5.1 from the feature kernel's block values.

    ``mu_single`` and ``mu_class`` are the two smallest eigenvalues of the feature
    kernel (Table 1 with ``kappa`` in place of ``gamma``).

    Raises:
        ValueError: ``kappas`` violating Def. 3.1.
    """
    kd, kc, kn = check_block_values(kappas, "kappas")
    c, m = _layout(num_classes, per_class)
    mu_s = kd - kc
    mu_c = mu_s + m * (kc - kn)
    return FlowConstants(mu_s, mu_c, kn * m / (mu_c + c * kn * m))


def rhs_full(state: FullState, kappas: Sequence[float], *, train_bias: bool = True) -> FullState:
    """Right-hand side of Thm 4.1, eq. (19):

    ``dH/dt = -W^T [(kd - kc) R + (kc - kn) m R_class + kn N R_global]``,
    ``dW/dt = -R H^T``, ``db/dt = -R_global 1_N`` (zero if ``train_bias=False``,
    a classifier whose biases are held fixed).
    """
    H, W, b = state
    kd, kc, kn = kappas
    c, m = W.shape[0], H.shape[1] // W.shape[0]
    r, r_class, r_global = residuals(W, H, b)
    drive = (kd - kc) * r + (kc - kn) * m * r_class + kn * (c * m) * r_global
    db = -r_global.sum(axis=1) if train_bias else jnp.zeros_like(b)
    return FullState(-W.T @ drive, -r @ H.T, db)


def rhs_reduced(state: ReducedState, kappas: Sequence[float], *, train_bias: bool = True) -> ReducedState:
    """Right-hand side of Thm 5.1, eq. (25), with ``R1 = W H1 + b 1_C^T - I_C``:

    ``dH1/dt = -W^T R1 (mu_class I + kn m 1 1^T)``, ``dH2/dt = -mu_single W^T W H2``,
    ``dW/dt = -m (R1 H1^T + W H2 H2^T)``, ``db/dt = -m R1 1_C``.
    """
    H1, H2, W, b = state
    kd, kc, kn = kappas
    c = H1.shape[1]
    m = H2.shape[1] // c + 1
    mu_s = kd - kc
    mu_c = mu_s + m * (kc - kn)
    r1 = W @ H1 + b[:, None] - jnp.eye(c, dtype=H1.dtype)
    wr = W.T @ r1
    dh1 = -(mu_c * wr + kn * m * wr.sum(axis=1, keepdims=True))
    dh2 = -mu_s * (W.T @ (W @ H2))
    dw = -m * (r1 @ H1.T + (W @ H2) @ H2.T)
    db = -m * r1.sum(axis=1) if train_bias else jnp.zeros_like(b)
    return ReducedState(dh1, dh2, dw, db)


def reduce_state(state: FullState) -> ReducedState:
    """Map ``(H, W, b)`` to ``(H1, H2, W, b)`` (eq. 23)."""
    H, W, b = (jnp.asarray(a) for a in state)
    c, m = _full_layout(H, W, b)
    H1, H2 = split_features(H, c, m)
    return ReducedState(H1, H2, W, b)


def expand_state(state: ReducedState) -> FullState:
    """Map ``(H1, H2, W, b)`` back to ``(H, W, b)``."""
    H1, H2, W, b = (jnp.asarray(a) for a in state)
    return FullState(merge_features(H1, H2), W, b)


def invariant(W: Any, H1: Any, H2: Any, kappas: Sequence[float]) -> jax.Array:
    """The conserved ``n x n`` matrix of Thm 5.1, eq. (26):

    ``E = W^T W / m - H1 (I - alpha 1 1^T) H1^T / mu_class - H2 H2^T / mu_single``.
    Works on a trajectory too (leading time axes are broadcast).
    """
    W, H1, H2 = jnp.asarray(W), jnp.asarray(H1), jnp.asarray(H2)
    c = H1.shape[-1]
    if H1.ndim < 2 or H2.ndim != H1.ndim or c < 1 or H2.shape[-1] % c or H2.shape[:-1] != H1.shape[:-1] \
            or W.shape[-1] != H1.shape[-2] or W.shape[-2] != c:
        raise ValueError(
            f"invariant needs H1 (..., n, C), H2 (..., n, C (m - 1)) and W (..., C, n) with the same n; "
            f"got H1 {H1.shape}, H2 {H2.shape}, W {W.shape}")
    m = H2.shape[-1] // c + 1
    mu_s, mu_c, alpha = flow_constants(kappas, c, m)
    mt = lambda a: jnp.swapaxes(a, -1, -2)  # noqa: E731
    gm = H1.sum(axis=-1, keepdims=True)  # C * (global mean of h)
    h1_term = H1 @ mt(H1) - alpha * gm @ mt(gm)
    return mt(W) @ W / m - h1_term / mu_c - H2 @ mt(H2) / mu_s


def _check_state(state: Any) -> Any:
    if isinstance(state, FullState):
        H, W, b = (jnp.asarray(a) for a in state)
        _full_layout(H, W, b)
        return FullState(H, W, b)
    if isinstance(state, ReducedState):
        H1, H2, W, b = (jnp.asarray(a) for a in state)
        c, _ = _reduced_layout(H1, H2)
        if W.shape != (c, H1.shape[0]) or b.shape != (c,):
            raise ValueError(f"W must be ({c}, {H1.shape[0]}) and b ({c},), got {W.shape}, {b.shape}")
        return ReducedState(H1, H2, W, b)
    raise TypeError(f"state must be a FullState (eq. 19) or a ReducedState (eq. 25), got {type(state).__name__}")


def integrate(
    state0: FullState | ReducedState,
    kappas: Sequence[float],
    ts: Any,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    train_bias: bool = True,
    max_steps: int = 200_000,
) -> Trajectory:
    """Integrate the block-structured gradient flow (eq. 19 or eq. 25) with diffrax.

    The system is chosen by the type of ``state0``: :class:`FullState` integrates
    eq. (19) for ``(H, W, b)``, :class:`ReducedState` integrates eq. (25) for
    ``(H1, H2, W, b)``. The solver is diffrax's ``Tsit5`` (5th-order explicit
    Runge-Kutta) with a PID step-size controller; the local error per step is kept
    below ``atol + rtol |y|``.

    Args:
        state0: initial state.
        kappas: ``(kappa_d, kappa_c, kappa_n)`` of the feature kernel (Def. 3.1 ordering).
        ts: increasing save times, starting at ``t0 = ts[0]`` (>= 0).
        rtol, atol: tolerances of the step-size controller (positive).
        train_bias: ``False`` holds ``b`` fixed (a classifier without trainable biases).
        max_steps: solver step budget (raises if exceeded).

    Returns:
        A :class:`Trajectory` with states of the same type as ``state0``.

    Raises:
        ValueError / TypeError: bad state, kappas, times or tolerances.
    """
    state0 = _check_state(state0)
    kap = check_block_values(kappas, "kappas")
    ts = np.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0) or ts[0] < 0:
        raise ValueError(f"ts must be an increasing 1-D array of at least 2 finite non-negative times, got {ts}")
    rtol, atol = _checks.positive(rtol, "rtol"), _checks.positive(atol, "atol")
    train_bias = _checks.boolean(train_bias, "train_bias")
    max_steps = _checks.positive_int(max_steps, "max_steps")
    for name, leaf in zip(type(state0)._fields, state0):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"state0.{name} must be a floating-point array, got dtype {leaf.dtype}")
        if not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(f"state0.{name} contains NaN or inf")
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(state0))
    rhs = rhs_full if isinstance(state0, FullState) else rhs_reduced
    kap_arr = jnp.asarray(kap, dtype)
    sol = _solve(rhs, bool(train_bias), int(max_steps), state0, kap_arr, jnp.asarray(ts, dtype),
                 jnp.asarray(rtol, dtype), jnp.asarray(atol, dtype))
    return Trajectory(ts, sol.ys, int(sol.stats["num_steps"]))


def _vector_field(rhs, train_bias):
    def field(t, y, args):
        return rhs(y, args, train_bias=train_bias)

    return field


_SOLVERS: dict[tuple, Any] = {}


def _solve(rhs, train_bias, max_steps, state0, kappas, ts, rtol, atol):
    key = (rhs, train_bias, max_steps)
    if key not in _SOLVERS:
        term = diffrax.ODETerm(_vector_field(rhs, train_bias))

        @jax.jit
        def run(y0, kap, times, rt, at):
            return diffrax.diffeqsolve(
                term, diffrax.Tsit5(), t0=times[0], t1=times[-1], dt0=None, y0=y0, args=kap,
                saveat=diffrax.SaveAt(ts=times),
                stepsize_controller=diffrax.PIDController(rtol=rt, atol=at),
                max_steps=max_steps,
            )

        _SOLVERS[key] = run
    return _SOLVERS[key](state0, kappas, ts, rtol, atol)


# ------------------------------------------------------------ initial states
def balanced_state(
    key: jax.Array,
    kappas: Sequence[float],
    *,
    num_classes: int,
    per_class: int,
    feature_dim: int,
    feature_scale: float = 1.0,
    bias: float | None = None,
    centered: bool = True,
    rank: int | None = None,
    dtype: Any = jnp.float64,
) -> ReducedState:
    """A random initial state with zero invariant ``E = 0`` (the assumption of Thm 5.2).

    ``E = 0`` needs ``W^T W = m S`` with
    ``S = H1 (I - alpha 1 1^T) H1^T / mu_class + H2 H2^T / mu_single``; since ``W``
    has rank ``<= C``, the features must span at most ``C`` dimensions. We draw
    features ``H = U Z`` in a random ``C``-dimensional subspace ``U`` of ``R^n``
    (``Z`` Gaussian, scaled by ``feature_scale``), optionally remove their global
    mean, and set ``W = sqrt(m) O S^{1/2}`` restricted to ``U`` with a random
    orthogonal ``O``.

    Args:
        key: PRNG key.
        kappas: the feature kernel's block values.
        num_classes, per_class: ``C`` and ``m``.
        feature_dim: ``n > C``.
        feature_scale: standard deviation of the feature coordinates.
        bias: initial biases ``b = bias * 1_C``; default ``1 / C`` (the optimal value
            for centred features, which keeps them centred for all time).
        centered: remove the global feature mean (``<h> = 0``).
        rank: dimension of the feature subspace ``U`` (default ``C``, at most ``C``).
        dtype: floating dtype of the state.

    Returns:
        A :class:`ReducedState`.
    """
    c, m = _layout(num_classes, per_class)
    n = _checks.positive_int(feature_dim, "feature_dim", c + 1)
    key = _checks.key(key)
    feature_scale = _checks.positive(feature_scale, "feature_scale")
    if bias is not None:
        bias = _checks.finite(bias, "bias")
    centered = _checks.boolean(centered, "centered")
    r = c if rank is None else _checks.positive_int(rank, "rank")
    if r > c:
        raise ValueError(f"rank must be at most C={c} (W has rank <= C, and E = 0 forces the features into its row space)")
    mu_s, mu_c, alpha = flow_constants(kappas, c, m)
    ku, kz, ko = jax.random.split(key, 3)
    u, _ = np.linalg.qr(np.asarray(jax.random.normal(ku, (n, c)), dtype=float))
    z = feature_scale * np.asarray(jax.random.normal(kz, (c, c * m)), dtype=float)
    z[r:] = 0.0
    H = u @ z
    if centered:
        H = H - H.mean(axis=1, keepdims=True)
    q1, q2 = label_basis(c, m)
    H1, H2 = H @ q1 / np.sqrt(m), H @ q2 / np.sqrt(m)
    g = H1.sum(axis=1, keepdims=True)
    s = (H1 @ H1.T - alpha * g @ g.T) / mu_c + H2 @ H2.T / mu_s
    t = u.T @ s @ u  # S = U T U^T
    lam, vec = np.linalg.eigh(0.5 * (t + t.T))
    root = vec @ np.diag(np.sqrt(np.clip(lam, 0.0, None))) @ vec.T
    o, _ = np.linalg.qr(np.asarray(jax.random.normal(ko, (c, c)), dtype=float))
    W = np.sqrt(m) * o @ root @ u.T
    b = np.full(c, 1.0 / c if bias is None else float(bias))
    return ReducedState(*(jnp.asarray(a, dtype) for a in (H1, H2, W, b)))


# ------------------------------------------------------------ along a solution
def misalign_readout(state: ReducedState, key: jax.Array, strength: float) -> ReducedState:
    """Add to ``W`` a random part that the features cannot see: ``W + strength * V``.

    The rows of ``V`` are Gaussian, restricted to the orthogonal complement of the
    span of the features and of the rows of ``W`` (so ``V H = 0`` and ``W V^T = 0``),
    and scaled so that ``||V||_F = sqrt(C)``. The features and biases are unchanged;
    the invariant (26) gains ``(strength (W^T V + V^T W) + strength^2 V^T V) / m``.
    ``W V^T = 0`` does not make the ``n x n`` cross term ``W^T V`` vanish; it is
    indefinite, so the new ``E`` has negative eigenvalues and leaves the positive
    semi-definite case in which thesis 3.3, Remark (5) after Thm 5.2 still gives NC1.
    ``W^T W`` is no longer proportional to the feature terms (eq. 28).

    Raises:
        ValueError: negative ``strength``, or no dimensions left outside the features
            and ``W`` (``feature_dim`` too small).
    """
    state = _check_state(state)
    if not isinstance(state, ReducedState):
        raise TypeError("misalign_readout needs a ReducedState (H1, H2, W, b)")
    if not (np.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    H1, H2, W, b = (np.asarray(a, dtype=float) for a in state)
    seen = np.hstack([H1, H2, W.T])  # (n, ...)
    u, sv, _ = np.linalg.svd(seen, full_matrices=True)
    rank = int(np.sum(sv > 1e-10 * max(sv.max(), 1e-300)))
    perp = u[:, rank:]
    if perp.shape[1] == 0:
        raise ValueError(f"feature_dim n={seen.shape[0]} leaves no direction outside the features and W")
    c = W.shape[0]
    g = np.asarray(jax.random.normal(key, (c, perp.shape[1])), dtype=float) @ perp.T
    v = g * np.sqrt(c) / np.linalg.norm(g)
    dtype = jnp.asarray(state.W).dtype
    return state._replace(W=jnp.asarray(W + float(strength) * v, dtype))


def collapse_along(traj: Trajectory) -> dict[str, np.ndarray]:
    """NC1-NC4 (:mod:`ntkbook.metrics`) at every saved time of a solution of eq. (25) or (19).

    Returns a dict of arrays over ``traj.ts``: ``nc1, nc2, nc3, nc4``,
    ``within_std`` (the within-class standard deviation of the features) and the
    three numbers of :func:`collapse_geometry`: ``spread``, ``equinorm``, ``equiangular``.
    """
    states = traj.states
    if isinstance(states, ReducedState):
        H = jax.vmap(merge_features)(states.H1, states.H2)
    elif isinstance(states, FullState):
        H = states.H
    else:
        raise TypeError(f"traj.states must be FullState or ReducedState, got {type(states).__name__}")
    from . import metrics  # local import: metrics does not depend on this module

    H, W, b = np.asarray(H, float), np.asarray(states.W, float), np.asarray(states.b, float)
    c = W.shape[1]
    labels = np.repeat(np.arange(c), H.shape[-1] // c)
    out = {k: [] for k in ("nc1", "nc2", "nc3", "nc4", "within_std", "spread", "equinorm", "equiangular")}
    for h, w, bb in zip(H, W, b):
        vals = metrics.neural_collapse(h.T, labels, w, bb)
        for k, v in zip(("nc1", "nc2", "nc3", "nc4"), vals):
            out[k].append(v)
        out["within_std"].append(metrics.within_class_std(h.T, labels))
        for k, v in zip(("spread", "equinorm", "equiangular"), collapse_geometry(h.T, labels)):
            out[k].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


class CollapseGeometry(NamedTuple):
    """NC1 and NC2 in the forms that the trace measures hide (see :func:`collapse_geometry`)."""

    spread: float
    equinorm: float
    equiangular: float


def collapse_geometry(features: Any, labels: Any) -> CollapseGeometry:
    """Within-class spread (NC1) and the two halves of NC2, equal norms and equal angles.

    With class means ``mu_c``, global mean ``mu_G`` and centred means ``m_c = mu_c - mu_G``:

    - ``spread = mean_i ||h_i - mu_{y_i}||^2 / mean_c ||m_c||^2``: NC1 as the thesis
      states it (3.3, NC1, ``||h(x) - <h>_c|| -> 0``), relative to the size of the means.
      Unlike ``Tr(Sigma_W Sigma_B^+) / C`` it sees spread outside the span of the means.
    - ``equinorm = std_c ||m_c|| / mean_c ||m_c||`` (Papyan et al. 2020, Fig. 2).
    - ``equiangular = mean_{c != c'} |cos(m_c, m_c') + 1 / (C - 1)|`` (Papyan et al.
      2020, Fig. 4): zero iff every pair of centred means meets at the simplex angle.

    All three are zero at collapse and invariant to rescaling the features.

    Args:
        features: ``(N, n)`` features, one row per sample.
        labels: ``(N,)`` integer classes ``0..C-1`` (``C >= 2``, any class sizes >= 1).

    Raises:
        ValueError: bad shapes or labels, non-finite features, or a centred class mean of norm 0.
    """
    h = _checks.finite_values(features, "features")
    if h.ndim != 2 or h.shape[0] < 2:
        raise ValueError(f"features must have shape (N, n) with one row per sample, got {h.shape}")
    y = _checks.labels(labels, "labels")
    if y.shape != (h.shape[0],):
        raise ValueError(f"labels must hold one label per sample ({h.shape[0]}), got shape {y.shape}")
    c = int(y.max()) + 1
    if c < 2 or y.min() < 0 or np.unique(y).size != c:
        raise ValueError(f"labels must take every value 0..C-1 with C >= 2, got {np.unique(y).tolist()}")
    mu = np.stack([h[y == k].mean(axis=0) for k in range(c)])
    cm = mu - mu.mean(axis=0)
    norms = np.linalg.norm(cm, axis=1)
    if np.any(norms == 0):
        raise ValueError("a centred class mean is zero: the angles of NC2 are undefined")
    spread = float(np.mean(np.sum((h - mu[y]) ** 2, axis=1)) / np.mean(norms**2))
    cos = (cm @ cm.T) / np.outer(norms, norms)
    off = ~np.eye(c, dtype=bool)
    return CollapseGeometry(spread, float(norms.std() / norms.mean()),
                            float(np.mean(np.abs(cos[off] + 1.0 / (c - 1)))))
