"""Scalar summaries: power-law fits, parameter norms and distances.

Every scaling claim in the book ("relative error ~ width^-1/2") is checked by
:func:`fit_power_law`, an ordinary least-squares fit on log-log axes with a
Student-t confidence interval for the exponent.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from . import _checks


class PowerLawFit(NamedTuple):
    """``y ~ prefactor * x ** exponent`` fitted on log-log axes."""

    exponent: float
    prefactor: float
    stderr: float
    ci_low: float
    ci_high: float
    r2: float

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the exponent's confidence interval."""
        return self.ci_low <= value <= self.ci_high


def fit_power_law(x: Any, y: Any, *, confidence: float = 0.95) -> PowerLawFit:
    """Least-squares fit of ``log y = log c + b log x`` with a t-interval for ``b``.

    The interval assumes independent, homoscedastic errors on the log scale;
    with repeated measurements per ``x`` pass all of them (not their means) so
    the interval reflects the scatter.

    Args:
        x, y: positive 1-D arrays of equal length (at least 3 points).
        confidence: coverage of the interval, in (0, 1).

    Raises:
        ValueError: non-positive or non-finite values, mismatched or too short inputs.
    """
    x = _checks.finite_values(x, "x", low=0.0, low_open=True).ravel()  # positive: a log-log fit
    y = _checks.finite_values(y, "y", low=0.0, low_open=True).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 3:
        raise ValueError(f"need at least 3 points for a fit with an interval, got {x.size}")
    confidence = _checks.probability(confidence, "confidence", open_low=True, open_high=True)
    if np.ptp(np.log(x)) == 0:
        raise ValueError("x must take at least two distinct values")
    res = stats.linregress(np.log(x), np.log(y))
    t = stats.t.ppf(0.5 + confidence / 2, df=x.size - 2)
    half = t * res.stderr
    return PowerLawFit(
        exponent=float(res.slope),
        prefactor=float(np.exp(res.intercept)),
        stderr=float(res.stderr),
        ci_low=float(res.slope - half),
        ci_high=float(res.slope + half),
        r2=float(res.rvalue**2),
    )


def correction_slope_allowance(x: Any, *, coefficient: float = 2.0, power: float = 0.5) -> float:
    """How far a finite-size correction can tilt a log-log slope fitted over ``x``.

    If a quantity is ``A x^b (1 + c x^-power + ...)`` with ``|c| <= coefficient``,
    the least-squares slope of ``log y`` on ``log x`` over the points ``x`` (repeats
    count, as in :func:`fit_power_law`) is ``b`` plus the slope of
    ``log(1 + c x^-power)``. This returns the largest ``|shift|`` for
    ``c = +-coefficient``: a tolerance for an exponent test fixed by the size of
    the correction, before looking at data. For wide networks the next order of
    the 1/width expansion is relative ``O(m^-1/2)`` (``power=0.5``).

    Args:
        x: positive sample points (e.g. the width of every network in the fit).
        coefficient: bound on ``|c|`` (positive).
        power: decay of the relative correction (positive).

    Raises:
        ValueError: non-positive or too few distinct ``x``; ``coefficient`` so large
            that ``1 - coefficient * x^-power <= 0`` at the smallest ``x``.
    """
    x = _checks.finite_values(x, "x", low=0.0, low_open=True).ravel()
    if x.size < 2 or np.ptp(np.log(x)) == 0:
        raise ValueError(f"x must hold at least two distinct values, got {np.unique(x).size} in {x.size} points")
    coefficient = _checks.positive(coefficient, "coefficient")
    power = _checks.positive(power, "power")
    if coefficient * x.min() ** -power >= 1:
        raise ValueError(f"coefficient {coefficient} makes 1 - c x^-{power} non-positive at x = {x.min()}")
    logx = np.log(x)
    shifts = [np.polyfit(logx, np.log1p(c * x**-power), 1)[0] for c in (coefficient, -coefficient)]
    return float(max(abs(v) for v in shifts))


def tree_norm(tree: Any) -> jax.Array:
    """Euclidean norm of all leaves of a pytree stacked into one vector."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def tree_distance(a: Any, b: Any) -> jax.Array:
    """``||a - b||`` over all leaves (the two pytrees must have the same structure)."""
    return tree_norm(jax.tree_util.tree_map(jnp.subtract, a, b))


def relative_change(params: Any, params0: Any) -> jax.Array:
    """``||w - w0|| / ||w0||`` with all parameters stacked into one vector."""
    return tree_distance(params, params0) / tree_norm(params0)


def relative_frobenius_error(a: Any, b: Any) -> jax.Array:
    """``||a - b||_F / ||b||_F`` (``b`` is the reference)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    for value, name in ((a, "a"), (b, "b")):
        if not _checks.is_traced(value):  # under jit/vmap the values are unknown
            _checks.finite_values(value, name)  # a check only; integer arrays are accepted, as before
    ref = jnp.linalg.norm(b.ravel())
    if not _checks.is_traced(ref) and not float(ref) > 0:
        raise ValueError(f"the reference b has norm {float(ref)}: a relative error needs a non-zero, finite reference")
    return jnp.linalg.norm((a - b).ravel()) / ref


