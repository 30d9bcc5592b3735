"""Argument checks shared by every public function of ``ntkbook``.

Each check returns the value in the form the caller should use (an ``int``, a
``float``, a JAX array, a key) or raises before any expensive work, with a
message that names the argument and says what was expected. Every check on a
number is also a finiteness check: ``x < 0`` is false for NaN, so a test written
that way lets NaN through; these never do.

- :func:`key`: a PRNG key (a typed key, or a raw ``uint32`` key of shape ``(2,)``).
- :func:`positive_int`, :func:`nonneg_int`: integers (``bool`` is refused).
- :func:`finite`, :func:`positive`, :func:`nonneg`, :func:`probability`:
  finite real scalars, optionally bounded.
- :func:`finite_array`: a float array without NaN or inf, optionally of a given rank.
- :func:`labels`: integer class labels in ``[0, num_classes)``.
- :func:`choice`, :func:`boolean`: one of a set of strings; a real ``bool``.
- :func:`finite_values`: a NumPy array of finite reals in a range (array-valued
  arguments of the closed-form formulas).
- :func:`positive_ints`: a non-empty sequence of positive integers (widths, depths).
- :func:`float_dtype`: a floating-point dtype.
- :func:`same_rows`: two arrays with the same number of rows (``x`` vs ``y``).
- :func:`symmetric`: a square matrix equal to its transpose up to rounding.
- :func:`network_inputs`: inputs the network's parameters accept (traced with
  :func:`jax.eval_shape`: no compile, no FLOPs), e.g. 3 channels for a 2-channel
  net, 5x5 images for a 6x6 one, ``int32`` pixels.
- :func:`layer_count` / :func:`checked_apply`: a ``stax.serial`` parameter list
  with one entry per layer (``stax`` zips layers with parameters, so
  ``params[:-1]`` would silently drop the last layer).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_REAL = (int, float, np.integer, np.floating)


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (inside ``jit``/``vmap``/``grad``: no concrete values to check)."""
    return isinstance(value, jax.core.Tracer)


def key(value: Any, name: str = "key") -> jax.Array:
    """A JAX PRNG key: a typed key array of shape ``()`` or a raw ``uint32`` key of shape ``(2,)``.

    Raises:
        TypeError: anything else (an ``int`` seed, a float array, a batch of keys).
    """
    if isinstance(value, jax.Array):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key) and value.shape == ():
            return value
        if value.dtype == jnp.uint32 and value.shape == (2,):
            return value
    kind = type(value).__name__
    if isinstance(value, (jax.Array, np.ndarray)):
        kind = f"an array of dtype {value.dtype} and shape {tuple(value.shape)}"
    raise TypeError(
        f"{name} must be a single JAX PRNG key (e.g. cfg.key(0) or jax.random.PRNGKey(0)), got {kind}"
    )


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (``bool`` refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def nonneg_int(value: Any, name: str) -> int:
    """An integer ``>= 0`` (``bool`` refused)."""
    return positive_int(value, name, minimum=0)


def finite(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """A finite real scalar in ``[low, high]`` (ends open where asked). NaN and inf are refused.

    Accepts Python and NumPy numbers and 0-d arrays; ``bool`` is refused.
    """
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name} must be a number (a real scalar), got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        words = {(0.0, True): "positive (> 0)", (0.0, False): "non-negative (>= 0)"}.get(
            (low, low_open), f"{'>' if low_open else '>='} {low:g}")
        raise ValueError(f"{name} must be {words}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value!r}")
    return v


def positive(value: Any, name: str) -> float:
    """A finite real ``> 0``."""
    return finite(value, name, low=0.0, low_open=True)


def nonneg(value: Any, name: str) -> float:
    """A finite real ``>= 0``."""
    return finite(value, name, low=0.0)


def probability(value: Any, name: str, *, open_low: bool = False, open_high: bool = False) -> float:
    """A finite real in ``[0, 1]`` (ends open where asked)."""
    return finite(value, name, low=0.0, high=1.0, low_open=open_low, high_open=open_high)


def finite_array(value: Any, name: str, *, ndim: int | Iterable[int] | None = None, dtype: Any = None) -> jax.Array:
    """A floating-point array without NaN or inf, of rank ``ndim`` (one of, if a set) where given.

    Integer inputs are refused (a network fed ``int32`` pixels fails deep inside
    XLA); cast them first. ``dtype`` converts the result (e.g. ``jnp.float32``).
    """
    arr = jnp.asarray(value) if dtype is None else jnp.asarray(value, dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = {ndim} if isinstance(ndim, int) else set(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, sorted(allowed)))} dimensions, "
                             f"got shape {tuple(arr.shape)}")
    if is_traced(arr):
        return arr  # under jit/vmap the values are unknown; the shape and dtype checks still ran
    bad = int(np.sum(~np.isfinite(np.asarray(arr))))  # NumPy: also valid for a constant inside jit
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or inf entries")
    return arr


def labels(value: Any, name: str, num_classes: int | None = None) -> np.ndarray:
    """1-D integer class labels, all in ``[0, num_classes)`` where ``num_classes`` is given."""
    arr = np.asarray(value)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer class labels, got dtype {arr.dtype} "
                         f"and shape {arr.shape}")
    if num_classes is not None and arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got labels {arr.min()}..{arr.max()}")
    return arr


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """One of ``options``."""
    opts = tuple(options)
    if value not in opts:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, opts))}, got {value!r}")
    return value


