"""Empirical and infinite-width neural tangent kernels, kernel regression and flow.

The empirical NTK of a network ``f(w, x)`` with outputs in ``R^k`` is
``Theta(x, x')_{ab} = <d f_a(x)/dw, d f_b(x')/dw>`` (thesis Def. 2.12, eq. 2.50).

- :func:`empirical_ntk` computes it through neural-tangents (Novak et al. 2022,
  "Fast Finite Width Neural Tangent Kernel") with the structured-derivatives
  implementation by default (the fastest on CPU by two orders of magnitude on an
  MLP, see appendix A), falling back to NTK-vector products if that raises; large
  inputs are computed in blocks.
- :func:`ntk_reference` is our own ten-line plain-JAX eNTK from ``jax.vjp`` and
  ``jax.jvp``: the independent oracle the tests compare neural-tangents against.
- :func:`infinite_kernel` evaluates the infinite-width NNGP/NTK of a ``stax`` model.
- :func:`kernel_regression` and :func:`gradient_flow_mse` give the predictions of
  kernel gradient flow on the square loss in closed form (thesis eqs. 2.60, 2.61).

Output conventions follow neural-tangents: a full kernel has shape
``(N1, N2, k, k)``; ``trace_axes=(-1,)`` replaces the ``k x k`` block by the
*mean* of its diagonal, giving ``(N1, N2)``; ``diagonal_axes=(0,)`` keeps only
``x1 == x2`` pairs, giving ``(N1, k, k)`` or ``(N1,)``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _compat, timing

_compat.apply()
import neural_tangents as nt  # noqa: E402

_compat.patch_predict()

Implementation = Literal["auto", "structured", "jacobian", "ntvp", "reference"]
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "structured", "jacobian", "ntvp", "reference")
_NT_CODES = {
    "jacobian": nt.NtkImplementation.JACOBIAN_CONTRACTION,
    "ntvp": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
    "structured": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
}
KernelGet = Literal["ntk", "nngp"]


# --------------------------------------------------------------------------- checks
def _check_inputs(x1: Any, x2: Any, apply_fn: Callable | None = None, params: Any = None
                  ) -> tuple[jax.Array, jax.Array | None]:
    """Finite float inputs of shape ``(N, *features)``; with ``apply_fn``, inputs its ``params`` accept."""
    x1 = _checks.finite_array(x1, "x1")
    if x1.ndim < 2 or x1.shape[0] < 1:
        raise ValueError(f"x1 must have shape (N, *features) with N >= 1, got {x1.shape}")
    if x2 is not None:
        x2 = _checks.finite_array(x2, "x2")
        if x2.ndim != x1.ndim or x2.shape[1:] != x1.shape[1:] or x2.shape[0] < 1:
            raise ValueError(f"x2 must have shape (N2, {', '.join(map(str, x1.shape[1:]))}), got {x2.shape}")
    if apply_fn is not None:
        if not callable(apply_fn):
            raise TypeError(f"apply_fn must be a function f(params, x), got {type(apply_fn).__name__}")
        _checks.network_inputs(apply_fn, params, x1[:1], "x1")
    return x1, x2


def _check_axes(trace_axes: tuple[int, ...], diagonal_axes: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    trace_axes, diagonal_axes = tuple(trace_axes), tuple(diagonal_axes)
    if trace_axes not in ((), (-1,), (1,)):
        raise ValueError(f"trace_axes must be () or (-1,) for (N, k) outputs, got {trace_axes}")
    if diagonal_axes not in ((), (0,)):
        raise ValueError(f"diagonal_axes must be () or (0,), got {diagonal_axes}")
    return ((-1,) if trace_axes else ()), diagonal_axes


def _check_batch_size(batch_size: int | None) -> int | None:
    return None if batch_size is None else _checks.positive_int(batch_size, "batch_size")


# ----------------------------------------------------------------- plain-JAX reference
@functools.partial(jax.jit, static_argnums=0)
def _ntk_reference_full(apply_fn: Callable, params: Any, x1: jax.Array, x2: jax.Array) -> jax.Array:
    # Theta = J1 J2^T, one column per output coordinate c of f(x2):
    # J2^T e_c by reverse mode (vjp), then J1 (J2^T e_c) by forward mode (jvp).
    out2, vjp2 = jax.vjp(lambda p: apply_fn(p, x2), params)

    def column(cotangent):
        (tangent,) = vjp2(cotangent)
        return jax.jvp(lambda p: apply_fn(p, x1), (params,), (tangent,))[1]

    n2, k = out2.shape
    basis = jnp.eye(n2 * k, dtype=out2.dtype).reshape(n2 * k, n2, k)
    cols = jax.vmap(column)(basis)  # (n2 * k, n1, k)
    return cols.reshape(n2, k, -1, k).transpose(2, 0, 3, 1)  # (n1, n2, k, k)


def ntk_reference(
    apply_fn: Callable,
    params: Any,
    x1: Any,
    x2: Any = None,
    *,
    trace_axes: tuple[int, ...] = (),
    diagonal_axes: tuple[int, ...] = (),
) -> jax.Array:
    """The empirical NTK from first principles: ``J(x1) J(x2)^T`` via ``vjp`` then ``jvp``.

    Independent of neural-tangents; used as the oracle in the tests and shown in
    chapter 02. Cost: one VJP and one JVP per output coordinate of ``f(x2)``.

    Args:
        apply_fn: ``f(params, x)`` returning shape ``(N, k)``.
        params: parameters (any pytree).
        x1, x2: inputs ``(N1, ...)`` and ``(N2, ...)``; ``x2=None`` means ``x1``.
        trace_axes, diagonal_axes: as in :func:`empirical_ntk`.

    Returns:
        The kernel, shaped as described in the module docstring.
    """
    x1, x2 = _check_inputs(x1, x2, apply_fn, params)
    trace_axes, diagonal_axes = _check_axes(trace_axes, diagonal_axes)
    if diagonal_axes and x2 is not None:
        raise ValueError("diagonal_axes=(0,) needs x2=None (only x1 == x2 pairs are computed)")
    out_shape = jax.eval_shape(apply_fn, params, x1[:1]).shape
    if len(out_shape) != 2:
        raise ValueError(f"apply_fn must return shape (N, k); got {out_shape} for one input")
    if diagonal_axes:
        # K(x_i, x_i) for each i separately (keeps memory linear in N).
        full = jax.lax.map(lambda xi: _ntk_reference_full(apply_fn, params, xi[None], xi[None])[0, 0], x1)
        return jnp.trace(full, axis1=-2, axis2=-1) / full.shape[-1] if trace_axes else full
    full = _ntk_reference_full(apply_fn, params, x1, x1 if x2 is None else x2)
    return jnp.trace(full, axis1=-2, axis2=-1) / full.shape[-1] if trace_axes else full


# ---------------------------------------------------------------- neural-tangents eNTK
@functools.lru_cache(maxsize=64)
def _nt_kernel_fn(apply_fn: Callable, implementation: str, trace_axes: tuple, diagonal_axes: tuple, vmap_axes: Any):
    fn = nt.empirical_ntk_fn(
        apply_fn,
        trace_axes=trace_axes,
        diagonal_axes=diagonal_axes,
        vmap_axes=vmap_axes,
        implementation=_NT_CODES[implementation],
    )
    return jax.jit(fn)


def _blockwise(fn: Callable, x1: jax.Array, x2: jax.Array | None, batch_size: int, diagonal: bool) -> jax.Array:
    """Evaluate ``fn(a, b)`` on blocks of ``batch_size`` rows and assemble the result.

    Inputs are padded (with copies of their first row) to a multiple of
    ``batch_size`` so every block has the same shape and compiles once. For
    ``x2=None`` only blocks on or above the diagonal are computed and mirrored.
    """

    def pad(x):
        n = x.shape[0]
        n_pad = -n % batch_size
        if n_pad:
            x = jnp.concatenate([x, jnp.repeat(x[:1], n_pad, axis=0)], axis=0)
        return x.reshape((-1, batch_size) + x.shape[1:]), n

    b1, n1 = pad(x1)
    if diagonal:
        parts = [np.asarray(fn(b1[i], None)) for i in range(b1.shape[0])]
        return jnp.asarray(np.concatenate(parts, axis=0)[:n1])
    symmetric = x2 is None
    b2, n2 = (b1, n1) if symmetric else pad(x2)
    out = None
    for i in range(b1.shape[0]):
        for j in range(i if symmetric else 0, b2.shape[0]):
            blk = np.asarray(fn(b1[i], None) if (symmetric and i == j) else fn(b1[i], b2[j]))
            if out is None:
                out = np.empty((b1.shape[0] * batch_size, b2.shape[0] * batch_size) + blk.shape[2:], blk.dtype)
            rows, cols = slice(i * batch_size, (i + 1) * batch_size), slice(j * batch_size, (j + 1) * batch_size)
            out[rows, cols] = blk
            if symmetric and i != j:
                # K(x', x)_{ab} = K(x, x')_{ba}: transpose both the sample and the output axes.
                out[cols, rows] = np.swapaxes(blk, 0, 1) if blk.ndim == 2 else blk.transpose(1, 0, 3, 2)
    return jnp.asarray(out[:n1, :n2])


def empirical_ntk(
    apply_fn: Callable,
    params: Any,
    x1: Any,
    x2: Any = None,
    *,
    implementation: Implementation = "auto",
    trace_axes: tuple[int, ...] = (),
    diagonal_axes: tuple[int, ...] = (),
    vmap_axes: Any = None,
    batch_size: int | None = None,
) -> jax.Array:
    """The empirical NTK ``Theta(x1, x2)`` of ``apply_fn`` at ``params`` (thesis eq. 2.50).

    Args:
        apply_fn: ``f(params, x)`` returning shape ``(N, k)``.
        params: parameters (any pytree).
        x1: inputs of shape ``(N1, ...)``.
        x2: inputs of shape ``(N2, ...)``; ``None`` means ``x1`` (cheaper: symmetric).
        implementation: ``"structured"`` (structured derivatives), ``"jacobian"``
            (Jacobian contraction), ``"ntvp"`` (NTK-vector products),
            ``"reference"`` (:func:`ntk_reference`), or ``"auto"``: structured
            derivatives, falling back to NTK-vector products with a warning if
            neural-tangents cannot apply its structure rules to the model.
        trace_axes: ``()`` for the full ``(N1, N2, k, k)`` kernel, ``(-1,)`` for
            the mean over the ``k`` diagonal output pairs ``(N1, N2)``.
        diagonal_axes: ``(0,)`` to compute only ``Theta(x_i, x_i)`` (needs ``x2=None``).
        vmap_axes: passed to neural-tangents (``0`` for models that treat batch
            entries independently, such as MLPs and CNNs without batch norm; faster).
        batch_size: if given, compute the kernel in blocks of this many rows and
            columns (constant memory per block, same result).

    Returns:
        The kernel as a JAX array (module docstring for shapes).

    Raises:
        ValueError: bad shapes, axes, implementation or batch size.

    >>> net = models.mlp([256], 10)
    >>> params = models.init_params(net, jax.random.PRNGKey(0), (-1, 64))
    >>> empirical_ntk(net.apply_fn, params, x[:8]).shape
    (8, 8, 10, 10)
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    x1, x2 = _check_inputs(x1, x2, apply_fn, params)
    trace_axes, diagonal_axes = _check_axes(trace_axes, diagonal_axes)
    batch_size = _check_batch_size(batch_size)
    diagonal = bool(diagonal_axes)
    if diagonal and x2 is not None:
        raise ValueError("diagonal_axes=(0,) needs x2=None (only x1 == x2 pairs are computed)")

    def run(impl: str) -> jax.Array:
        if impl == "reference":
            fn = lambda a, b: ntk_reference(apply_fn, params, a, b, trace_axes=trace_axes, diagonal_axes=diagonal_axes)  # noqa: E731
        else:
            kfn = _nt_kernel_fn(apply_fn, impl, trace_axes, diagonal_axes, vmap_axes)
            fn = lambda a, b: kfn(a, b, params)  # noqa: E731
        if batch_size is None:
            return fn(x1, x2)
        return _blockwise(fn, x1, x2, batch_size, diagonal)

    if implementation != "auto":
        return run(implementation)
    try:
        return run("structured")
    except Exception as err:  # neural-tangents raises assorted errors on unsupported primitives
        warnings.warn(
            f"structured-derivatives eNTK failed ({type(err).__name__}: {err}); "
            "falling back to NTK-vector products",
            RuntimeWarning,
            stacklevel=2,
        )
        return run("ntvp")