def kernel_target_alignment(kernel: Any, targets: Any, *, centered: bool = False) -> jax.Array:
    """Alignment ``<K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)`` (thesis eq. 2.63; Cristianini et al. 2001).

    Args:
        kernel: ``(N, N)`` kernel matrix.
        targets: ``(N,)`` labels in {-1, +1} / regression targets, or ``(N, k)``
            (e.g. one-hot) targets; the ideal kernel is ``Y Y^T``.
        centered: centre both matrices first (``H K H`` with ``H = I - 11^T/N``),
            the variant of Cortes et al. (2012) that ignores constant offsets.

    Returns:
        A scalar in [-1, 1]; 1 means ``K`` is a positive multiple of ``Y Y^T``.
    """
    centered = _checks.boolean(centered, "centered")
    k = jnp.asarray(kernel)
    y = jnp.asarray(targets)
    if y.ndim == 1:
        y = y[:, None]
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel must be a square (N, N) matrix, got shape {k.shape}")
    if y.ndim != 2 or y.shape[0] != k.shape[0]:
        raise ValueError(f"targets must have shape ({k.shape[0]},) or ({k.shape[0]}, k), got {jnp.shape(targets)}")
    for value, name in ((k, "kernel"), (y, "targets")):
        if not _checks.is_traced(value):  # under jit/vmap the values are unknown
            _checks.finite_values(value, name)  # a check only; integer arrays are accepted, as before
    ideal = y @ y.T
    if centered:
        h = jnp.eye(k.shape[0]) - 1.0 / k.shape[0]
        k, ideal = h @ k @ h, h @ ideal @ h
    return jnp.sum(k * ideal) / (jnp.linalg.norm(k) * jnp.linalg.norm(ideal))


# --- kernel distance, kernel velocity and margins (chapters 06-07) ---
def _as_kernel(k: Any, name: str, *, output_blocks: bool = True) -> np.ndarray:
    # A finite float64 kernel, (N, N) or, where output_blocks, (N, N, k, k).
    k = _checks.finite_values(k, name)
    ranks = (2, 4) if output_blocks else (2,)
    if k.ndim not in ranks or k.shape[0] != k.shape[1] or (k.ndim == 4 and k.shape[2] != k.shape[3]):
        shapes = "(N, N) or (N, N, k, k)" if output_blocks else "(N, N)"
        raise ValueError(f"{name} must be a square {shapes} kernel, got shape {k.shape}")
    return k


