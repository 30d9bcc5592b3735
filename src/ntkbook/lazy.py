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

ScalarFn = Callable[[Any], jax.Array]


def _check_scalar(fn: ScalarFn, params: Any) -> None:
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
    g = gradient_norm(fn, params)
    h = hessian_operator_norm(fn, params)
    r = abs(float(_scalar(fn)(params)) - float(target))
    return LazyDiagnostics(grad_norm=g, hessian_norm=h, residual=r, kappa=r * h / g**2)