def symmetrized(k: Any) -> np.ndarray:
    """The symmetric part of a Gram matrix ``K(X, X)`` computed in floating point, as float64.

    A kernel on one set of inputs is symmetric by definition, ``K(x_i, x_j) = K(x_j, x_i)``,
    but a float32 computation is so only to rounding: on some CPUs the eNTK, pNTK and
    infinite NTK of this book differ from their transposes by ~1e-7 relative. Formulas that
    assume symmetry (the bordered inverse of :func:`ntkbook.dynamics.block_inverse_update`
    reuses one column as the new row) then disagree with a direct solve by that much; checks of
    such identities to float64 rounding need the symmetric part. Returns ``(K + K^T) / 2`` for an
    ``(N, N)`` matrix and ``(K + K^T) / 2`` with ``K^T[i, j, a, b] = K[j, i, b, a]`` for an
    ``(N, N, k, k)`` eNTK.

    Raises:
        ValueError: a shape that is neither ``(N, N)`` nor ``(N, N, k, k)``, or NaN / inf.
    """
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 2 and k.shape[0] == k.shape[1]:
        k_t = k.T
    elif k.ndim == 4 and k.shape[0] == k.shape[1] and k.shape[2] == k.shape[3]:
        k_t = k.transpose(1, 0, 3, 2)
    else:
        raise ValueError(f"k must be a Gram matrix of shape (N, N) or (N, N, k, k), got {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("k contains NaN or inf")
    return 0.5 * (k + k_t)


def linearize(apply_fn: Callable, params0: Any) -> Callable:
    """The first-order Taylor model ``f(w0, x) + J(w0, x) (w - w0)`` (``nt.linearize``)."""
    return nt.linearize(apply_fn, params0)


# ------------------------------------------------------------------ infinite width
@functools.lru_cache(maxsize=64)
def _jit_kernel_fn(kernel_fn: Callable, get: str):
    return jax.jit(lambda a, b: kernel_fn(a, b, get))


def infinite_kernel(
    kernel_fn: Callable,
    x1: Any,
    x2: Any = None,
    *,
    get: KernelGet = "ntk",
    batch_size: int | None = None,
) -> jax.Array:
    """Infinite-width NNGP or NTK of a ``stax`` model on ``(x1, x2)`` (thesis Thm 2.6).

    Args:
        kernel_fn: the third element of a :class:`ntkbook.models.Model`.
        x1, x2: inputs; ``x2=None`` means ``x1``.
        get: ``"ntk"`` or ``"nngp"``.
        batch_size: compute in blocks of this many rows/columns.

    Returns:
        An ``(N1, N2)`` array (the kernel is a multiple of the identity over outputs).
    """
    _checks.choice(get, "get", ("ntk", "nngp"))
    if not callable(kernel_fn):
        raise TypeError(f"kernel_fn must be the kernel function of a stax model, got {type(kernel_fn).__name__}")
    x1, x2 = _check_inputs(x1, x2)
    batch_size = _check_batch_size(batch_size)
    fn = _jit_kernel_fn(kernel_fn, get)
    if batch_size is None:
        return fn(x1, x2)
    return _blockwise(fn, x1, x2, batch_size, diagonal=False)


# ------------------------------------------------------- kernel regression and flow
def _flatten_kernel(k: jax.Array, y: jax.Array, name: str) -> tuple[jax.Array, bool]:
    """Return ``k`` as a matrix acting on ``y`` and whether it is per-output (Theta x I)."""
    n, out = y.shape
    if k.ndim == 2:
        if k.shape != (n, n):
            raise ValueError(f"{name} must have shape ({n}, {n}) to match y_train {y.shape}, got {k.shape}")
        return k, True
    if k.ndim == 4:
        if k.shape != (n, n, out, out):
            raise ValueError(f"{name} must have shape ({n}, {n}, {out}, {out}), got {k.shape}")
        return k.transpose(0, 2, 1, 3).reshape(n * out, n * out), False
    raise ValueError(f"{name} must be (N, N) or (N, N, k, k), got shape {k.shape}")


def _check_targets(y: Any, name: str = "y_train") -> jax.Array:
    y = _checks.finite_array(y, name)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"{name} must have shape (N,) or (N, k), got {y.shape}")
    return y


