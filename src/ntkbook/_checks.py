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
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_REAL = (int, float, np.integer, np.floating)


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
    bad = int(jnp.sum(~jnp.isfinite(arr)))
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