def boolean(value: Any, name: str) -> bool:
    """A real ``bool`` (``"no"``, ``0`` and ``None`` are refused: they are truthy or falsy by accident)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def positive_ints(values: Any, name: str, *, allow_empty: bool = False, minimum: int = 1) -> tuple[int, ...]:
    """A sequence of integers ``>= minimum`` (non-empty unless ``allow_empty``), as a tuple of ``int``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of integers (e.g. [512, 512]), got {type(values).__name__} {values!r}")
    values = tuple(values)
    if not values and not allow_empty:
        raise ValueError(f"{name} must list at least one value, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ValueError(f"{name} must be integers >= {minimum}, got {values!r}")
    return tuple(int(v) for v in values)


def float_dtype(value: Any, name: str) -> Any:
    """A floating-point dtype (``jnp.float32``, ``np.float64``, ...)."""
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be a floating-point dtype, got {value!r}") from None
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"{name} must be a floating-point dtype, got {dt}")
    return value


def same_rows(a: Any, name_a: str, b: Any, name_b: str) -> int:
    """The common leading dimension of ``a`` and ``b`` (one row per example in each)."""
    na, nb = np.shape(a), np.shape(b)
    if not na or not nb or na[0] != nb[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of rows (one per example), "
                         f"got shapes {tuple(na)} and {tuple(nb)}")
    return int(na[0])


def symmetric(value: Any, name: str, *, rtol: float = 1e-4) -> np.ndarray:
    """A finite square matrix with ``max |K - K^T| <= rtol * max |K|`` (returned as given, as NumPy)."""
    if is_traced(value):
        if value.ndim != 2 or value.shape[0] != value.shape[1]:
            raise ValueError(f"{name} must be a square matrix, got shape {tuple(value.shape)}")
        return value
    k = np.asarray(value)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {k.shape}")
    if not np.issubdtype(k.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {k.dtype}")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(k)))} NaN or inf entries")
    scale = float(np.max(np.abs(k))) if k.size else 0.0
    asym = float(np.max(np.abs(k - k.T))) if k.size else 0.0
    if asym > rtol * scale:
        raise ValueError(f"{name} must be symmetric (a kernel matrix); max |K - K^T| = {asym:.3g} "
                         f"vs max |K| = {scale:.3g}")
    return k


class ParamsMismatch(ValueError):
    """``params`` do not have one entry per layer of the network."""


def layer_count(params: Any, expected: int, name: str = "params") -> None:
    """Refuse a ``stax.serial`` parameter list whose length is not the network's layer count."""
    if not isinstance(params, (list, tuple)):
        raise ParamsMismatch(f"{name} must be the list of per-layer parameters from the network's init_fn "
                             f"({expected} entries), got {type(params).__name__}")
    if len(params) != expected:
        raise ParamsMismatch(f"{name} has {len(params)} entries but the network has {expected} layers "
                             f"(one entry per layer, parameter-free layers included; params[:-1] would drop "
                             f"the last layer)")


def checked_apply(apply_fn: Any, n_layers: int) -> Any:
    """``apply_fn`` of a ``stax.serial`` network, refusing parameters with the wrong number of layers.

    The check is Python run once per trace (under ``jit`` once per compile); the
    computation is the unchanged ``apply_fn``.
    """

    @functools.wraps(apply_fn)
    def apply(params, x, **kwargs):
        layer_count(params, n_layers)
        return apply_fn(params, x, **kwargs)

    apply.n_layers = n_layers
    return apply


def network_inputs(apply_fn: Any, params: Any, x: Any, name: str = "x", *, allow_int: bool = False) -> jax.Array:
    """Finite float inputs that ``apply_fn(params, x)`` accepts, checked by tracing (no compile).

    ``allow_int=True`` accepts integer inputs (token ids for an embedding).

    Raises:
        TypeError: integer inputs (unless ``allow_int``); ``apply_fn`` not callable.
        ValueError: NaN/inf entries, or a shape the parameters do not fit (the
            message names ``name`` and quotes the shape), or ``params`` with the
            wrong number of layers (:class:`ParamsMismatch`).
    """
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be a function f(params, x), got {type(apply_fn).__name__}")
    arr = jnp.asarray(x)
    if not (allow_int and jnp.issubdtype(arr.dtype, jnp.integer)):
        arr = finite_array(arr, name)
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, *features) with N >= 1, got {tuple(arr.shape)}")
    try:
        jax.eval_shape(apply_fn, params, arr)
    except ParamsMismatch:
        raise
    except (TypeError, ValueError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{name} of shape {tuple(arr.shape)} does not fit the network's parameters "
                         f"(check the input shape the network was initialised for): {first[:200]}") from None
    return arr


def finite_values(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False, slack: float = 0.0) -> np.ndarray:
    """A float64 NumPy array (any shape) of finite reals in ``[low - slack, high + slack]`` (ends open where asked)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be real numbers, got {type(value).__name__} {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {int(np.sum(~np.isfinite(arr)))} NaN or inf entries")
    if low is not None and (np.any(arr < low - slack) or (low_open and np.any(arr <= low))):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got minimum {arr.min():g}")
    if high is not None and (np.any(arr > high + slack) or (high_open and np.any(arr >= high))):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}, got maximum {arr.max():g}")
    return arr