def _check_kernel_matrix(mat: jax.Array, name: str) -> None:
    """A kernel matrix (flattened to ``(N k, N k)``) must be finite and symmetric."""
    _checks.symmetric(mat, name, rtol=1e-3)


def _check_positive_definite(mat: jax.Array, ridge: float, name: str) -> None:
    """Refuse a clearly indefinite ``K + ridge I`` before the solve (a float64 Cholesky on the host).

    A jitter of ``1e-6 max|K_ii|`` lets through PSD kernels that are singular up to
    float32 rounding; what it refuses has an eigenvalue below ``-1e-6 max|K_ii|``, which
    no kernel (a Gram matrix) has. The solve itself re-checks what passes.
    """
    if _checks.is_traced(mat):
        return
    k = np.asarray(mat, dtype=np.float64)
    jitter = 1e-6 * max(float(np.max(np.abs(np.diag(k)))), np.finfo(np.float32).tiny)
    try:
        np.linalg.cholesky(k + (ridge + jitter) * np.eye(k.shape[0]))
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} + ridge * I is not positive semi-definite (ridge={ridge:g}): a kernel matrix "
                         f"is a Gram matrix, with no negative eigenvalues") from None


def _check_flow_spectrum(lam: jax.Array, name: str) -> None:
    """Refuse an indefinite kernel in the closed-form flow instead of clipping it.

    Under an indefinite ``K`` the flow ``exp(-eta t K / n)`` grows along the negative
    directions; clipping them to zero would quietly return a different trajectory. A
    PSD kernel's computed spectrum can dip below zero only by the backward error of
    ``eigh``, at most ``c N eps ||K||_2`` (Golub & Van Loan, Sect. 8.1); with ``c = 10``
    that is the tolerance. Skipped under tracing (no concrete values).
    """
    if _checks.is_traced(lam):
        return
    ev = np.asarray(lam, dtype=np.float64)
    scale = float(np.max(np.abs(ev))) if ev.size else 0.0
    tol = 10.0 * ev.size * float(jnp.finfo(lam.dtype).eps) * scale
    if ev.size and float(ev.min()) < -tol:
        raise ValueError(f"{name} is not positive semi-definite: its smallest eigenvalue is {ev.min():.3g} "
                         f"(largest |eigenvalue| {scale:.3g}, rounding allows {-tol:.3g}); gradient flow "
                         f"under a kernel needs a Gram matrix (no negative eigenvalues)")