def kernel_distance(k1: Any, k2: Any) -> float:
    """Kernel distance ``S(K1, K2) = 1 - <K1, K2>_F / (||K1||_F ||K2||_F)`` (Fort et al. 2020, eq. 4).

    One minus the cosine of the angle between the two kernels as vectors. It is
    blind to scale: ``S(K, c K) = 0`` for every ``c > 0``, so it is not a metric
    on kernels ([trace] Sect. 4, the motivation of Thm 4.3).

    Args:
        k1, k2: kernels of equal shape, ``(N, N)`` or ``(N, N, k, k)``.

    Returns:
        A float in ``[0, 2]`` (``[0, 1]`` for PSD kernels).

    Raises:
        ValueError: shapes differ, a kernel is not square, or a kernel is zero.
    """
    a, b = _as_kernel(k1, "k1"), _as_kernel(k2, "k2")
    if a.shape != b.shape:
        raise ValueError(f"kernels must have the same shape, got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a.ravel()), np.linalg.norm(b.ravel())
    if na == 0 or nb == 0:
        raise ValueError("kernel distance is undefined for a zero kernel")
    cos = float(np.dot(a.ravel(), b.ravel()) / (na * nb))
    return 1.0 - min(max(cos, -1.0), 1.0)


def kernel_velocity(kernels: Any, times: Any) -> np.ndarray:
    """Kernel velocity ``v(t_i) = S(K(t_i), K(t_{i+1})) / (t_{i+1} - t_i)`` (Fort et al. 2020).

    Args:
        kernels: a stack of kernels, shape ``(T, N, N)`` or ``(T, N, N, k, k)``.
        times: ``T`` strictly increasing times (steps or epochs).

    Returns:
        ``T - 1`` velocities, one per interval (assign them to the interval's start).
    """
    ks = _checks.finite_values(kernels, "kernels")
    t = _checks.finite_values(times, "times")
    if t.ndim != 1 or ks.ndim < 3 or ks.shape[0] != t.size or t.size < 2:
        raise ValueError(f"need T >= 2 kernels stacked on axis 0 and T times, got {ks.shape} and {t.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("times must be strictly increasing")
    return np.array([kernel_distance(ks[i], ks[i + 1]) / (t[i + 1] - t[i]) for i in range(t.size - 1)])


def _margins(outputs: Any, labels: Any) -> np.ndarray:
    # q_i = y_i f_i for scalar outputs and labels in {-1, +1}; f_{y_i} - max_{j != y_i} f_j for (N, k) outputs.
    f = _checks.finite_values(outputs, "outputs")
    y = np.asarray(labels)
    if f.ndim == 2 and f.shape[1] == 1:
        f = f[:, 0]
    if f.ndim == 1:
        if y.shape != f.shape or not np.all(np.isin(y, (-1, 1))):
            raise ValueError(f"for scalar outputs, labels must be {f.shape} values in {{-1, +1}}")
        return y * f
    if f.ndim != 2:
        raise ValueError(f"outputs must have shape (N,), (N, 1) or (N, k), got {f.shape}")
    y = _checks.labels(y, "labels", num_classes=f.shape[1])
    _checks.same_rows(f, "outputs", y, "labels")
    rows = np.arange(f.shape[0])
    other = f.copy()
    other[rows, y] = -np.inf
    return f[rows, y] - other.max(axis=1)


def normalized_margin(outputs: Any, labels: Any, params: Any, degree: int) -> float:
    """Normalised margin ``min_i q_i(w) / ||w||^L`` of an ``L``-homogeneous network (Lyu & Li 2020).

    ``q_i = y_i f(x_i)`` for scalar outputs and labels in ``{-1, +1}``, or
    ``f_{y_i}(x_i) - max_{j != y_i} f_j(x_i)`` for ``k`` outputs and integer
    labels. For a network with ``f(x; c w) = c^L f(x; w)`` (a bias-free ReLU net
    with ``L`` layers) this does not change when ``w`` is rescaled.

    Args:
        outputs: ``f(X; w)``, shape ``(N,)``, ``(N, 1)`` or ``(N, k)``.
        labels: ``(N,)`` labels as described above.
        params: the parameters ``w`` (any pytree).
        degree: the homogeneity order ``L``.
    """
    degree = _checks.positive_int(degree, "degree")
    return float(np.min(_margins(outputs, labels)) / float(tree_norm(params)) ** degree)


def smoothed_margin(outputs: Any, labels: Any, params: Any, degree: int) -> float:
    """Lyu & Li's smoothed normalised margin for the logistic loss (Lyu & Li 2020, Sect. 4.1).

    ``gamma_tilde = -log(exp(L) - 1) / ||w||^L`` with ``L = sum_i log(1 + exp(-q_i))``
    the summed logistic loss. Once every point is classified with ``L < log 2``,
    it lower-bounds :func:`normalized_margin`, tends to it as the loss goes to
    zero, and is non-decreasing under gradient flow (their Lemma 5.1 and Thm 4.1).
    Returns ``nan`` while ``L >= log 2``.
    """
    degree = _checks.positive_int(degree, "degree")
    q = _margins(outputs, labels)
    loss = float(np.sum(np.logaddexp(0.0, -q)))
    if loss >= np.log(2.0):
        return float("nan")
    return float(-np.log(np.expm1(loss)) / float(tree_norm(params)) ** degree)


class BlockFit(NamedTuple):
    """A kernel's best class-block-constant approximation: ``means[c, d]`` is the mean of
    the block of pairs with labels ``(c, d)``; ``fraction`` is the share of ``||K||_F^2``
    it explains (1 for an exactly block-constant kernel)."""

    classes: np.ndarray
    means: np.ndarray
    fraction: float


def block_constant_fit(kernel: Any, labels: Any) -> BlockFit:
    """Project an ``(N, N)`` kernel onto matrices constant on every class-pair block.

    The projection replaces each block ``{(i, j) : y_i = c, y_j = d}`` by its mean;
    it is orthogonal in the Frobenius inner product, so
    ``||K||^2 = ||P K||^2 + ||K - P K||^2`` and ``fraction = ||P K||^2 / ||K||^2``.
    [trace] Sect. 4 assumes a block-constant kernel to link the trace to the SVM margin.
    """
    k = _as_kernel(kernel, "kernel", output_blocks=False)
    y = np.asarray(labels)  # any class identifiers (np.unique sorts them)
    if y.shape != (k.shape[0],):
        raise ValueError(f"labels must have shape ({k.shape[0]},), got {y.shape}")
    classes, idx = np.unique(y, return_inverse=True)
    onehot = np.eye(classes.size)[idx]
    counts = onehot.sum(0)
    means = (onehot.T @ k @ onehot) / np.outer(counts, counts)
    proj = onehot @ means @ onehot.T
    total = float(np.sum(k**2))
    if total == 0:
        raise ValueError("kernel is zero")
    return BlockFit(classes, means, float(np.sum(proj**2) / total))


# --- neural collapse and kernel blocks (chapters 11-12) ---
# Conventions (ML layout, unlike ntkbook.collapse): ``features`` are (N, n), one row
# per sample; ``labels`` are integers 0..C-1 in any order; ``weights`` are the
# classifier's (C, n) matrix W and ``bias`` its (C,) vector, logits = W h + b.
# Everything is computed in float64 NumPy and returned as Python floats.


class BlockStatistics(NamedTuple):
    """Mean kernel value on the diagonal, within classes and between classes (thesis 3.2, eq. 23)."""

    diag: float
    within: float
    between: float


class CollapseMetrics(NamedTuple):
    """The four neural-collapse measures (Papyan et al. 2020; thesis 3.3, NC1-NC4); all 0 at collapse."""

    nc1: float
    nc2: float
    nc3: float
    nc4: float


def _labels(labels: Any, n: int, name: str = "labels") -> tuple[np.ndarray, int]:
    # n integer labels that take every value 0..C-1 (C >= 2), and C.
    y = _checks.labels(labels, name)
    if y.shape[0] != n:
        raise ValueError(f"{name} must hold one label per sample ({n}), got {y.shape[0]}")
    classes = np.unique(y)
    if not np.array_equal(classes, np.arange(classes.size)) or classes.size < 2:
        raise ValueError(f"{name} must take every value 0..C-1 with C >= 2, got {classes.tolist()}")
    return y, int(classes.size)


def _features(features: Any) -> np.ndarray:
    h = _checks.finite_values(features, "features")
    if h.ndim != 2 or h.shape[0] < 2:
        raise ValueError(f"features must have shape (N, n) with one row per sample, got {h.shape}")
    return h


def _class_means(h: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
    return np.stack([h[y == k].mean(axis=0) for k in range(c)])  # (C, n)


def _weights(weights: Any, c: int, n: int) -> np.ndarray:
    w = _checks.finite_values(weights, "weights")
    if w.shape != (c, n):
        raise ValueError(f"weights must have shape (C, n) = ({c}, {n}) (logits = W h + b), got {w.shape}")
    return w


def block_statistics(kernel: Any, labels: Any) -> BlockStatistics:
    """``Theta_d``, ``Theta_c``, ``Theta_n`` of thesis 3.2, eq. (23).

    ``Theta_d`` is the mean diagonal value, ``Theta_c`` the mean over classes of the
    mean value on pairs of *distinct* samples of that class, ``Theta_n`` the mean
    over classes of the mean value between that class and all other samples.

    Args:
        kernel: ``(N, N)`` kernel matrix (e.g. the eNTK traced over outputs).
        labels: ``(N,)`` integer classes ``0..C-1``, each with at least 2 samples.

    Raises:
        ValueError: non-square or non-finite kernel, bad labels, or a class with one sample.
    """
    k = _as_kernel(kernel, "kernel", output_blocks=False)
    y, c = _labels(labels, k.shape[0])
    within, between = [], []
    for cls in range(c):
        inside = y == cls
        size = int(inside.sum())
        if size < 2:
            raise ValueError(f"class {cls} has {size} sample; Theta_c needs at least 2 per class")
        block = k[np.ix_(inside, inside)]
        within.append((block.sum() - np.trace(block)) / (size * (size - 1)))
        between.append(k[np.ix_(inside, ~inside)].mean())
    return BlockStatistics(float(np.mean(np.diag(k))), float(np.mean(within)), float(np.mean(between)))


def nc1(features: Any, labels: Any) -> float:
    """Within-class variability relative to the between-class one: ``Tr(Sigma_W Sigma_B^+) / C``.

    The NC1 measure of Papyan et al. (2020), zero iff every feature equals its class
    mean (thesis 3.3, NC1), and invariant to rescaling the features.
    ``Sigma_W = 1/N sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``,
    ``Sigma_B = 1/C sum_c (mu_c - mu_G)(mu_c - mu_G)^T``.
    """
    h = _features(features)
    y, c = _labels(labels, h.shape[0])
    mu = _class_means(h, y, c)
    dev = h - mu[y]
    centred = mu - mu.mean(axis=0)
    sigma_w = dev.T @ dev / h.shape[0]
    sigma_b = centred.T @ centred / c
    # Sigma_B has rank <= C - 1; cut its pseudo-inverse at a relative 1e-10.
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / c)


def within_class_std(features: Any, labels: Any) -> float:
    """The standard deviation of the features within each class, averaged over classes and
    feature coordinates (the NC1 curve of thesis 3.3, Fig. 2c). Not scale-invariant."""
    h = _features(features)
    y, c = _labels(labels, h.shape[0])
    return float(np.mean([h[y == k].std(axis=0) for k in range(c)]))


def _centred_means(h: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
    mu = _class_means(h, y, c)
    return (mu - mu.mean(axis=0)).T  # (n, C): the columns <h>_c - <h>


def simplex_etf(num_classes: int) -> np.ndarray:
    """The Gram matrix of a simplex equiangular tight frame, ``C/(C-1) (I - 1 1^T / C)`` (NC2)."""
    c = _checks.positive_int(num_classes, "num_classes", minimum=2)
    return c / (c - 1) * (np.eye(c) - np.ones((c, c)) / c)


def nc2(features: Any, labels: Any) -> float:
    """Distance of the centred class means to a simplex ETF (thesis 3.3, Fig. 2d):
    ``|| M^T M / ||M^T M||_F - Phi / ||Phi||_F ||_F`` with ``M`` the centred class means
    (columns ``<h>_c - <h>``) and ``Phi`` the simplex ETF Gram matrix.

    Zero iff the centred means have equal norms and pairwise angles ``arccos(-1/(C-1))``.
    """
    h = _features(features)
    y, c = _labels(labels, h.shape[0])
    m = _centred_means(h, y, c)
    gram = m.T @ m
    etf = simplex_etf(c)
    return float(np.linalg.norm(gram / np.linalg.norm(gram) - etf / np.linalg.norm(etf)))


def nc3(features: Any, labels: Any, weights: Any) -> float:
    """Self-duality (thesis 3.3, NC3 and Fig. 2e): ``|| W^T / ||W||_F - M / ||M||_F ||_F``.

    ``M`` are the centred class means as in :func:`nc2`. The value lies in ``[0, 2]``;
    ``sqrt(2)`` means ``W^T`` and ``M`` are orthogonal.
    """
    h = _features(features)
    y, c = _labels(labels, h.shape[0])
    w = _weights(weights, c, h.shape[1])
    m = _centred_means(h, y, c)
    return float(np.linalg.norm(w.T / np.linalg.norm(w) - m / np.linalg.norm(m)))


def nc4(features: Any, labels: Any, weights: Any, bias: Any) -> float:
    """Fraction of samples on which the classifier ``argmax_c (W h + b)_c`` disagrees with the
    nearest-class-centre rule ``argmin_c ||h - <h>_c||`` (thesis 3.3, NC4)."""
    h = _features(features)
    y, c = _labels(labels, h.shape[0])
    w = _weights(weights, c, h.shape[1])
    b = _checks.finite_values(bias, "bias")
    if b.shape != (c,):
        raise ValueError(f"bias must have shape ({c},), got {b.shape}")
    mu = _class_means(h, y, c)
    dist = ((h[:, None, :] - mu[None]) ** 2).sum(-1)
    return float(np.mean(np.argmax(h @ w.T + b, axis=1) != np.argmin(dist, axis=1)))


def neural_collapse(features: Any, labels: Any, weights: Any, bias: Any) -> CollapseMetrics:
    """NC1-NC4 at once (see :func:`nc1` .. :func:`nc4`)."""
    return CollapseMetrics(nc1(features, labels), nc2(features, labels), nc3(features, labels, weights),
                           nc4(features, labels, weights, bias))


def _balanced(y: np.ndarray, c: int) -> int:
    counts = np.bincount(y, minlength=c)
    if np.any(counts != counts[0]) or counts[0] < 2:
        raise ValueError(f"the invariant needs balanced classes with at least 2 samples each, got counts {counts.tolist()}")
    return int(counts[0])


def invariant_terms(features: Any, labels: Any, weights: Any, kappas: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two sides of the invariant of thesis 3.3, eq. (26): ``(W^T W / m, S)`` with

    ``S = H1 (I - alpha 1 1^T) H1^T / mu_class + H2 H2^T / mu_single``,

    so that ``E = W^T W / m - S``. Computed from class statistics, without the basis
    ``Q`` of eq. (22): ``H1`` are the class means and
    ``H2 H2^T = 1/m sum_i (h_i - <h>_{y_i})(h_i - <h>_{y_i})^T``.

    Args:
        features: ``(N, n)`` last-layer features; classes must be balanced (``m`` each).
        labels: ``(N,)`` integer classes.
        weights: ``(C, n)`` classifier.
        kappas: ``(kappa_d, kappa_c, kappa_n)``, the feature kernel's block values
            (e.g. :func:`block_statistics` of the traced feature kernel).

    Raises:
        ValueError: unbalanced classes, kappas with ``kappa_d <= kappa_c`` or
            ``kappa_c <= kappa_n`` or ``kappa_n < 0``, bad shapes.
    """
    h = _features(features)
    y, c = _labels(labels, h.shape[0])
    m = _balanced(y, c)
    w = _weights(weights, c, h.shape[1])
    values = _checks.finite_values(kappas, "kappas")
    if values.shape != (3,):
        raise ValueError(f"kappas must be three numbers (kappa_d, kappa_c, kappa_n), got {kappas!r}")
    kd, kc, kn = (float(v) for v in values)
    if not kd > kc > kn >= 0:
        raise ValueError(f"kappas {(kd, kc, kn)} violate kappa_d > kappa_c > kappa_n >= 0 (thesis 3.3, Def. 3.1)")
    mu_s = kd - kc
    mu_c = mu_s + m * (kc - kn)
    alpha = kn * m / (mu_c + c * kn * m)
    mu = _class_means(h, y, c)  # rows are the columns of H1
    g = mu.sum(axis=0)[:, None]
    dev = h - mu[y]
    s = (mu.T @ mu - alpha * g @ g.T) / mu_c + dev.T @ dev / (m * mu_s)
    return w.T @ w / m, s


def invariant_norm(features: Any, labels: Any, weights: Any, kappas: Any) -> float:
    """``||E||_F`` for the invariant ``E`` of thesis 3.3, eq. (26) (Fig. 2a)."""
    ww, s = invariant_terms(features, labels, weights, kappas)
    return float(np.linalg.norm(ww - s))


def invariant_alignment(features: Any, labels: Any, weights: Any, kappas: Any) -> float:
    """Cosine ``<W^T W, S>_F / (||W^T W||_F ||S||_F)`` between the invariant's two terms (Fig. 2b).

    It is 1 exactly when ``W^T W`` is proportional to
    ``S = H1 (I - alpha 1 1^T) H1^T / mu_class + H2 H2^T / mu_single``, the relaxed
    assumption (28) of Thm 5.2 under which neural collapse follows. (For centred
    features ``S = H1 H1^T / mu_class + H2 H2^T / mu_single``: the thesis prints a
    minus sign before the ``H2`` term in eq. (28); the sign in eq. (26) is the one
    that makes ``E`` conserved.)
    """
    ww, s = invariant_terms(features, labels, weights, kappas)
    return float(np.sum(ww * s) / (np.linalg.norm(ww) * np.linalg.norm(s)))


# --- when a curve jumps and when it settles (chapter 08) ---
def _curve(steps: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    # Recorded steps (strictly increasing, returned as given) and finite float64 values of equal length.
    s = np.asarray(steps)
    _checks.finite_values(s, "steps")
    v = _checks.finite_values(values, "values")
    if s.ndim != 1 or v.shape != s.shape or s.size == 0:
        raise ValueError(f"steps and values must be 1-D of the same non-zero length, got {s.shape} and {v.shape}")
    if np.any(np.diff(s) <= 0):
        raise ValueError("steps must be strictly increasing")
    return s, v


def first_reaching(steps: Any, values: Any, threshold: float) -> int | None:
    """The first recorded step at which ``values >= threshold`` (``None`` if never).

    Used to date the train- and test-accuracy jumps of grokking ([trace] Sect. 5.2).
    """
    threshold = _checks.finite(threshold, "threshold")
    s, v = _curve(steps, values)
    hit = np.flatnonzero(v >= threshold)
    return int(s[hit[0]]) if hit.size else None


def settling_step(steps: Any, values: Any, rtol: float) -> int:
    """The first recorded step from which a curve stays within ``rtol`` of its final value.

    That is the smallest ``s_j`` with ``|v_i - v_end| <= rtol |v_end|`` for every
    ``i >= j``; a curve that only reaches its band at the last record settles
    there. This dates "the trace stabilises" in [trace] Sect. 5.2.

    Raises:
        ValueError: ``rtol`` not positive, bad shapes, non-increasing steps.
    """
    rtol = _checks.positive(rtol, "rtol")
    s, v = _curve(steps, values)
    outside = np.flatnonzero(np.abs(v - v[-1]) > rtol * abs(v[-1]))
    return int(s[outside[-1] + 1]) if outside.size else int(s[0])


class DecayRate(NamedTuple):
    """Fitted and predicted log-decay per step of one eigen-component of a residual."""

    index: int
    fitted: float
    predicted: float
    steps: int

    @property
    def relative_error(self) -> float:
        """``|fitted / predicted - 1|``."""
        return abs(self.fitted / self.predicted - 1.0)


def eigen_decay_rates(
    residuals: Any,
    kernel: Any,
    learning_rate: float,
    *,
    normalization: float | None = None,
    min_share: float = 0.1,
    efolds: float = 3.0,
    min_steps: int = 5,
) -> list[DecayRate]:
    """Per-step decay rates of a residual along the eigenvectors of a kernel (thesis eq. 2.60).

    Under gradient descent on the square loss ``(1 / 2n) sum (f - y)^2`` with a
    constant kernel ``K = sum_i lambda_i v_i v_i^T``, the components
    ``c_i(t) = v_i^T r_t`` of the residual ``r_t = f_t(X) - Y`` obey
    ``c_i(t) = c_i(0) (1 - eta lambda_i / n)^t`` (the discrete-time form of
    thesis eq. 2.60). For each component this fits ``log |c_i(t)|`` against
    ``t`` by least squares and returns it beside ``log |1 - eta lambda_i / n|``.

    A component is fitted only where the prediction is meaningful for a network
    whose kernel moves a little: it must carry at least ``min_share`` of the
    initial residual's norm (a smaller one is dominated by what leaks into it
    from the others when the eigenvectors turn), the window runs from step 1 to
    the step where the prediction has fallen by ``efolds`` e-folds (later, the
    leakage floor takes over), and the window must hold at least ``min_steps``
    steps and one predicted e-fold (else the rate is not resolved).

    Args:
        residuals: ``(T + 1, N)`` residuals at steps ``0 .. T``.
        kernel: ``(N, N)`` symmetric kernel on the training inputs (e.g. at initialisation).
        learning_rate: ``eta``.
        normalization: ``n`` in the loss (default ``N``).
        min_share: smallest ``|c_i(0)| / ||r_0||`` of a fitted component, in [0, 1).
        efolds: length of the fitting window in predicted e-folds (> 0).
        min_steps: fewest steps in a window (>= 2).

    Returns:
        One :class:`DecayRate` per fitted component, in order of decreasing eigenvalue
        (``index`` 0 is the largest eigenvalue).

    Raises:
        ValueError: bad shapes or out-of-range arguments.
    """
    r = _checks.finite_values(residuals, "residuals")
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"residuals must have shape (T + 1, N) with T >= 1, got {r.shape}")
    n_train = r.shape[1]
    # A kernel computed in float32 is symmetric only to rounding (~1e-7 of its scale).
    k = _checks.symmetric(_checks.finite_values(kernel, "kernel"), "kernel", rtol=1e-4)
    if k.shape != (n_train, n_train):
        raise ValueError(f"kernel must have shape ({n_train}, {n_train}), got {k.shape}")
    k = 0.5 * (k + k.T)
    learning_rate = _checks.positive(learning_rate, "learning_rate")
    norm = float(n_train) if normalization is None else _checks.positive(normalization, "normalization")
    min_share = _checks.probability(min_share, "min_share", open_high=True)
    efolds = _checks.positive(efolds, "efolds")
    min_steps = _checks.positive_int(min_steps, "min_steps", minimum=2)
    lam, vec = np.linalg.eigh(k)
    lam, vec = lam[::-1], vec[:, ::-1]
    comps = r @ vec
    t = np.arange(r.shape[0])
    r0 = np.linalg.norm(r[0])
    out = []
    for i in range(n_train):
        factor = abs(1.0 - learning_rate * lam[i] / norm)
        if not 0.0 < factor < 1.0 or abs(comps[0, i]) < min_share * r0:
            continue
        predicted = float(np.log(factor))
        window = (t >= 1) & (-predicted * t <= efolds)
        if window.sum() < min_steps or -predicted * t[window].max() < 1.0:
            continue
        c = np.abs(comps[window, i])
        if np.any(c == 0):
            continue
        fitted = float(np.polyfit(t[window], np.log(c), 1)[0])
        out.append(DecayRate(index=i, fitted=fitted, predicted=predicted, steps=int(window.sum())))
    return out


def median_upper_bound(values: Any, confidence: float = 0.95) -> float:
    """Distribution-free upper confidence bound for the median of i.i.d. values.

    The ``k``-th smallest of ``n`` values exceeds the median with probability
    ``P(Binomial(n, 1/2) <= k - 1)``; the bound is the smallest order statistic
    for which that probability reaches ``confidence`` (the sign-test interval).

    Args:
        values: 1-D array of finite values.
        confidence: one-sided coverage, in (0, 1).

    Raises:
        ValueError: empty or non-finite input, bad confidence, or too few values for
            the requested confidence (``n`` with ``1 - 2^-n < confidence``).
    """
    v = np.sort(_checks.finite_values(values, "values").ravel())
    if v.size == 0:
        raise ValueError("values must be a non-empty array of finite numbers")
    confidence = _checks.probability(confidence, "confidence", open_low=True, open_high=True)
    cover = stats.binom.cdf(np.arange(v.size), v.size, 0.5)  # P(B <= k - 1) for k = 1 .. n
    ok = np.nonzero(cover >= confidence)[0]
    if ok.size == 0:
        raise ValueError(f"{v.size} values cannot give a {confidence:.0%} upper bound for the median")
    return float(v[ok[0]])


def fit_power_law_within(x: Any, y: Any, groups: Any, *, confidence: float = 0.95) -> PowerLawFit:
    """Power-law exponent shared by several groups, each with its own prefactor.

    Fits ``log y = log c_g + b log x`` by least squares with one intercept per
    group ``g`` (a fixed-effects regression): the exponent is estimated from the
    variation *within* each group, so differences in level between groups (e.g.
    between random initialisations) do not widen its interval. The Student-t
    interval uses ``n - G - 1`` degrees of freedom for ``n`` points in ``G``
    groups. ``prefactor`` is the geometric mean of the group prefactors.

    Args:
        x, y: positive 1-D arrays of equal length.
        groups: 1-D array of group labels, same length.
        confidence: coverage of the interval, in (0, 1).

    Raises:
        ValueError: non-positive values, mismatched lengths, a group whose ``x`` does
            not vary, or too few points (``n - G - 1 < 1``).
    """
    x = _checks.finite_values(x, "x", low=0.0, low_open=True).ravel()  # positive: a log-log fit
    y = _checks.finite_values(y, "y", low=0.0, low_open=True).ravel()
    g = np.asarray(groups).ravel()
    if not x.shape == y.shape == g.shape:
        raise ValueError(f"x, y and groups must have the same length, got {x.size}, {y.size}, {g.size}")
    confidence = _checks.probability(confidence, "confidence", open_low=True, open_high=True)
    labels, idx = np.unique(g, return_inverse=True)
    dof = x.size - labels.size - 1
    if dof < 1:
        raise ValueError(f"need more points than groups + 1, got {x.size} points in {labels.size} groups")
    lx, ly = np.log(x), np.log(y)
    mx = np.bincount(idx, lx) / np.bincount(idx)
    my = np.bincount(idx, ly) / np.bincount(idx)
    cx, cy = lx - mx[idx], ly - my[idx]
    sxx = float(cx @ cx)
    if np.any(np.bincount(idx, cx**2) == 0):
        raise ValueError("x must take at least two distinct values in every group")
    slope = float(cx @ cy) / sxx
    resid = cy - slope * cx
    stderr = float(np.sqrt(resid @ resid / dof / sxx))
    half = stats.t.ppf(0.5 + confidence / 2, df=dof) * stderr
    ss_tot = float(cy @ cy)
    return PowerLawFit(
        exponent=slope,
        prefactor=float(np.exp(np.mean(my - slope * mx))),
        stderr=stderr,
        ci_low=slope - half,
        ci_high=slope + half,
        r2=1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else 1.0,
    )


def participation_ratio(samples: Any) -> float:
    """Effective number of independent coordinates of correlated data: ``(sum lam)^2 / sum lam^2``.

    ``lam`` are the eigenvalues of the correlation matrix of the columns of
    ``samples`` (rows are independent draws, columns are e.g. grid points). For
    ``p`` standard normal coordinates with that correlation matrix ``R``,
    ``sum_k z_k^2`` has mean ``p`` and variance ``2 ||R||_F^2 = 2 p^2 / nu``: the
    same two moments as ``(p / nu) chi^2_nu`` (the Welch-Satterthwaite
    approximation), so ``nu`` is the number of "effectively independent" z-scores.
    It lies in ``[1, p]``: ``p`` for uncorrelated columns, 1 for perfectly correlated ones.

    Args:
        samples: array of shape ``(n, p)``, ``n >= 2`` draws of ``p >= 1`` coordinates, each
            with non-zero sample variance.

    Raises:
        ValueError: wrong shape, fewer than two draws, non-finite values or a constant column.
    """
    x = _checks.finite_values(samples, "samples")
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"samples must have shape (n >= 2, p >= 1), got {x.shape}")
    sd = x.std(axis=0)
    if np.any(sd == 0):
        raise ValueError("every column needs a non-zero sample variance")
    z = (x - x.mean(axis=0)) / sd
    corr = z.T @ z / x.shape[0]
    # (tr R)^2 / tr(R^2) = p^2 / ||R||_F^2 for a correlation matrix
    return float(np.trace(corr) ** 2 / np.sum(corr * corr))


def rms_z_quantile(nu: float, level: float) -> float:
    """Quantile of the RMS of correlated standard normal z-scores with participation ratio ``nu``.

    Under the Welch-Satterthwaite approximation (:func:`participation_ratio`)
    ``mean(z_k^2) ~ chi^2_nu / nu``, so the ``level`` quantile of
    ``sqrt(mean(z_k^2))`` is ``sqrt(chi2.ppf(level, nu) / nu)``. Exact for ``nu``
    independent z-scores repeated equally often.

    Raises:
        ValueError: ``nu`` not positive and finite, or ``level`` outside (0, 1).
    """
    nu = _checks.positive(nu, "nu")
    level = _checks.probability(level, "level", open_low=True, open_high=True)
    return float(np.sqrt(stats.chi2.ppf(level, nu) / nu))


def extrapolate_log_over_l(depths: Any, values: Any) -> tuple[float, float, float]:
    """Limit of a sequence with corrections ``(a log L + b) / L``, from three depths.

    Solves ``r(L_i) = r_inf + (a log L_i + b) / L_i`` for ``i = 1, 2, 3`` exactly
    and returns ``(r_inf, a, b)``. If the true sequence has a further term
    ``e(L)``, the error of ``r_inf`` is ``sum_i w_i e(L_i)``, with ``w`` the first
    row of the inverse of the 3x3 system (:func:`extrapolation_weights`).

    Args:
        depths: three distinct positive depths.
        values: the sequence at those depths.

    Raises:
        ValueError: not three distinct positive finite depths, or non-finite values.
    """
    extrapolation_weights(depths)  # validates the depths
    r = _checks.finite_values(values, "values")
    if r.shape != (3,):
        raise ValueError(f"values must be three finite numbers, got {values!r}")
    L = np.asarray(depths, dtype=float)
    design = np.stack([np.ones(3), np.log(L) / L, 1.0 / L], axis=1)
    r_inf, a, b = np.linalg.solve(design, r)
    return float(r_inf), float(a), float(b)


def extrapolation_weights(depths: Any) -> np.ndarray:
    """Weights ``w`` with ``r_inf = w @ r(L)`` in :func:`extrapolate_log_over_l`.

    They sum to 1 and annihilate ``log L / L`` and ``1 / L``; ``|w| @ |e(L)|``
    bounds the error that a neglected term ``e(L)`` leaves in the limit.
    """
    L = _checks.finite_values(depths, "depths", low=0.0, low_open=True)
    if L.shape != (3,) or np.unique(L).size != 3:
        raise ValueError(f"depths must be three distinct positive numbers, got {depths!r}")
    design = np.stack([np.ones(3), np.log(L) / L, 1.0 / L], axis=1)
    return np.linalg.inv(design)[0]


def paired_z(a: Any, b: Any) -> float:
    """Mean of the paired differences ``a - b`` in units of its standard error.

    ``z = mean(d) / (sd(d) / sqrt(n))`` with ``d = a - b`` and the sample standard
    deviation (``ddof=1``): the statistic of the paired t-test
    (``scipy.stats.ttest_rel(a, b).statistic``). The chapters compare it with a
    threshold fixed in advance (e.g. ``z > 3``, one-sided).

    Args:
        a, b: arrays of the same shape holding the paired measurements (flattened);
            at least 2 pairs, all finite.

    Raises:
        ValueError: mismatched shapes, fewer than 2 pairs, non-finite values, or
            differences that are all equal (zero spread: the standard error is 0).
    """
    a = _checks.finite_values(a, "a").astype(np.float64)
    b = _checks.finite_values(b, "b").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (one pair per entry), got {a.shape} and {b.shape}")
    d = (a - b).ravel()
    if d.size < 2:
        raise ValueError(f"a and b must hold at least 2 pairs for a standard error, got {d.size}")
    sd = float(d.std(ddof=1))
    if not sd > 0:
        raise ValueError("the differences a - b have zero spread: the standard error is 0 and z is undefined")
    return float(d.mean() / (sd / np.sqrt(d.size)))
