"""The trace of the empirical NTK, exactly and by random probes.

For a network ``f(x; w)`` with ``k`` outputs and inputs ``X = (x_1, ..., x_N)``,
the trace of the empirical NTK on ``X`` is a sum of squared gradient norms,

    Tr K(X, X; w) = sum_i sum_a ||d f_a(x_i; w) / dw||^2 = ||J(X, w)||_F^2 ,

and the trace evolution paper ([trace], Sect. 4) tracks its normalised value
``Tr K / (N k)`` during training. :func:`ntk_trace` computes it four ways:

- ``"exact"``: the diagonal ``K(x_i, x_i)`` of the eNTK, traced over outputs,
  from neural-tangents' structured derivatives (``diagonal_axes=(0,)``,
  ``trace_axes=(-1,)``, in batches of inputs), via
  :func:`ntkbook.kernels.empirical_ntk`. Exact up to rounding.
- ``"jvp"``: Hutchinson's estimator (Hutchinson 1989) on the parameter side,
  ``Tr(J^T J) = E_v ||J v||^2`` for probes ``v`` with ``E[v v^T] = I``; each probe
  costs one Jacobian-vector product. Unbiased; for Gaussian probes the variance of
  one probe is ``2 ||K||_F^2`` (a Gaussian quadratic form), for Rademacher probes
  ``2 (||K||_F^2 - sum_j (J^T J)_jj^2)``.
- ``"fd"``: the paper's finite-difference perturbation estimator ([trace] Thm 4.1),
  ``||f(X; w + eps v) - f(X; w)||_F^2 / eps^2`` with ``v ~ N(0, I_d)``. Two forward
  passes and no derivative, but biased: by Taylor expansion the bias is
  ``O(eps^2)`` for a smooth network (the odd terms vanish in expectation) and
  ``O(eps)`` for ReLU networks, whose kinks do not cancel.
- ``"auto"``: the cheaper of ``"exact"`` and ``"jvp"`` for a requested relative
  standard error ``rtol``. Costs are XLA's floating-point operation counts of the
  compiled exact block and of one compiled probe (never wall-clock times, so the
  choice, and the result, are the same on every run for the same inputs and key);
  the number of probes the estimator would need comes from pilot probes. (``"fd"``
  is never picked: its bias depends on the model and cannot be bounded without
  the exact value.)

When ``rtol`` sets the number of probes, the per-probe variance is not taken at
face value from the pilot (8 probes estimate a variance to within a factor of
about two): the count uses a one-sided upper confidence bound on the variance
(chi-square, level :data:`RTOL_CONFIDENCE`), and is re-estimated once more from
all probes drawn. The relative standard error achieved is then at most ``rtol``
in about that fraction of runs or more (``tests/test_trace.py`` measures it over
100 keys). At most ``max_probes`` probes are drawn: a request that needs more
is refused with a clear error before they are drawn.

Probes are drawn from an explicit key, and probe ``j`` is the same vector for
``"jvp"`` and ``"fd"``, so the two estimators can be compared with common random
numbers; :func:`fd_sweep` computes the JVP estimate and the FD estimate at several
``eps`` on the same probes, drawing each probe once. :func:`layer_traces` splits
the trace over parameter groups (the NTK is additive over parameters),
:func:`output_traces` computes the trace of the NTK of
intermediate outputs ([trace] Sect. 5.1), and :func:`input_perturbation_distance`
is the paper's logit input-perturbation distance ([trace] Sect. 5.2).

Compiled functions are cached per ``apply_fn`` object: pass the same function
object at every call (e.g. ``net.apply_fn``, not a fresh ``lambda`` per
training step), or every call compiles again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, kernels, timing

#: One-sided confidence with which the probe count chosen for ``rtol`` covers the true variance.
RTOL_CONFIDENCE = 0.9
#: Default cap on the number of probes a call may draw.
MAX_PROBES = 20_000

Method = Literal["exact", "jvp", "fd", "auto"]
METHODS: tuple[str, ...] = ("exact", "jvp", "fd", "auto")
ProbeKind = Literal["gaussian", "rademacher"]
ApplyFn = Callable[..., jax.Array]


class TraceEstimate(NamedTuple):
    """A value of ``Tr K`` (or of a perturbation distance) and how it was obtained.

    Attributes:
        value: the estimate of ``Tr K(X, X)`` (sum over inputs and outputs).
        normalized: ``value / (n_inputs * n_outputs)``, the paper's ``Tr K / (|X| K)``.
        stderr: standard error of ``value`` (sample standard deviation of the
            probes over ``sqrt(probes)``); 0 for ``"exact"``.
        method: the method used (``"auto"`` reports the one it chose).
        probes: number of random probes (0 for ``"exact"``).
        eps: finite-difference step (``None`` unless ``"fd"``).
        n_inputs: ``N``.
        n_outputs: ``k``, the output dimension per input.
        samples: the per-probe values (empty for ``"exact"``).
    """

    value: float
    normalized: float
    stderr: float
    method: str
    probes: int
    eps: float | None
    n_inputs: int
    n_outputs: int
    samples: np.ndarray

    @property
    def rel_stderr(self) -> float:
        """``stderr / value``: the relative standard error."""
        return self.stderr / abs(self.value) if self.value else float("inf")


# --------------------------------------------------------------------------- checks
def _check_x(x: Any) -> jax.Array:
    x = _checks.finite_array(x, "x")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (N, *features) with N >= 1, got {x.shape}")
    return x


def _output_dim(apply_fn: ApplyFn, params: Any, x: jax.Array) -> int:
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be a function f(params, x), got {type(apply_fn).__name__}")
    _checks.network_inputs(apply_fn, params, x[:1], "x")
    shape = jax.eval_shape(apply_fn, params, x[:1]).shape
    if len(shape) != 2:
        raise ValueError(f"apply_fn must return shape (N, k) (flatten intermediate outputs); got {shape} for one input")
    return int(shape[1])


def _check_key(key: Any, method: str) -> jax.Array:
    if key is None:
        raise ValueError(f"method={method!r} draws random probes: pass key=jax.random.PRNGKey(...)")
    return _checks.key(key)


# --------------------------------------------------------------------------- probes
def _draw(key: jax.Array, tree: Any, kind: str) -> Any:
    """A random pytree shaped like ``tree`` with i.i.d. entries of mean 0 and variance 1."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, max(len(leaves), 1))
    if kind == "gaussian":
        out = [jax.random.normal(k, jnp.shape(l), jnp.result_type(l)) for k, l in zip(keys, leaves)]
    else:
        out = [jax.random.rademacher(k, jnp.shape(l), jnp.result_type(l)) for k, l in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, out)