def kernel_regression(
    k_train_train: Any,
    y_train: Any,
    k_test_train: Any,
    *,
    f0_train: Any = None,
    f0_test: Any = None,
    ridge: float = 0.0,
) -> jax.Array:
    """Kernel (ridge) regression, optionally on the residuals of an initial function.

    ``f(x) = f0(x) + K(x, X) (K(X, X) + ridge I)^{-1} (Y - f0(X))``: the end point of
    gradient flow on the square loss for the model linearised at ``w0`` (thesis
    eq. 2.61 at ``t -> infinity``; with ``f0 = 0`` it is plain kernel regression). Shaped as in the talk's "Kernel regression with pNTK" slide:

    - full eNTK: ``k_train_train`` ``(N, N, k, k)``, ``k_test_train`` ``(M, N, k, k)``,
      one ``N k x N k`` solve;
    - pNTK (or any kernel proportional to ``I_k``): ``(N, N)`` and ``(M, N)``, one
      ``N x N`` solve with the ``k`` residual columns as right-hand sides.

    Args:
        k_train_train, k_test_train: the kernels, both 2-D or both 4-D.
        y_train: ``(N, k)`` targets (or ``(N,)`` for ``k = 1``).
        f0_train: ``(N, k)`` initial outputs on the training inputs (default 0).
        f0_test: ``(M, k)`` initial outputs on the test inputs (default 0).
        ridge: non-negative diagonal regulariser (note that the eNTK and the pNTK are
            on different scales; a ridge means different things for the two).

    Returns:
        ``(M, k)`` predictions.

    Raises:
        ValueError: inconsistent shapes or a negative ridge.
    """
    y = _check_targets(y_train)
    n, out = y.shape
    ktt = _checks.finite_array(k_train_train, "k_train_train")
    kxt = _checks.finite_array(k_test_train, "k_test_train")
    if ktt.ndim != kxt.ndim or ktt.ndim not in (2, 4):
        raise ValueError(f"k_train_train and k_test_train must both be 2-D (pNTK) or both 4-D (eNTK), "
                         f"got shapes {ktt.shape} and {kxt.shape}")
    ridge = _checks.nonneg(ridge, "ridge")
    if ktt.shape[0] != n:
        raise ValueError(f"y_train has {n} rows but k_train_train has shape {ktt.shape} "
                         f"(one row and column per training point)")
    m = kxt.shape[0]
    if kxt.shape[1:] != ((n,) if kxt.ndim == 2 else (n, out, out)):
        raise ValueError(f"k_test_train must have shape (M, {n}{'' if kxt.ndim == 2 else f', {out}, {out}'}), got {kxt.shape}")
    f0 = jnp.zeros_like(y) if f0_train is None else _check_targets(f0_train, "f0_train")
    g0 = jnp.zeros((m, out), y.dtype) if f0_test is None else _check_targets(f0_test, "f0_test")
    if f0.shape != y.shape:
        raise ValueError(f"f0_train must have shape {y.shape}, got {f0.shape}")
    if g0.shape != (m, out):
        raise ValueError(f"f0_test must have shape {(m, out)}, got {g0.shape}")
    mat, per_output = _flatten_kernel(ktt, y, "k_train_train")
    _check_kernel_matrix(mat, "k_train_train")
    _check_positive_definite(mat, ridge, "k_train_train")
    reg = mat + ridge * jnp.eye(mat.shape[0], dtype=mat.dtype)
    resid = y - f0
    if per_output:
        coef = jax.scipy.linalg.solve(reg, resid, assume_a="pos")
    else:
        coef = jax.scipy.linalg.solve(reg, resid.reshape(-1), assume_a="pos")
    if not _checks.is_traced(coef) and not bool(jnp.all(jnp.isfinite(coef))):
        # The Cholesky solve returns NaN when K + ridge I is not positive definite.
        raise ValueError(f"k_train_train + ridge * I is not positive definite (ridge={ridge:g}); a kernel matrix "
                         f"must be positive semi-definite, and a singular one needs ridge > 0")
    if per_output:
        return g0 + kxt @ coef
    kx = kxt.transpose(0, 2, 1, 3).reshape(m * out, n * out)
    return g0 + (kx @ coef).reshape(m, out)


