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
        ValueError: non-positive values, mismatched or too short inputs.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 3:
        raise ValueError(f"need at least 3 points for a fit with an interval, got {x.size}")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(x * y)):
        raise ValueError("x and y must be finite and positive for a log-log fit")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
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
    return jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm(b.ravel())


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
    k = jnp.asarray(kernel)
    y = jnp.asarray(targets)
    if y.ndim == 1:
        y = y[:, None]
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel must be a square (N, N) matrix, got shape {k.shape}")
    if y.ndim != 2 or y.shape[0] != k.shape[0]:
        raise ValueError(f"targets must have shape ({k.shape[0]},) or ({k.shape[0]}, k), got {jnp.shape(targets)}")
    ideal = y @ y.T
    if centered:
        h = jnp.eye(k.shape[0]) - 1.0 / k.shape[0]
        k, ideal = h @ k @ h, h @ ideal @ h
    return jnp.sum(k * ideal) / (jnp.linalg.norm(k) * jnp.linalg.norm(ideal))