def _probe_keys(key: jax.Array, probes: int, antithetic: bool) -> tuple[jax.Array, jax.Array]:
    """Keys and signs of the probes: with ``antithetic`` probe ``2j+1`` is ``-`` probe ``2j``."""
    if antithetic:
        base = jax.random.split(key, (probes + 1) // 2)
        keys = jnp.repeat(base, 2, axis=0)[:probes]
        signs = jnp.tile(jnp.array([1.0, -1.0]), (probes + 1) // 2)[:probes]
    else:
        keys = jax.random.split(key, probes)
        signs = jnp.ones(probes)
    return keys, signs


class _StaticMask:
    """A parameter mask (a pytree of booleans) in hashable form, for caching compiled probes."""

    def __init__(self, mask: Any):
        leaves, self.treedef = jax.tree_util.tree_flatten(mask)
        self.leaves = tuple(bool(m) for m in leaves)

    def apply(self, tree: Any) -> Any:
        """Zero the leaves of ``tree`` that the mask does not select."""
        flags = jax.tree_util.tree_unflatten(self.treedef, list(self.leaves))
        return jax.tree_util.tree_map(lambda t, m: t if m else jnp.zeros_like(t), tree, flags)

    def __hash__(self) -> int:
        return hash((self.leaves, self.treedef))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _StaticMask) and (self.leaves, self.treedef) == (other.leaves, other.treedef)


def _signed_probe(key: jax.Array, params: Any, kind: str, sign: jax.Array, mask: _StaticMask | None = None) -> Any:
    """Probe ``sign * v`` with ``v`` drawn from ``key`` (masked to a parameter group if asked)."""
    v = _draw(key, params, kind)
    if mask is not None:
        v = mask.apply(v)
    return jax.tree_util.tree_map(lambda t: sign.astype(t.dtype) * t, v)


def _jvp_value(apply_fn: ApplyFn, params: Any, x: Any, v: Any) -> jax.Array:
    """One Hutchinson sample ``||J v||^2``."""
    _, tangent = jax.jvp(lambda p: apply_fn(p, x), (params,), (v,))
    return jnp.sum(jnp.square(tangent))


def _fd_value(apply_fn: ApplyFn, params: Any, x: Any, f0: jax.Array, v: Any, eps: jax.Array) -> jax.Array:
    """One finite-difference sample ``||f(w + eps v) - f(w)||^2 / eps^2`` ([trace] Thm 4.1)."""
    shifted = jax.tree_util.tree_map(lambda p, t: p + eps.astype(p.dtype) * t, params, v)
    diff = apply_fn(shifted, x) - f0
    return jnp.sum(jnp.square(diff)) / jnp.square(eps.astype(diff.dtype))


@functools.lru_cache(maxsize=64)
def _probe_fn(apply_fn: ApplyFn, method: str, kind: str, mask: _StaticMask | None = None):
    """A jitted ``(params, x, keys, signs, eps) -> per-probe values`` for ``"jvp"`` / ``"fd"``."""

    def one(params, x, f0, key, sign, eps):
        v = _signed_probe(key, params, kind, sign, mask)
        if method == "jvp":
            return _jvp_value(apply_fn, params, x, v)
        return _fd_value(apply_fn, params, x, f0, v, eps)

    @jax.jit
    def run(params, x, keys, signs, eps):
        f0 = apply_fn(params, x) if method == "fd" else None
        return jax.lax.map(lambda ks: one(params, x, f0, ks[0], ks[1], eps), (keys, signs))

    return run


def _estimates(apply_fn, params, x, key, probes, method, kind, eps, antithetic, mask=None) -> np.ndarray:
    """Per-probe values of the ``"jvp"`` or ``"fd"`` estimator, as float64."""
    keys, signs = _probe_keys(key, probes, antithetic)
    fn = _probe_fn(apply_fn, method, kind, mask)
    return np.asarray(fn(params, x, keys, signs, jnp.asarray(eps)), dtype=np.float64)


# ---------------------------------------------------------------------------- exact
def _exact_diagonal(apply_fn, params, x, batch_size, vmap_axes) -> np.ndarray:
    """``Tr_a K_aa(x_i, x_i)`` for every input: shape (N,), summed over outputs."""
    k = _output_dim(apply_fn, params, x)
    bs = None if batch_size is None or batch_size >= x.shape[0] else batch_size
    diag = kernels.empirical_ntk(apply_fn, params, x, trace_axes=(-1,), diagonal_axes=(0,),
                                 vmap_axes=vmap_axes, batch_size=bs)
    return k * np.asarray(diag, dtype=np.float64)  # neural-tangents returns the mean over outputs


def exact_diagonal(
    apply_fn: ApplyFn, params: Any, x: Any, *, batch_size: int | None = 128, vmap_axes: Any = 0
) -> np.ndarray:
    """Per-input traces ``Tr K(x_i, x_i) = sum_a ||d f_a(x_i)/dw||^2``, shape ``(N,)``.

    Their sum is ``Tr K(X, X)``. Computed by neural-tangents' structured
    derivatives on the diagonal only (``diagonal_axes=(0,)``, ``trace_axes=(-1,)``).

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)``.
        params: parameters (any pytree).
        x: inputs ``(N, ...)``.
        batch_size: inputs per block (memory bound); ``None`` for one block.
        vmap_axes: neural-tangents' ``vmap_axes``: ``0`` (default) for models that
            treat inputs independently (MLPs, CNNs without batch statistics), which
            lets it vectorise over inputs (two orders of magnitude faster on the
            book's MLP); ``None`` for models that mix inputs.
    """
    x = _check_x(x)
    if batch_size is not None:
        kernels._check_batch_size(batch_size)
    return _exact_diagonal(apply_fn, params, x, batch_size, vmap_axes)


# ------------------------------------------------------------------------ public API
def _units(samples: np.ndarray, antithetic: bool) -> np.ndarray:
    """The independent units of a probe sample: pair means ``(s_2j + s_2j+1) / 2`` for
    antithetic probes (the two halves of a pair are dependent), the samples otherwise."""
    return samples.reshape(-1, 2).mean(1) if antithetic else samples


def _result(samples: np.ndarray | None, value: float, method: str, eps: float | None, n: int, k: int,
            antithetic: bool = False) -> TraceEstimate:
    if samples is None:
        return TraceEstimate(value, value / (n * k), 0.0, method, 0, eps, n, k, np.zeros(0))
    units = _units(samples, antithetic)
    m = units.size
    stderr = float(units.std(ddof=1) / np.sqrt(m)) if m > 1 else float("nan")
    value = float(samples.mean())
    return TraceEstimate(value, value / (n * k), stderr, method, samples.size, eps, n, k, samples)


def ntk_trace(
    apply_fn: ApplyFn,
    params: Any,
    x: Any,
    *,
    method: Method = "exact",
    key: jax.Array | None = None,
    probes: int | None = None,
    eps: float = 1e-2,
    probe: ProbeKind = "gaussian",
    antithetic: bool = False,
    rtol: float | None = None,
    pilot_probes: int = 8,
    max_probes: int = MAX_PROBES,
    batch_size: int | None = 128,
    vmap_axes: Any = 0,
) -> TraceEstimate:
    """The trace ``Tr K(X, X; w)`` of the empirical NTK, and ``Tr K / (N k)``.

    Implements the quantity tracked in [trace] Sect. 4 and its estimator of
    Thm 4.1 (``method="fd"``), Hutchinson's estimator (``"jvp"``) and the exact
    value (``"exact"``); see the module docstring.

    Args:
        apply_fn: ``f(params, x)`` returning shape ``(N, k)``.
        params: parameters (any pytree of float arrays).
        x: inputs ``(N, ...)``.
        method: ``"exact"``, ``"jvp"``, ``"fd"`` or ``"auto"``.
        key: PRNG key for the probes (required unless ``method="exact"``).
        probes: number of probes for ``"jvp"``/``"fd"``. Default: 16, or, if
            ``rtol`` is given, as many as a pilot run says ``rtol`` needs.
        eps: finite-difference step for ``"fd"`` (> 0). In float32, ``eps`` much
            below ``1e-3`` loses digits to rounding.
        probe: ``"gaussian"`` (the paper's, and required for ``"fd"``) or
            ``"rademacher"`` (``"jvp"`` only; a smaller variance).
        antithetic: use probes in pairs ``(v, -v)`` (an odd ``probes`` is rounded up
            to even). For ``"fd"`` this cancels the odd Taylor terms probe by probe,
            leaving a pathwise ``O(eps^2)`` error on smooth networks; for ``"jvp"`` the
            two halves of a pair are equal, so it only wastes probes. The standard
            error is computed from the pair means.
        rtol: target relative standard error (> 0). Required for ``"auto"``.
            Met in at least about :data:`RTOL_CONFIDENCE` of runs (module docstring).
        pilot_probes: probes used to estimate the per-probe variance when
            ``rtol`` sets the number of probes (they are part of the estimate).
        max_probes: the most probes one call may draw (``"jvp"``/``"fd"`` with
            ``rtol``); ``"auto"`` takes the exact trace when more would be needed.
        batch_size: inputs per block for ``"exact"``.
        vmap_axes: see :func:`exact_diagonal`.

    Returns:
        A :class:`TraceEstimate`.

    Raises:
        ValueError: unknown method or probe kind, ``eps <= 0``, ``probes < 1``,
            ``rtol <= 0`` (or not finite), a missing key, bad shapes, NaN or inf in
            ``x``, or an ``rtol`` that needs more than ``max_probes`` probes.
        TypeError: a key that is not a PRNG key; integer inputs.

    >>> ntk_trace(net.apply_fn, params, x, method="jvp", key=jax.random.PRNGKey(0), probes=64).rel_stderr
    """
    _checks.choice(method, "method", METHODS)
    probe = _checks.choice(probe, "probe", ("gaussian", "rademacher"))
    eps = _checks.positive(eps, "eps")
    if probes is not None:
        probes = _checks.positive_int(probes, "probes")
    pilot_probes = _checks.positive_int(pilot_probes, "pilot_probes")
    max_probes = _checks.positive_int(max_probes, "max_probes")
    if rtol is not None:
        _checks.positive(rtol, "rtol (a relative standard error)")
    _checks.boolean(antithetic, "antithetic")
    if method == "fd" and probe != "gaussian":
        raise ValueError("method='fd' is the Gaussian perturbation estimator of Thm 4.1: use probe='gaussian'")
    if method == "auto" and rtol is None:
        raise ValueError("method='auto' needs rtol, the relative standard error to meet")
    if batch_size is not None:
        kernels._check_batch_size(batch_size)
    x = _check_x(x)
    n, k = x.shape[0], _output_dim(apply_fn, params, x)

    if method == "exact":
        return _result(None, float(np.sum(_exact_diagonal(apply_fn, params, x, batch_size, vmap_axes))), "exact",
                       None, n, k)
    key = _check_key(key, method)
    if method in ("jvp", "fd"):
        return _probe_estimate(apply_fn, params, x, key, method, probe, eps, antithetic, probes, rtol, pilot_probes,
                               n, k, max_probes=max_probes)
    return _auto(apply_fn, params, x, key, probe, rtol, pilot_probes, batch_size, vmap_axes, n, k, max_probes)


@functools.lru_cache(maxsize=64)
def _sweep_fn(apply_fn: ApplyFn):
    """A jitted ``(params, x, keys, signs, eps) -> (JVP values, FD values (probes, len(eps)))``:
    each probe is drawn once and used for the JVP and for every step ``eps``."""

    def one(params, x, f0, key, sign, eps):
        v = _signed_probe(key, params, "gaussian", sign)
        return _jvp_value(apply_fn, params, x, v), jax.lax.map(lambda e: _fd_value(apply_fn, params, x, f0, v, e), eps)

    @jax.jit
    def run(params, x, keys, signs, eps):
        f0 = apply_fn(params, x)
        return jax.lax.map(lambda ks: one(params, x, f0, ks[0], ks[1], eps), (keys, signs))

    return run


def fd_sweep(
    apply_fn: ApplyFn,
    params: Any,
    x: Any,
    eps: Any,
    *,
    key: jax.Array,
    probes: int,
    antithetic: bool = False,
) -> tuple[TraceEstimate, list[TraceEstimate]]:
    """Hutchinson's JVP estimate and the finite-difference estimate ([trace] Thm 4.1) at every step in
    ``eps``, all on the same Gaussian probes.

    Where every probe value is finite, the result equals ``ntk_trace(..., method="jvp")`` and
    ``[ntk_trace(..., method="fd", eps=e) for e in eps]`` with the same ``key``, ``probes`` and
    ``antithetic`` (bit for bit in the benchmark and at chapter 6's sizes; the tests allow float
    rounding), but each probe is drawn once instead of ``1 + len(eps)`` times; where a value is not
    finite, ``fd_sweep`` raises. For a small network drawing the probe costs more than
    the passes through the network (``benchmarks/trace.py``, ``fd_sweep``), so a study of the FD bias
    against ``eps`` (chapter 6, §6.2) is several times cheaper this way. The differences between the
    estimates are then common-random-number differences: the probe noise they share cancels.

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)``.
        params: parameters (a pytree of float arrays).
        x: inputs ``(N, ...)``.
        eps: the finite-difference steps, a non-empty 1-D sequence of finite numbers > 0.
        key: PRNG key for the probes.
        probes: number of probes (>= 1; rounded up to even with ``antithetic``).
        antithetic: probes in pairs ``(v, -v)``, as in :func:`ntk_trace`.

    Returns:
        ``(jvp_estimate, [fd_estimate for each eps])``, :class:`TraceEstimate` objects.

    Raises:
        ValueError: an empty or non-numeric ``eps``, a step that is not > 0 and finite (NaN and inf
            included) in float64 or in the parameters' dtype, ``probes < 1``, a missing key, bad
            shapes or non-finite ``x``; all before any probe is drawn.
        TypeError: a key that is not a PRNG key, a non-boolean ``antithetic``.
        FloatingPointError: a probe value that is not finite (outputs overflowing).
    """
    eps_raw = np.asarray(eps)
    if eps_raw.dtype.kind not in "iuf":
        raise ValueError(f"eps must be a sequence of numbers (finite steps > 0), got dtype {eps_raw.dtype}")
    eps_arr = eps_raw.astype(np.float64)
    if eps_arr.ndim != 1 or eps_arr.size == 0:
        raise ValueError(f"eps must be a non-empty 1-D sequence of steps, got shape {eps_arr.shape}")
    eps_list = [_checks.positive(float(e), f"eps[{i}]") for i, e in enumerate(eps_arr)]
    probes = _checks.positive_int(probes, "probes")
    _checks.boolean(antithetic, "antithetic")
    key = _check_key(key, "fd")
    x = _check_x(x)
    n, k = x.shape[0], _output_dim(apply_fn, params, x)
    # each step is used in the parameters' precision: it must stay > 0 and finite there
    leaves = jax.tree_util.tree_leaves(params)
    p_dtype = jnp.result_type(*leaves) if leaves else jnp.result_type(float)
    for i, e in enumerate(eps_list):
        e_p = float(np.asarray(e, dtype=p_dtype))
        if not (math.isfinite(e_p) and e_p > 0):
            raise ValueError(f"eps[{i}] = {e!r} becomes {e_p!r} in the parameters' dtype {np.dtype(p_dtype).name}: "
                             "use a step that is > 0 and finite in that precision")
    probes = (2 if antithetic else 1) * math.ceil(probes / (2 if antithetic else 1))
    keys, signs = _probe_keys(key, probes, antithetic)
    jvp_vals, fd_vals = _sweep_fn(apply_fn)(params, x, keys, signs, jnp.asarray(eps_list))
    jvp_vals, fd_vals = np.asarray(jvp_vals, np.float64), np.asarray(fd_vals, np.float64)
    if not (np.all(np.isfinite(jvp_vals)) and np.all(np.isfinite(fd_vals))):
        raise FloatingPointError("the probe values are not finite: the network's outputs or their squares overflow "
                                 "at these parameters or at the perturbed ones (a very large eps perturbs too far)")
    return (_result(jvp_vals, 0.0, "jvp", None, n, k, antithetic),
            [_result(fd_vals[:, i], 0.0, "fd", e, n, k, antithetic) for i, e in enumerate(eps_list)])


def _probe_estimate(apply_fn, params, x, key, method, probe, eps, antithetic, probes, rtol, pilot, n, k,
                    mask=None, max_probes: int = MAX_PROBES) -> TraceEstimate:
    eps_used = eps if method == "fd" else None
    per_unit = 2 if antithetic else 1  # probes per independent unit; antithetic counts are rounded up to even
    if probes is None and rtol is None:
        probes = 16
    if probes is not None:
        probes = per_unit * math.ceil(probes / per_unit)
        samples = _estimates(apply_fn, params, x, key, probes, method, probe, eps, antithetic, mask)
        return _result(samples, 0.0, method, eps_used, n, k, antithetic)
    # rtol given. A Gaussian probe's estimate v^T K v has variance 2 ||K||_F^2 >= 2 Tr(K)^2 / (N k)
    # (K is N k x N k and PSD), so no run reaches rtol with fewer than 2 / (N k rtol^2) probes:
    # refuse a hopeless rtol before drawing any probe.
    if probe == "gaussian":
        at_least = math.ceil(2.0 / (n * k * rtol**2))
        if at_least > max_probes:
            raise ValueError(
                f"rtol={rtol:g} needs at least {at_least} Gaussian probes for N k = {n * k} outputs "
                f"(more than max_probes={max_probes}): ask for a larger rtol, raise max_probes, or use method='exact'")
    # Then: pilot, then as many probes as an upper confidence bound on the
    # variance asks for, then once more from everything drawn (continuing the key stream).
    k_pilot, k_more = jax.random.split(key)
    pilot = per_unit * max(math.ceil(pilot / per_unit), 2)
    samples = _estimates(apply_fn, params, x, k_pilot, pilot, method, probe, eps, antithetic, mask)
    for k_round in jax.random.split(k_more, 2):
        needed = per_unit * _probes_needed(_units(samples, antithetic), rtol)
        if needed > max_probes:
            raise ValueError(
                f"rtol={rtol:g} needs about {needed} probes (more than max_probes={max_probes}): "
                f"ask for a larger rtol, raise max_probes, or use method='exact'")
        if needed <= samples.size:
            break
        more = _estimates(apply_fn, params, x, k_round, needed - samples.size, method, probe, eps, antithetic, mask)
        samples = np.concatenate([samples, more])
    return _result(samples, 0.0, method, eps_used, n, k, antithetic)


def _probes_needed(samples: np.ndarray, rtol: float, confidence: float = RTOL_CONFIDENCE) -> int:
    """Probes for a relative standard error ``rtol``: ``ceil(var_up / (mean^2 rtol^2))``.

    ``var_up`` is the one-sided upper confidence bound ``(m - 1) s^2 / chi2_{1-c}(m - 1)``
    on the per-probe variance from ``m`` samples (exact for Gaussian samples; the
    per-probe values are quadratic forms, so it is approximate, and the second
    round in :func:`_probe_estimate` corrects what it misses).
    """
    from scipy import stats

    mean = float(np.mean(samples))
    m = samples.size
    if m > 1:
        var = float(np.var(samples, ddof=1)) * (m - 1) / float(stats.chi2.ppf(1.0 - confidence, m - 1))
    else:
        var = mean**2 * 2.0  # Gaussian worst case: 2 Tr(K)^2
    if not math.isfinite(mean) or not math.isfinite(var):
        raise FloatingPointError(f"the probe values are not finite (mean {mean}, variance {var}): "
                                 "the network's outputs or gradients overflow at these parameters")
    if mean <= 0:
        return samples.size
    return max(int(math.ceil(var / (mean**2 * rtol**2))), 1)


def _choose(c_exact: float, c_probe: float, pilot: int, pilot_samples: np.ndarray | None, rtol: float,
            max_probes: int = MAX_PROBES) -> tuple[str, int]:
    """The cost model of ``method="auto"``: ``("exact", 0)``, ``("pilot", pilot)`` or ``("jvp", probes)``.

    ``c_exact`` and ``c_probe`` are the costs (XLA flop counts) of the exact trace
    and of one probe; a cost that is not a finite positive number means "unknown",
    and then exact is taken. Without pilot samples, decide whether a pilot is
    worth running (exact costs no more than ``pilot`` probes: take exact). With
    them, the estimator needs :func:`_probes_needed` probes; take it only if that
    is cheaper and within ``max_probes``.
    """
    if not (math.isfinite(c_exact) and math.isfinite(c_probe) and c_exact > 0 and c_probe > 0):
        return "exact", 0
    if c_exact <= pilot * c_probe:
        return "exact", 0
    if pilot_samples is None:
        return "pilot", pilot
    needed = max(_probes_needed(pilot_samples, rtol), pilot_samples.size)
    return ("jvp", needed) if needed * c_probe < c_exact and needed <= max_probes else ("exact", 0)


def _flops(lowered: Any) -> float:
    """XLA's flop count of a lowered computation (``nan`` if unavailable)."""
    try:
        return float(timing.xla_accounting(lowered.compile())["flops"])
    except Exception:  # noqa: BLE001 - a backend without cost analysis means "unknown cost"
        return math.nan


def _flop_costs(apply_fn, params, x, probe, batch_size, vmap_axes, key) -> tuple[float, float]:
    n = x.shape[0]
    rows = n if batch_size is None else min(batch_size, n)
    xb = x[:rows]
    blocks = math.ceil(n / rows)
    exact_block = jax.jit(lambda p, xx: kernels.empirical_ntk(apply_fn, p, xx, trace_axes=(-1,), diagonal_axes=(0,),
                                                              vmap_axes=vmap_axes))
    c_exact = blocks * _flops(exact_block.lower(params, xb))
    fn = _probe_fn(apply_fn, "jvp", probe)
    if key is None:  # only the program's size is needed: lower on the key's shape, draw nothing
        keys, signs = jax.ShapeDtypeStruct((1, 2), jnp.uint32), jax.ShapeDtypeStruct((1,), jnp.float32)
    else:
        keys, signs = _probe_keys(key, 1, False)
    c_probe = blocks * _flops(fn.lower(params, xb, keys, signs, jnp.asarray(1.0)))
    return c_exact, c_probe


def flop_costs(
    apply_fn: ApplyFn, params: Any, x: Any, *, probe: ProbeKind = "gaussian", batch_size: int | None = 128,
    vmap_axes: Any = 0,
) -> tuple[float, float]:
    """XLA's flop counts of the exact trace and of one JVP probe: the cost model of ``method="auto"``.

    Flop counts are a property of the compiled programs, not of the machine or its
    load, so a comparison built on them gives the same answer on every run
    (wall-clock comparisons live in appendix A). The estimator's cost at a
    relative error ``r`` is ``c_probe * (per-probe relative variance) / r^2``
    ([trace] Thm 4.1 and Hutchinson 1989 for the variance).

    Args:
        apply_fn, params, x: the network, its parameters and the inputs, as for :func:`ntk_trace`.
        probe: ``"gaussian"`` or ``"rademacher"`` (the same program size either way).
        batch_size: inputs per exact block; ``None`` for one block.
        vmap_axes: as for :func:`exact_diagonal`.

    Returns:
        ``(c_exact, c_probe)``; ``nan`` where the backend reports no count.
    """
    x = _check_x(x)
    _checks.choice(probe, "probe", ("gaussian", "rademacher"))
    if batch_size is not None:
        kernels._check_batch_size(batch_size)
    return _flop_costs(apply_fn, params, x, probe, batch_size, vmap_axes, None)


def _auto(apply_fn, params, x, key, probe, rtol, pilot, batch_size, vmap_axes, n, k,
          max_probes: int = MAX_PROBES) -> TraceEstimate:
    # Exact costs scale with the number of inputs, and so does a probe: count the
    # flops of both on one block of inputs and scale to all blocks. Flop counts are
    # a property of the compiled programs, so the choice is the same on every run.
    c_exact, c_probe = _flop_costs(apply_fn, params, x, probe, batch_size, vmap_axes, key)
    choice, needed = _choose(c_exact, c_probe, pilot, None, rtol, max_probes)
    samples = None
    if choice == "pilot":
        k_pilot, k_more = jax.random.split(key)
        samples = _estimates(apply_fn, params, x, k_pilot, pilot, "jvp", probe, 1.0, False)
        choice, needed = _choose(c_exact, c_probe, pilot, samples, rtol, max_probes)
    if choice == "exact":
        return _result(None, float(np.sum(_exact_diagonal(apply_fn, params, x, batch_size, vmap_axes))),
                       "exact", None, n, k)
    if needed > samples.size:
        samples = np.concatenate([samples, _estimates(apply_fn, params, x, k_more, needed - samples.size, "jvp",
                                                      probe, 1.0, False)])
    return _result(samples, 0.0, "jvp", None, n, k)


def trace_recorder(
    apply_fn: ApplyFn, x: Any, *, method: Method = "exact", key: jax.Array | None = None, **kwargs: Any
) -> Callable[[Any], float]:
    """A function ``params -> Tr K(x, x) / (N k)`` for recording during training.

    The same probe key is used at every call (common random numbers), so with an
    estimator the recorded curve is smooth in time and its changes are not
    probe noise. Keyword arguments go to :func:`ntk_trace`.
    """
    x = _check_x(x)
    _checks.choice(method, "method", METHODS)
    if method != "exact":
        _check_key(key, method)

    def record(params: Any) -> float:
        return ntk_trace(apply_fn, params, x, method=method, key=key, **kwargs).normalized

    return record


# ------------------------------------------------------------------- layerwise traces
def stax_layer_groups(params: Any) -> dict[str, Any]:
    """Masks selecting each layer of a ``stax.serial`` model: ``{"layer1": mask, ...}``.

    Layer ``l`` is the ``l``-th entry of ``params`` that holds parameters (as in
    :func:`ntkbook.models.named_layers`); a mask is a pytree of booleans shaped
    like ``params``.
    """
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params must be the list returned by a stax.serial init_fn, got {type(params).__name__}")
    groups: dict[str, Any] = {}
    layer = 0
    for i, entry in enumerate(params):
        if not jax.tree_util.tree_leaves(entry):
            continue
        layer += 1
        groups[f"layer{layer}"] = type(params)(
            jax.tree_util.tree_map(lambda _: j == i, e) for j, e in enumerate(params)
        )
    return groups


def _check_mask(mask: Any, params: Any, name: str) -> Any:
    try:
        flags = jax.tree_util.tree_map(lambda m, p: bool(m), mask, params)
    except (ValueError, TypeError) as err:
        raise ValueError(f"group {name!r}: mask must be a pytree of booleans shaped like params ({err})") from None
    if not any(jax.tree_util.tree_leaves(flags)):
        raise ValueError(f"group {name!r} selects no parameters")
    return flags


def layer_traces(
    apply_fn: ApplyFn,
    params: Any,
    x: Any,
    groups: Mapping[str, Any] | None = None,
    *,
    method: Literal["exact", "jvp", "fd"] = "exact",
    key: jax.Array | None = None,
    probes: int | None = None,
    eps: float = 1e-2,
    batch_size: int | None = 128,
    vmap_axes: Any = 0,
) -> dict[str, TraceEstimate]:
    """``Tr K_g(X, X)`` of the NTK restricted to each parameter group ``g``.

    The NTK is a sum over parameters, so ``Tr K = sum_g Tr K_g`` for a partition
    of the parameters into groups: this shows which layers the kernel (and its
    change during training) lives in.

    Args:
        apply_fn, params, x: as in :func:`ntk_trace`.
        groups: ``{name: mask}`` with masks as from :func:`stax_layer_groups`
            (the default, one group per layer of a ``stax.serial`` model).
        method: ``"exact"`` (neural-tangents on the group's parameters) or an
            estimator that perturbs only the group's parameters.
        key, probes, eps, batch_size, vmap_axes: as in :func:`ntk_trace`.

    Returns:
        ``{name: TraceEstimate}`` in the order of ``groups``.
    """
    if method not in ("exact", "jvp", "fd"):
        raise ValueError(f"method must be 'exact', 'jvp' or 'fd', got {method!r}")
    x = _check_x(x)
    eps = _checks.positive(eps, "eps")
    if probes is not None:
        probes = _checks.positive_int(probes, "probes")
    groups = stax_layer_groups(params) if groups is None else dict(groups)
    if not groups:
        raise ValueError("groups must name at least one parameter group")
    n, k = x.shape[0], _output_dim(apply_fn, params, x)
    if method != "exact":
        key = _check_key(key, method)
    out: dict[str, TraceEstimate] = {}
    for gi, (name, mask) in enumerate(groups.items()):
        static = _StaticMask(_check_mask(mask, params, name))
        if method == "exact":
            diag = _exact_diagonal(_group_apply(apply_fn, static), params, x, batch_size, vmap_axes)
            out[name] = _result(None, float(np.sum(diag)), "exact", None, n, k)
        else:
            samples = _estimates(apply_fn, params, x, jax.random.fold_in(key, gi), probes or 16, method, "gaussian",
                                 eps, False, static)
            out[name] = _result(samples, 0.0, method, eps if method == "fd" else None, n, k)
    return out


@functools.lru_cache(maxsize=64)
def _group_apply(apply_fn: ApplyFn, mask: _StaticMask) -> ApplyFn:
    """``apply_fn`` with ``stop_gradient`` on the parameters outside ``mask``: its NTK is ``K_g``."""

    def fn(params, x):
        flags = jax.tree_util.tree_unflatten(mask.treedef, list(mask.leaves))
        held = jax.tree_util.tree_map(lambda p, m: p if m else jax.lax.stop_gradient(p), params, flags)
        return apply_fn(held, x)

    return fn


def output_traces(
    apply_fns: Mapping[str, ApplyFn],
    params: Any,
    x: Any,
    *,
    method: Method = "exact",
    key: jax.Array | None = None,
    **kwargs: Any,
) -> dict[str, TraceEstimate]:
    """Traces of the NTKs of several outputs of one network ([trace] Sect. 5.1).

    ``apply_fns`` maps a name to a function ``(params, x) -> (N, k_l)`` giving an
    intermediate output (e.g. a hidden layer, flattened) or the logits of the
    same parameters; each trace is normalised by its own ``N k_l``, as in the
    paper's layerwise figure. Keyword arguments go to :func:`ntk_trace`; each
    output gets its own probes (``fold_in(key, i)``).
    """
    if not apply_fns:
        raise ValueError("apply_fns must name at least one output")
    out = {}
    for i, (name, fn) in enumerate(apply_fns.items()):
        sub_key = None if key is None else jax.random.fold_in(key, i)
        out[name] = ntk_trace(fn, params, x, method=method, key=sub_key, **kwargs)
    return out


# --------------------------------------------------------------- input perturbation
@functools.lru_cache(maxsize=32)
def _input_probe_fn(apply_fn: ApplyFn, limit: bool):
    @jax.jit
    def run(params, x, keys, eps):
        f0 = apply_fn(params, x)

        def one(key):
            u = jax.random.normal(key, x.shape, x.dtype)
            if limit:
                _, t = jax.jvp(lambda xx: apply_fn(params, xx), (x,), (u,))
                return jnp.sum(jnp.square(t))
            diff = apply_fn(params, x + eps.astype(x.dtype) * u) - f0
            return jnp.sum(jnp.square(diff)) / jnp.square(eps.astype(diff.dtype))

        return jax.lax.map(one, keys)

    return run


def input_perturbation_distance(
    apply_fn: ApplyFn,
    params: Any,
    x: Any,
    *,
    key: jax.Array,
    eps: float = 1e-2,
    probes: int = 1,
    limit: bool = False,
) -> TraceEstimate:
    """The logit input-perturbation distance ``||f(X + D; w) - f(X; w)||_F^2 / eps^2`` ([trace] Sect. 5.2).

    ``D`` is Gaussian noise with standard deviation ``eps`` added to every input
    entry; the value is averaged over ``probes`` draws. As ``eps -> 0`` its
    expectation tends to ``sum_i ||d f(x_i) / d x_i||_F^2``, the squared Frobenius
    norm of the input Jacobian, which ``limit=True`` estimates directly with
    Jacobian-vector products (Hutchinson on the input side). It is the input-space
    twin of the trace estimator of Thm 4.1.

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)``.
        params: parameters.
        x: inputs ``(N, ...)`` (floating point).
        key: PRNG key for the perturbations.
        eps: noise level (> 0).
        probes: number of draws (>= 1).
        limit: estimate the ``eps -> 0`` limit with JVPs instead.

    Returns:
        A :class:`TraceEstimate` (``method`` is ``"input-fd"`` or ``"input-jvp"``;
        ``normalized`` divides by ``N k``).
    """
    x = _check_x(x)
    eps = _checks.positive(eps, "eps")
    probes = _checks.positive_int(probes, "probes")
    key = _check_key(key, "input perturbation")
    n, k = x.shape[0], _output_dim(apply_fn, params, x)
    keys = jax.random.split(key, probes)
    samples = np.asarray(_input_probe_fn(apply_fn, bool(limit))(params, x, keys, jnp.asarray(eps)), dtype=np.float64)
    return _result(samples, 0.0, "input-jvp" if limit else "input-fd", None if limit else eps, n, k)


# ------------------------------------------------------------- scale vs direction
class KernelChange(NamedTuple):
    """How a kernel ``K1`` differs from ``K0``: a rescaling of ``K0`` plus a turn.

    Attributes:
        scale: ``c = <K1, K0>_F / ||K0||_F^2``, the multiple of ``K0`` closest to ``K1``.
        turn_share: ``||K1 - c K0||_F^2 / ||K1 - K0||_F^2`` in ``[0, 1]``, the share
            of the squared change that is orthogonal to ``K0`` (a change of
            direction); ``1 - turn_share`` is the share along ``K0`` (a change of
            scale). ``0`` when ``K1 = K0``.
        distance: the kernel distance ``S(K0, K1) = 1 - cos`` of [Fort et al. 2020].
    """

    scale: float
    turn_share: float
    distance: float


def _flat_kernel(k: Any, name: str) -> np.ndarray:
    # A symmetric float64 matrix; neural-tangents' (N, N, k, k) blocks are flattened to (N k, N k).
    # (metrics._as_kernel only checks shapes and keeps the blocks.)
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 4:  # neural-tangents' (N, N, k, k) layout -> (N k, N k)
        n, _, a, _ = k.shape
        k = k.transpose(0, 2, 1, 3).reshape(n * a, n * a)
    return _checks.symmetric(k, name)


def centred_kernel(kernel: Any) -> np.ndarray:
    """``H K H`` with ``H = I - 1 1^T / n``: the kernel of the centred features.

    Accepts an ``(n, n)`` matrix or neural-tangents' full ``(N, N, k, k)`` kernel,
    which is first flattened to ``(N k, N k)`` (input-major). Centring removes the
    mean feature, which in an NTK is a large common mode that makes every pair of
    inputs look alike (cf. the centred alignment of Cortes et al. 2012).
    """
    k = _flat_kernel(kernel, "kernel")
    n = k.shape[0]
    if n < 2:
        raise ValueError(f"kernel must be at least 2 x 2 to centre, got {k.shape}")
    h = np.eye(n) - 1.0 / n
    return h @ k @ h


def kernel_change(k0: Any, k1: Any) -> KernelChange:
    """Split the change from ``K0`` to ``K1`` into a rescaling of ``K0`` and a turn.

    ``K1 = c K0 + R`` with ``<R, K0>_F = 0``, so ``K1 - K0 = (c - 1) K0 + R`` and the
    squared change splits exactly, ``||K1 - K0||^2 = (c-1)^2 ||K0||^2 + ||R||^2``.
    The kernel distance of [Fort et al. 2020] sees only the turn (it is one minus a
    cosine, blind to ``c``); the trace sees mostly the scale, which is why the
    trace-evolution paper pairs the two ([trace] Thm 4.3). Accepts ``(n, n)``
    matrices or full ``(N, N, k, k)`` kernels (flattened input-major).
    """
    a, b = _flat_kernel(k0, "k0"), _flat_kernel(k1, "k1")
    if a.shape != b.shape:
        raise ValueError(f"k0 and k1 must have the same shape, got {a.shape} and {b.shape}")
    n0 = float(np.sum(a * a))
    if n0 <= 0:
        raise ValueError("k0 must be nonzero")
    c = float(np.sum(a * b)) / n0
    rest = b - c * a
    change = float(np.sum((b - a) ** 2))
    turn = float(np.sum(rest * rest))
    share = 0.0 if change == 0 else min(1.0, turn / change)
    n1 = float(np.sqrt(np.sum(b * b)))
    distance = 1.0 - float(np.sum(a * b)) / (float(np.sqrt(n0)) * n1) if n1 > 0 else 1.0
    return KernelChange(c, share, distance)


def homogeneous_split(norms: Any, direction_traces: Any, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``log Tr K(w_t) - log Tr K(w_0)`` of an ``L``-homogeneous network into norm and direction parts.

    For ``f(x; c w) = c^L f(x; w)`` the gradients scale as ``c^(L-1)``, so
    ``Tr K(w) = ||w||^(2(L-1)) Tr K(w / ||w||)`` (ch. 7; the link between the raw
    trace of [trace] Sect. 4 and the kernel at the direction used by its Thm 4.2).
    Returns ``(norm_part, direction_part)`` with
    ``norm_part = 2 (L-1) log(||w_t|| / ||w_0||)`` and
    ``direction_part = log(Tr K(w_t/||w_t||) / Tr K(w_0/||w_0||))``; their sum is the
    log of the raw trace ratio.

    Args:
        norms: ``||w_t||`` at each record (positive).
        direction_traces: ``Tr K(w_t / ||w_t||)`` at each record (positive).
        degree: the homogeneity order ``L`` (>= 1).
    """
    degree = _checks.positive_int(degree, "degree")
    norms = np.asarray(norms, dtype=np.float64)
    tr = np.asarray(direction_traces, dtype=np.float64)
    if norms.ndim != 1 or norms.shape != tr.shape or norms.size == 0:
        raise ValueError(f"norms and direction_traces must be nonempty and of equal length, got {norms.shape}, {tr.shape}")
    if not (np.all(np.isfinite(norms)) and np.all(np.isfinite(tr)) and np.all(norms > 0) and np.all(tr > 0)):
        raise ValueError("norms and direction_traces must be finite and positive")
    return 2 * (degree - 1) * np.log(norms / norms[0]), np.log(tr / tr[0])