#: what :func:`gradient_flow_mse` does when discrete descent cannot converge
OnUnstable = Literal["raise", "warn", "ignore"]
ON_UNSTABLE: tuple[str, ...] = ("raise", "warn", "ignore")


class FlowPrediction(NamedTuple):
    """Outputs of kernel gradient flow at the requested times: ``(T, N, k)`` / ``(T, M, k)``
    (no leading ``T`` axis for a scalar time)."""

    train: jax.Array
    test: jax.Array | None


def gradient_flow_mse(
    k_train_train: Any,
    y_train: Any,
    t: Any,
    *,
    f0_train: Any = None,
    k_test_train: Any = None,
    f0_test: Any = None,
    learning_rate: float = 1.0,
    normalization: float | None = None,
    discrete: bool = False,
    on_unstable: OnUnstable = "warn",
) -> FlowPrediction:
    """Closed-form kernel gradient descent on the square loss (thesis eqs. 2.60, 2.61).

    With the loss ``L = (1 / 2 n) sum (f - y)^2`` (``n = normalization``, by
    default ``y_train.size``, i.e. :func:`ntkbook.train.mse_loss`) and a fixed
    kernel ``K``, gradient flow in function space is
    ``df(X)/dt = -(eta / n) K (f(X) - Y)``, so with ``K = V diag(lambda) V^T``

    - train: ``f_t(X) = Y + V exp(-eta t Lambda / n) V^T (f_0(X) - Y)``  (eq. 2.60)
    - test:  ``f_t(x) = f_0(x) + K(x, X) V [(exp(-eta t Lambda / n) - 1) / Lambda] V^T (f_0(X) - Y)`` (eq. 2.61)

    It is the solution ``nt.predict.gradient_descent_mse`` computes (same normalisation),
    and unlike that function it can be vmapped over kernels traced inside ``jax.vmap``
    (one eNTK per initialisation; see :func:`ntkbook._compat.patch_predict`).

    ``t`` counts steps of size ``learning_rate``. With ``discrete=True`` the
    exponential is replaced by ``(1 - eta lambda / n)^t``: the exact trajectory of
    gradient *descent* on the linearised model, for integer ``t``. That trajectory
    converges only if ``eta lambda_max / n < 2``; at or past this edge the factor of
    the top eigendirection has modulus ``>= 1`` and the closed form returns a residual
    that oscillates or grows without bound (and overflows for large ``t``), which is
    exact but rarely what the caller meant. ``on_unstable`` says what happens then.

    Args:
        k_train_train: ``(N, N)`` (same kernel for every output) or ``(N, N, k, k)``.
        y_train: ``(N,)`` or ``(N, k)`` targets.
        t: a time or 1-D array of times (in steps).
        f0_train: outputs at ``t = 0`` on the training set (default zeros).
        k_test_train: ``(M, N)`` or ``(M, N, k, k)`` kernel for test predictions.
        f0_test: outputs at ``t = 0`` on the test set (default zeros).
        learning_rate: step size ``eta``.
        normalization: ``n`` in the loss above (default ``y_train.size``).
        discrete: gradient descent instead of gradient flow.
        on_unstable: with ``discrete=True`` and ``eta lambda_max / n >= 2``:
            ``"raise"`` a ``ValueError`` before computing the trajectory, ``"warn"``
            (default) with a ``RuntimeWarning`` that gives the value and return the
            diverging trajectory, or ``"ignore"``. Gradient flow is stable for
            every ``eta`` and never checks. Skipped when ``k_train_train`` is traced.

    Returns:
        :class:`FlowPrediction` with train (and test, if ``k_test_train``) outputs.
    """
    y = _check_targets(y_train)
    n_train, k_out = y.shape
    k_in = _checks.finite_array(k_train_train, "k_train_train")
    if k_in.ndim in (2, 4) and k_in.shape[0] != n_train:
        raise ValueError(f"y_train has {n_train} rows but k_train_train has shape {k_in.shape} "
                         f"(one row and column per training point)")
    k, per_output = _flatten_kernel(k_in, y, "k_train_train")
    _check_kernel_matrix(k, "k_train_train")
    t_arr = jnp.asarray(t, dtype=k.dtype)
    if t_arr.ndim > 1 or bool(jnp.any(~jnp.isfinite(t_arr))) or bool(jnp.any(t_arr < 0)):
        raise ValueError(f"t must be a finite non-negative scalar or 1-D array, got {t!r}")
    learning_rate = _checks.positive(learning_rate, "learning_rate")
    norm = float(y.size if normalization is None else _checks.positive(normalization, "normalization"))
    _checks.boolean(discrete, "discrete")
    _checks.choice(on_unstable, "on_unstable", ON_UNSTABLE)
    if k_test_train is not None:
        _checks.finite_array(k_test_train, "k_test_train")
    f0 = jnp.zeros_like(y) if f0_train is None else _check_targets(f0_train, "f0_train")
    if f0.shape != y.shape:
        raise ValueError(f"f0_train must have shape {y.shape}, got {f0.shape}")

    lam, vec = jnp.linalg.eigh(k)
    _check_flow_spectrum(lam, "k_train_train")
    lam = jnp.maximum(lam, 0.0)  # rounding-level negatives of a PSD kernel only (checked above)
    rate = learning_rate * lam / norm
    if discrete and on_unstable != "ignore" and not _checks.is_traced(rate):
        edge = float(jnp.max(rate)) if rate.size else 0.0
        if edge >= 2.0:
            msg = (f"discrete gradient descent on this kernel does not converge: learning_rate * lambda_max / "
                   f"normalization = {learning_rate:.4g} * {float(jnp.max(lam)):.4g} / {norm:.4g} = {edge:.3f}, "
                   f"and the top eigendirection's residual is multiplied by {1.0 - edge:.3f} per step "
                   f"(convergence needs a value below 2: lower learning_rate below {2.0 * norm / float(jnp.max(lam)):.4g})")
            if on_unstable == "raise":
                raise ValueError(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
    ts = jnp.atleast_1d(t_arr)[:, None]  # (T, 1)
    if discrete:
        decay = jnp.power(1.0 - rate[None, :], ts)
        # decay - 1 = expm1(t log1p(-r)) for r < 1, without the cancellation of 1 - 1
        below = rate < 1.0
        change = jnp.where(below[None, :], jnp.expm1(ts * jnp.log1p(-jnp.where(below, rate, 0.0))[None, :]),
                           decay - 1.0)
    else:
        decay = jnp.exp(-rate[None, :] * ts)  # (T, P)
        change = jnp.expm1(-rate[None, :] * ts)  # decay - 1 without cancellation
    # (decay - 1) / lambda, with its limit -eta t / n at lambda = 0. expm1 keeps it
    # accurate for the tiny eigenvalues (rounding noise of a zero) that pass the cut.
    safe = lam > 1e-12 * jnp.max(lam)
    grow = jnp.where(safe[None, :], change / jnp.where(safe, lam, 1.0)[None, :], -learning_rate * ts / norm)

    r0 = f0 - y
    coef = vec.T @ (r0 if per_output else r0.reshape(-1, 1))  # (P, k) or (P, 1)
    train = y[None] + jnp.einsum("ip,tp,pk->tik", vec, decay, coef).reshape((-1,) + y.shape)
    test = None
    if k_test_train is not None:
        kx = jnp.asarray(k_test_train)
        if per_output:
            if kx.ndim != 2 or kx.shape[1] != n_train:
                raise ValueError(f"k_test_train must have shape (M, {n_train}), got {kx.shape}")
            m = kx.shape[0]
        else:
            if kx.ndim != 4 or kx.shape[1:] != (n_train, k_out, k_out):
                raise ValueError(f"k_test_train must have shape (M, {n_train}, {k_out}, {k_out}), got {kx.shape}")
            m = kx.shape[0]
            kx = kx.transpose(0, 2, 1, 3).reshape(m * k_out, n_train * k_out)
        g0 = jnp.zeros((m, k_out), k.dtype) if f0_test is None else _check_targets(f0_test, "f0_test")
        if g0.shape != (m, k_out):
            raise ValueError(f"f0_test must have shape {(m, k_out)}, got {g0.shape}")
        delta = jnp.einsum("mi,ip,tp,pk->tmk", kx, vec, grow, coef).reshape((-1, m, k_out))
        test = g0[None] + delta
    if t_arr.ndim == 0:
        train = train[0]
        test = None if test is None else test[0]
    return FlowPrediction(train, test)


# --- pseudo-NTK (chapters 13-15) ---
PntkVariant = Literal["first", "sum"]
PNTK_VARIANTS: tuple[str, ...] = ("first", "sum")


@functools.lru_cache(maxsize=64)
def _pntk_head(apply_fn: Callable, variant: str) -> Callable:
    """One scalar-output function per ``(apply_fn, variant)``, so that repeated calls
    reuse neural-tangents' compiled kernel function (it is cached on the function)."""
    if variant == "first":

        def head(params, x, **kwargs):
            return apply_fn(params, x, **kwargs)[:, :1]

    else:

        def head(params, x, **kwargs):
            out = apply_fn(params, x, **kwargs)
            return jnp.sum(out, axis=-1, keepdims=True) / jnp.sqrt(jnp.asarray(out.shape[-1], out.dtype))

    return head


def pseudo_ntk(
    apply_fn: Callable,
    params: Any,
    x1: Any,
    x2: Any = None,
    *,
    variant: PntkVariant = "first",
    implementation: Implementation = "auto",
    vmap_axes: Any = None,
    batch_size: int | None = None,
) -> jax.Array:
    """The pseudo-NTK: the eNTK of a single scalar summary of the ``k`` outputs.

    ``pNTK(x1, x2) = <grad_w g(x1), grad_w g(x2)>`` with ``g = f_1`` (``variant="first"``)
    or ``g = (1/sqrt k) sum_j f_j`` (``variant="sum"``, the "sum of logits" of
    Mohamadi, Bae & Sutherland 2023). For a random read-out layer
    ``E_w eNTK(x1, x2) = E_w[pNTK(x1, x2)] I_k``, and ``pNTK (x) I_k`` approximates the
    eNTK with relative Frobenius error ``O(1/sqrt(width))`` at initialisation (the
    talk's "pNTK motivation" slide). It is an ``(N1, N2)`` matrix: ``k^2`` times
    smaller than the eNTK, and only one output's Jacobian is ever formed.

    Not the same as ``empirical_ntk(..., trace_axes=(-1,))``, which averages the
    ``k`` diagonal entries ``K_jj``: that needs all ``k`` Jacobians (cost ``O(k)``);
    the pNTK needs one. See chapter 14.

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)``.
        params: parameters.
        x1, x2: inputs; ``x2=None`` means ``x1``.
        variant: ``"first"`` (first logit) or ``"sum"`` (sum of logits over ``sqrt k``).
        implementation, vmap_axes, batch_size: as in :func:`empirical_ntk`.

    Returns:
        The ``(N1, N2)`` pNTK.

    Raises:
        ValueError: unknown variant, or anything :func:`empirical_ntk` rejects.
    """
    _checks.choice(variant, "variant", PNTK_VARIANTS)
    x1, x2 = _check_inputs(x1, x2, apply_fn, params)
    out_shape = jax.eval_shape(apply_fn, params, x1[:1]).shape
    if len(out_shape) != 2:
        raise ValueError(f"apply_fn must return shape (N, k); got {out_shape} for one input")
    k = empirical_ntk(_pntk_head(apply_fn, variant), params, x1, x2, implementation=implementation,
                      vmap_axes=vmap_axes, batch_size=batch_size)
    return k[..., 0, 0]


class PntkSpectrum(NamedTuple):
    """Extreme eigenvalues of the eNTK and of ``pNTK (x) I_k`` on the same inputs, and
    the size of their difference in operator norm (see :func:`pntk_spectrum`)."""

    lam_max_entk: float
    lam_min_entk: float
    lam_max_pntk: float
    lam_min_pntk: float
    err_op: float

    @property
    def cond_entk(self) -> float:
        """Condition number ``lam_max / lam_min`` of the eNTK (``inf`` if singular)."""
        return self.lam_max_entk / self.lam_min_entk if self.lam_min_entk > 0 else float("inf")

    @property
    def cond_pntk(self) -> float:
        """Condition number of ``pNTK (x) I_k``, the same as the pNTK's own."""
        return self.lam_max_pntk / self.lam_min_pntk if self.lam_min_pntk > 0 else float("inf")

    @property
    def err_over_lam_min(self) -> float:
        """``||eNTK - pNTK (x) I||_2 / lam_min(eNTK)``: below 1, first-order perturbation
        of the inverse applies (``||A^-1 - B^-1|| <= ||E|| / (lam_min (lam_min - ||E||))``)."""
        return self.err_op / self.lam_min_entk if self.lam_min_entk > 0 else float("inf")


def pntk_spectrum(full: Any, pntk: Any) -> PntkSpectrum:
    """Compare the spectra of an eNTK ``(N, N, k, k)`` and a pNTK ``(N, N)`` on the same inputs.

    The eNTK is read as the ``Nk x Nk`` matrix with rows ``(input, output)``; the
    pNTK stands for ``pNTK (x) I_k``, whose eigenvalues are the pNTK's, each ``k``
    times, so its extreme eigenvalues and condition number are the pNTK's own. The
    talk's "pNTK motivation" slides and Mohamadi, Bae & Sutherland (2023, Sect. 4)
    compare ``lambda_max``, ``lambda_min`` and the condition number of the two
    kernels; by Weyl's inequality every eigenvalue of one lies within ``err_op`` of
    the corresponding eigenvalue of the other, where ``err_op`` is the spectral
    norm of ``E = eNTK - pNTK (x) I_k``.

    Args:
        full: the eNTK, shape ``(N, N, k, k)``, symmetric as an ``Nk x Nk`` matrix.
        pntk: the pNTK, shape ``(N, N)``, symmetric.

    Returns:
        :class:`PntkSpectrum` (NumPy float64 eigenvalues, ``eigvalsh``).

    Raises:
        ValueError: wrong shapes, mismatched ``N``, non-finite or non-symmetric input.
    """
    full, pntk = np.asarray(full, np.float64), np.asarray(pntk, np.float64)  # NumPy: keeps float64 outside x64 mode
    if full.ndim != 4:
        raise ValueError(f"full must have shape (N, N, k, k), got {full.shape}")
    n, n2, k, k2 = full.shape
    if n != n2 or k != k2:
        raise ValueError(f"full must have shape (N, N, k, k), got {full.shape}")
    if pntk.shape != (n, n):
        raise ValueError(f"pntk must have shape ({n}, {n}) to match full, got {pntk.shape}")
    mat = full.transpose(0, 2, 1, 3).reshape(n * k, n * k)
    _checks.symmetric(mat, "full (as an Nk x Nk matrix)")
    _checks.symmetric(pntk, "pntk")
    mat = 0.5 * (mat + mat.T)
    p = 0.5 * (pntk + pntk.T)
    lam_e = np.linalg.eigvalsh(mat)
    lam_p = np.linalg.eigvalsh(p)
    err = mat - np.kron(p, np.eye(k))
    err_op = float(np.max(np.abs(np.linalg.eigvalsh(err))))
    return PntkSpectrum(float(lam_e[-1]), float(lam_e[0]), float(lam_p[-1]), float(lam_p[0]), err_op)


class KernelCost(NamedTuple):
    """Cost of one kernel evaluation: best wall time over repeats (s), XLA's estimate
    of the floating-point operations, its temporary buffer size for the compiled
    computation and the size of the result (bytes)."""

    seconds: float
    flops: float
    temp_bytes: int
    output_bytes: int


def kernel_cost(
    apply_fn: Callable,
    params: Any,
    x: Any,
    *,
    kind: Literal["entk", "trace", "pntk"] = "entk",
    repeats: int = 3,
    vmap_axes: Any = 0,
) -> KernelCost:
    """Time and memory of the structured-derivatives kernel of ``apply_fn`` on ``x``.

    ``kind`` is the full eNTK ``(N, N, k, k)``, its trace over outputs ``(N, N)``
    (``trace_axes=(-1,)``), or the first-logit pNTK ``(N, N)``. The computation is
    compiled once (not timed); the time is the best of ``repeats`` runs; the
    operation count and the memory are what XLA reports for the compiled
    executable (``Compiled.cost_analysis()`` and ``Compiled.memory_analysis()``:
    temporary buffers, excluding inputs and outputs; 0 where the backend reports
    none), read by :func:`ntkbook.timing.xla_accounting`. A measuring tool for
    chapter 14 and the benchmarks, not a unit-tested claim.
    """
    _checks.choice(kind, "kind", ("entk", "trace", "pntk"))
    repeats = _checks.positive_int(repeats, "repeats")
    x, _ = _check_inputs(x, None, apply_fn, params)
    fn = _pntk_head(apply_fn, "first") if kind == "pntk" else apply_fn
    kfn = _nt_kernel_fn(fn, "structured", (-1,) if kind == "trace" else (), (), vmap_axes)
    compiled, _ = timing.compile_timed(kfn, x, None, params)
    acc = timing.xla_accounting(compiled)
    out = jax.block_until_ready(compiled(x, None, params))  # the warm-up run; its result gives the size
    best = timing.best_time(lambda: compiled(x, None, params), repeats=int(repeats), warmup=0)["min_s"]
    return KernelCost(best, acc["flops"], acc["temp_bytes"] or 0, int(out.nbytes))
# --- arc-cosine recursion (chapters 03-05) ---
class ArcCosineKernels(NamedTuple):
    """Infinite-width NNGP and NTK of a ReLU MLP, each ``(N1, N2)``."""

    nngp: jax.Array
    ntk: jax.Array


def _relu_expectations(q1: jax.Array, q2: jax.Array, q12: jax.Array, same: jax.Array | bool = False
                       ) -> tuple[jax.Array, jax.Array]:
    """``E[relu(u) relu(v)]`` and ``E[relu'(u) relu'(v)]`` for ``(u, v) ~ N(0, [[q1, q12], [q12, q2]])``.

    The arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009; thesis §3.1 App. E.1):
    with ``theta = arccos(q12 / sqrt(q1 q2))``,
    ``E[relu relu] = sqrt(q1 q2) (sin theta + (pi - theta) cos theta) / (2 pi)`` and
    ``E[relu' relu'] = (pi - theta) / (2 pi)``. Where ``same`` is true (a point paired
    with itself) the cosine is set to exactly 1: ``arccos`` near 1 would turn a
    rounding error of 1e-16 in the cosine into 1e-8 in the angle.
    """
    norm = jnp.sqrt(q1 * q2)
    cos = jnp.clip(q12 / jnp.where(norm > 0, norm, 1.0), -1.0, 1.0)
    cos = jnp.where(same, 1.0, cos)
    theta = jnp.arccos(cos)
    e_phi = norm * (jnp.sin(theta) + (jnp.pi - theta) * cos) / (2 * jnp.pi)
    e_dphi = (jnp.pi - theta) / (2 * jnp.pi)
    return e_phi, e_dphi


def arccos_kernels(
    x1: Any,
    x2: Any = None,
    *,
    hidden_layers: int,
    W_std: float = float(np.sqrt(2.0)),
    b_std: float | None = 0.0,
    out_W_std: float | None = None,
) -> ArcCosineKernels:
    """Infinite-width NNGP and NTK of a ReLU MLP from the arc-cosine recursion (thesis eqs. 2.55-2.56).

    The network is :func:`ntkbook.models.mlp` with ``hidden_layers`` ReLU layers in
    the NTK parameterisation (thesis eq. 2.51). With ``Sigma^1(x, x') = sigma_w^2
    <x, x'> / n_0 + sigma_b^2`` and ``Theta^1 = Sigma^1``, each layer applies

    - ``Sigma^{l+1} = sigma_w^2 E[relu(u) relu(v)] + sigma_b^2``  (the NNGP, thesis eq. 2.30),
    - ``Theta^{l+1} = Sigma^{l+1} + sigma_w^2 E[relu'(u) relu'(v)] Theta^l``  (eq. 2.56),

    with ``(u, v) ~ N(0, Sigma^l)`` on the pair ``(x, x')``; the expectations are
    the arc-cosine kernels in closed form. Unrolled, the NTK recursion is the sum
    over layers of eq. 2.55. Written independently of neural-tangents, whose
    ``stax`` kernels the tests compare it with.

    Args:
        x1: inputs ``(N1, n_0)``.
        x2: inputs ``(N2, n_0)``; ``None`` means ``x1``.
        hidden_layers: number of hidden ReLU layers (>= 1); the network has
            ``hidden_layers + 1`` weight layers.
        W_std: ``sigma_w`` of the hidden layers (default ``sqrt 2``, the edge of chaos).
        b_std: ``sigma_b`` (``None`` or 0: no bias contribution).
        out_W_std: ``sigma_w`` of the read-out layer (default ``W_std``).

    Returns:
        :class:`ArcCosineKernels` with ``nngp`` and ``ntk`` of shape ``(N1, N2)``.

    Raises:
        ValueError: ``hidden_layers < 1``, non-positive ``W_std``, negative ``b_std``,
            or inputs that are not 2-D with matching feature sizes.

    >>> k = arccos_kernels(x, hidden_layers=2)
    >>> k.ntk.shape == (len(x), len(x))
    True
    """
    hidden_layers = _checks.positive_int(hidden_layers, "hidden_layers")
    W_std = _checks.positive(W_std, "W_std")
    out_W_std = W_std if out_W_std is None else _checks.positive(out_W_std, "out_W_std")
    b_var = 0.0 if b_std is None else _checks.nonneg(b_std, "b_std") ** 2
    x1 = _checks.finite_array(x1, "x1")
    same = jnp.eye(x1.shape[0], dtype=bool) if x2 is None and x1.ndim == 2 else False
    x2 = x1 if x2 is None else _checks.finite_array(x2, "x2")
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 must have shapes (N1, n0) and (N2, n0), got {x1.shape} and {x2.shape}")
    n0 = x1.shape[1]
    w_var = float(W_std) ** 2
    # Layer 1 (a dense layer acting on the inputs): Sigma^1 = Theta^1.
    s12 = w_var * (x1 @ x2.T) / n0 + b_var
    s11 = w_var * jnp.sum(x1 * x1, axis=1) / n0 + b_var
    s22 = w_var * jnp.sum(x2 * x2, axis=1) / n0 + b_var
    t12, t11, t22 = s12, s11, s22
    for layer in range(hidden_layers):
        var = float(out_W_std) ** 2 if layer == hidden_layers - 1 else w_var
        e12, d12 = _relu_expectations(s11[:, None], s22[None, :], s12, same)
        # On the diagonal theta = 0: E[relu(u)^2] = q / 2 and E[relu'(u)^2] = 1 / 2.
        s12_new, s11_new, s22_new = var * e12 + b_var, var * s11 / 2 + b_var, var * s22 / 2 + b_var
        t12 = s12_new + var * d12 * t12
        t11 = s11_new + var * 0.5 * t11
        t22 = s22_new + var * 0.5 * t22
        s12, s11, s22 = s12_new, s11_new, s22_new
    return ArcCosineKernels(nngp=s12, ntk=t12)
