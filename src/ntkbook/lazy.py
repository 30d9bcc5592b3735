"""How far a model is from its linearisation: the lazy-training diagnostics.

For a scalar output ``y(w)`` and target ``y_bar``, Chizat & Bach (2019) measure
the "inverse relative scale"

    kappa(w0) = |y(w0) - y_bar| * ||Hess_w y(w0)||_op / ||grad_w y(w0)||^2,

the relative change of the Jacobian needed to fit the target (the blog's
derivation, [blog] "When is the approximation accurate?"). For a one-hidden-layer
network in standard (LeCun) parameterisation, ``||grad y|| ~ sqrt(m)`` and
``||Hess y|| ~ O(1)``, so ``kappa ~ 1/m``: wide networks are nearly linear in
their parameters.

The Hessian's operator norm is its largest eigenvalue in magnitude, computed by
ARPACK (``scipy.sparse.linalg.eigsh``) on Hessian-vector products: the Hessian is
never formed.

After training, :func:`jacobian_change` measures how far the model actually moved
from its linearisation on the training inputs: the relative change of the Jacobian
``J = d f(X) / dw`` and of the empirical NTK ``Theta = J J^T`` (thesis eq. 2.50).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.sparse.linalg import LinearOperator, eigsh

from . import _checks

ScalarFn = Callable[[Any], jax.Array]


def _check_scalar(fn: ScalarFn, params: Any) -> None:
    if not callable(fn):
        raise TypeError(f"fn must be a function fn(params) -> scalar, got {type(fn).__name__}")
    bad = sum(int(np.sum(~np.isfinite(np.asarray(leaf)))) for leaf in jax.tree_util.tree_leaves(params)
              if np.issubdtype(np.asarray(leaf).dtype, np.inexact))
    if bad:
        raise ValueError(f"params contain {bad} NaN or inf entries")
    shape = jax.eval_shape(fn, params).shape
    if shape not in ((), (1,), (1, 1)):
        raise ValueError(f"fn must return a scalar (the output on one input), got shape {shape}")


def _scalar(fn: ScalarFn) -> ScalarFn:
    return lambda p: jnp.reshape(fn(p), ())


@functools.partial(jax.jit, static_argnums=0)
def _grad_norm(fn: ScalarFn, params: Any) -> jax.Array:
    g, _ = ravel_pytree(jax.grad(_scalar(fn))(params))
    return jnp.linalg.norm(g)


@functools.partial(jax.jit, static_argnums=0)
def _hvp(fn: ScalarFn, params: Any, tangent: Any) -> Any:
    return jax.jvp(jax.grad(_scalar(fn)), (params,), (tangent,))[1]


def gradient_norm(fn: ScalarFn, params: Any) -> float:
    """``||grad_w fn(w)||`` over all parameters.

    ``fn`` is a static argument of a compiled function: reuse the same ``fn``
    object across calls (e.g. across random seeds) to compile once.
    """
    _check_scalar(fn, params)
    return float(_grad_norm(fn, params))


def hessian_operator_norm(fn: ScalarFn, params: Any, *, tol: float = 1e-4) -> float:
    """Largest ``|eigenvalue|`` of ``Hess_w fn(w)``, from Hessian-vector products only.

    Args:
        fn: ``fn(params) -> scalar``.
        params: the point of evaluation (any pytree).
        tol: relative tolerance passed to ARPACK.

    ``fn`` is a static argument of the compiled Hessian-vector product: reuse
    the same ``fn`` object across calls to compile once.
    """
    _check_scalar(fn, params)
    tol = _checks.positive(tol, "tol")
    flat, unravel = ravel_pytree(params)

    def hvp(v: np.ndarray) -> np.ndarray:
        out, _ = ravel_pytree(_hvp(fn, params, unravel(jnp.asarray(v, flat.dtype))))
        return np.asarray(out, dtype=np.float64)

    n = flat.size
    if n == 1:
        return float(abs(hvp(np.ones(1))[0]))
    op = LinearOperator((n, n), matvec=hvp, dtype=np.float64)
    # A fixed start vector keeps ARPACK deterministic.
    v0 = np.ones(n) / np.sqrt(n)
    vals = eigsh(op, k=1, which="LM", tol=tol, v0=v0, return_eigenvectors=False)
    return float(abs(vals[0]))


class LazyDiagnostics(NamedTuple):
    """The three factors of kappa and kappa itself (Chizat & Bach 2019)."""

    grad_norm: float
    hessian_norm: float
    residual: float
    kappa: float


def diagnostics(fn: ScalarFn, params: Any, target: float) -> LazyDiagnostics:
    """``||grad y||``, ``||Hess y||_op``, ``|y - y_bar|`` and
    ``kappa = |y - y_bar| ||Hess y|| / ||grad y||^2`` at ``params``.

    Args:
        fn: ``fn(params) -> scalar``, the output on one input.
        params: initial parameters ``w0``.
        target: the label ``y_bar`` of that input.
    """
    _check_scalar(fn, params)
    _checks.finite(target, "target")
    g = gradient_norm(fn, params)
    h = hessian_operator_norm(fn, params)
    r = abs(float(_scalar(fn)(params)) - float(target))
    return LazyDiagnostics(grad_norm=g, hessian_norm=h, residual=r, kappa=r * h / g**2)


class JacobianChange(NamedTuple):
    """Relative change of the Jacobian and of the empirical NTK on a fixed input set.

    ``jacobian = ||J - J0||_F / ||J0||_F`` and ``kernel = ||Theta - Theta0||_F / ||Theta0||_F``
    with ``J = d f(X; w) / dw`` (all outputs of all inputs against all parameters)
    and ``Theta = J J^T`` (thesis Def. 2.12, eq. 2.50). Scalars for one network,
    arrays of shape ``(n_nets,)`` for an ensemble.
    """

    jacobian: Any
    kernel: Any


def _flat_jacobian(apply_fn: Callable, params: Any, x: jax.Array) -> jax.Array:
    jac = jax.jacrev(lambda p: jnp.ravel(apply_fn(p, x)))(params)
    leaves = jax.tree_util.tree_leaves(jac)
    n_out = leaves[0].shape[0]
    return jnp.concatenate([leaf.reshape(n_out, -1) for leaf in leaves], axis=1)


def _change(apply_fn: Callable, params0: Any, params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    j0 = _flat_jacobian(apply_fn, params0, x)
    j1 = _flat_jacobian(apply_fn, params, x)
    k0, k1 = j0 @ j0.T, j1 @ j1.T
    return (jnp.linalg.norm(j1 - j0) / jnp.linalg.norm(j0),
            jnp.linalg.norm(k1 - k0) / jnp.linalg.norm(k0))


_change_jit = jax.jit(_change, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _change_ensemble(apply_fn: Callable, params0: Any, params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    # One network at a time (lax.map, not vmap): memory stays at two Jacobians.
    return jax.lax.map(lambda pair: _change(apply_fn, pair[0], pair[1], x), (params0, params))


def _check_pair(params0: Any, params: Any) -> None:
    s0, s1 = jax.tree_util.tree_structure(params0), jax.tree_util.tree_structure(params)
    if s0 != s1:
        raise ValueError(f"params and params0 must have the same tree structure, got {s1} and {s0}")
    for a, b in zip(jax.tree_util.tree_leaves(params0), jax.tree_util.tree_leaves(params)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"params and params0 must have the same leaf shapes, got {jnp.shape(b)} and {jnp.shape(a)}")


def jacobian_change(apply_fn: Callable, params0: Any, params: Any, x: Any, *, ensemble: bool = False) -> JacobianChange:
    """Relative Frobenius change of the Jacobian and of the empirical NTK between ``params0`` and ``params``.

    Both are taken on the inputs ``x`` (e.g. the training set), with the Jacobian
    formed explicitly by reverse mode (``N k`` vector-Jacobian products): meant for
    small input sets. In the kernel regime the Jacobian moves by
    ``O(m^-1/2)`` and, for smooth activations, the NTK by ``O(1/m)``
    (Lee et al. 2019, Thm 2.1 bounds both by ``O(m^-1/2)``; Dyer & Gur-Ari 2020
    and Huang & Yau 2020 give ``O(1/m)`` for the kernel of smooth networks).

    Args:
        apply_fn: ``f(params, x)`` returning shape ``(N, k)``.
        params0: parameters at initialisation.
        params: parameters after training (same structure and shapes as ``params0``).
        x: inputs of shape ``(N, ...)`` with ``N >= 1``.
        ensemble: if true, every leaf of ``params0`` and ``params`` carries a
            leading axis of networks (as from ``models.init_ensemble``) and the
            result holds one value per network, computed one network at a time.

    Returns:
        A :class:`JacobianChange` (floats, or NumPy arrays of shape ``(n_nets,)``).

    Raises:
        ValueError: mismatched parameter trees, bad ``x`` or ensemble axes.
    """
    x = _checks.finite_array(x, "x")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (N, *features) with N >= 1, got {x.shape}")
    _check_pair(params0, params)
    _checks.boolean(ensemble, "ensemble")
    if not ensemble:
        _checks.network_inputs(apply_fn, params0, x[:1], "x")
        jac, ker = _change_jit(apply_fn, params0, params, x)
        return JacobianChange(jacobian=float(jac), kernel=float(ker))
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(params0)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"ensemble=True needs one leading network axis on every leaf, got sizes {sizes}")
    jac, ker = _change_ensemble(apply_fn, params0, params, x)
    return JacobianChange(jacobian=np.asarray(jac), kernel=np.asarray(ker))
