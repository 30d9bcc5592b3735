"""Timing compiled JAX code and reading XLA's own accounting of it.

One place for the measuring steps that the library (:func:`ntkbook.kernels.kernel_cost`,
the ``"auto"`` choice of :func:`ntkbook.trace.ntk_trace`) and the benchmarks
(``benchmarks/harness.py``) share, so that every time and every byte count in
the book is taken the same way:

- :func:`best_time` calls a function ``warmup`` times untimed (these calls absorb
  compilation and first-touch costs), then times ``repeats`` calls, waiting for
  every result with :func:`jax.block_until_ready` (JAX dispatches asynchronously,
  so without the wait one would time the dispatch, not the computation). The
  minimum is the least disturbed run; the median is robust to a stray slow one.
- :func:`compile_timed` lowers and compiles a jitted function for given arguments
  without running it, and says how long that took.
- :func:`xla_accounting` reads what XLA reports for a compiled executable: its
  floating-point operation count (``Compiled.cost_analysis()``) and its buffer
  sizes (``Compiled.memory_analysis()``).

Nothing here asserts a speed; performance claims live in ``benchmarks/``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from . import _checks


def best_time(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> dict[str, Any]:
    """Wall time of ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Each call's result is waited for with :func:`jax.block_until_ready` (any pytree
    of arrays, or a plain Python value), so a time covers the whole computation.

    Args:
        fn: a function of no arguments, e.g. ``lambda: jitted(x, params)``.
        repeats: number of timed calls (>= 1).
        warmup: number of untimed calls before them (>= 0); one absorbs the
            compilation of a jitted function.

    Returns:
        ``{"median_s": ..., "min_s": ..., "times_s": [...]}``: the median and the
        minimum of the ``repeats`` times and the times themselves, in seconds.

    Raises:
        ValueError: ``repeats < 1`` or ``warmup < 0`` (or not integers), raised
            before ``fn`` is called.

    >>> best_time(lambda: f(a, b), repeats=5)["min_s"]
    """
    repeats = _checks.positive_int(repeats, "repeats")
    warmup = _checks.nonneg_int(warmup, "warmup")
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def compile_timed(jitted: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Lower and compile ``jitted`` for ``(*args, **kwargs)`` without running it.

    Args:
        jitted: a function wrapped by :func:`jax.jit` (anything with ``.lower``).
        *args, **kwargs: the arguments it will be called with (arrays or
            :class:`jax.ShapeDtypeStruct`).

    Returns:
        ``(compiled, seconds)``: the ``jax.stages.Compiled`` executable (call it
        with the same arguments) and the wall time of lowering plus compiling.

    Raises:
        TypeError: ``jitted`` has no ``lower`` method (is not jitted).
    """
    if not callable(getattr(jitted, "lower", None)):
        raise TypeError(f"jitted must be a jax.jit-wrapped function, got {type(jitted).__name__}")
    start = time.perf_counter()
    compiled = jitted.lower(*args, **kwargs).compile()
    return compiled, time.perf_counter() - start


def _byte_count(mem: Any, attr: str) -> int | None:
    value = getattr(mem, attr, None) if mem is not None else None
    return None if value is None else int(value)


def xla_accounting(compiled: Any) -> dict[str, Any]:
    """XLA's operation count and buffer sizes for a compiled executable.

    Args:
        compiled: a ``jax.stages.Compiled`` (e.g. from :func:`compile_timed`).

    Returns:
        A dict with

        - ``flops``: XLA's count of floating-point operations of the program
          (a multiply-add counts 2, so an ``(n, k) x (k, m)`` matrix product is
          ``2 n k m``); ``nan`` where the backend reports none. ``cost_analysis()``
          may return a dict, a list with one dict per program, or ``None``.
        - ``argument_bytes``, ``output_bytes``, ``temp_bytes``: the sizes of the
          program's input, output and temporary buffers from ``memory_analysis()``;
        - ``peak_bytes``: their sum, what the program needs resident at once on
          this backend.

        The byte counts are ``None`` where ``memory_analysis()`` returns ``None``
        (or lacks a field).
    """
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    flops = cost.get("flops") if isinstance(cost, dict) else None
    mem = compiled.memory_analysis()
    out: dict[str, Any] = {
        "flops": float(flops) if flops is not None else math.nan,
        "argument_bytes": _byte_count(mem, "argument_size_in_bytes"),
        "output_bytes": _byte_count(mem, "output_size_in_bytes"),
        "temp_bytes": _byte_count(mem, "temp_size_in_bytes"),
    }
    parts = (out["argument_bytes"], out["output_bytes"], out["temp_bytes"])
    out["peak_bytes"] = None if None in parts else sum(parts)
    return out
