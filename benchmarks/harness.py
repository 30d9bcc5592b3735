"""Measuring tools shared by the benchmarks: timing, XLA cost and memory, machine description.

Everything here measures; nothing asserts a speed. The benchmark scripts call
these helpers side by side in one process, so the ratios they report compare
runs on the same machine under the same load. Timing and XLA's accounting are
thin wrappers over :mod:`ntkbook.timing`, which the library's own measuring
functions use too, so a benchmark and a chapter measure the same way.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ntkbook import timing


def timeit(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> dict[str, Any]:
    """Wall time of ``fn()`` after ``warmup`` calls (which absorb compilation).

    Returns the median and minimum over ``repeats`` calls and the raw times, in
    seconds (``median_s``, ``min_s``, ``times_s``): :func:`ntkbook.timing.best_time`.
    """
    return timing.best_time(fn, repeats=repeats, warmup=warmup)


def compiled_stats(jitted: Callable, *args: Any) -> dict[str, Any]:
    """Compile ``jitted(*args)`` without running it and read XLA's own accounting.

    ``flops`` is XLA's count for the compiled program; ``peak_bytes`` is the
    buffer assignment's total (arguments + outputs + temporaries), which is what
    the program needs resident at once on this backend. ``compile_s`` is the time
    to lower and compile. The byte counts are left out where the backend reports
    no memory analysis. See :mod:`ntkbook.timing`.
    """
    compiled, compile_s = timing.compile_timed(jitted, *args)
    acc = timing.xla_accounting(compiled)
    out = {"compile_s": compile_s, "flops": acc["flops"]}
    out.update({k: acc[k] for k in ("argument_bytes", "output_bytes", "temp_bytes", "peak_bytes")
                if acc[k] is not None})
    return out


def gemm_rate(n: int = 2048, *, repeats: int = 5, dtype: Any = jnp.float32) -> dict[str, Any]:
    """The float32 matrix-multiply rate of this machine, ``2 n^3`` flops per product.

    This is the practical ceiling the other kernels are compared against: a
    well-blocked GEMM is the fastest thing the CPU does.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    f = jax.jit(jnp.matmul)
    t = timeit(lambda: f(a, b), repeats=repeats, warmup=1)
    flops = 2.0 * n**3
    return {"n": n, "flops": flops, **t, "flops_per_s": flops / t["min_s"]}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes() -> int | None:
    """Memory the kernel says is available now (``MemAvailable``), or ``None``."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import jaxlib
    import neural_tangents as nt

    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_usable = os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": cores_usable,
        "memory_bytes": _memory_bytes(),
        "load_average_1m": load[0] if load else None,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "neural_tangents": getattr(nt, "__version__", "0.6.5"),
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "git_commit": _git_commit(),
    }
