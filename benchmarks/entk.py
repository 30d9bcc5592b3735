"""Benchmarks 1 and 4: the empirical NTK, by implementation, and computed in blocks.

1. neural-tangents' three implementations (Novak et al. 2022) and our plain-JAX
   reference, on the book's MLP and small CNN, over N and width: wall time,
   XLA's flop count and buffer bytes, and the achieved flop rate as a fraction
   of a float32 GEMM measured in the same run.
2. The blocked kernel (``empirical_ntk(..., batch_size=b)``) against one block:
   the time overhead of blocking, and the largest N whose kernel fits in memory
   either way (from XLA's buffer assignment, compiled but not run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ntkbook import data, kernels, models
from ntkbook.progress import track

from . import harness

import neural_tangents as nt  # noqa: E402  (after ntkbook, which patches it)

IMPLEMENTATIONS = ("structured", "jacobian", "ntvp", "reference")
_NT = {
    "structured": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
    "jacobian": nt.NtkImplementation.JACOBIAN_CONTRACTION,
    "ntvp": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
}

# Sizes: (model, width, N). The MLP is 64-w-w-w-10 and the CNN two 3x3 convolutions
# of w channels on the 8x8 digits, as in the chapters and STACK.md.
SIZES = {
    "tiny": {"mlp": [(16, 8)], "cnn": [(4, 4)]},
    "quick": {"mlp": [(128, 64), (512, 64)], "cnn": [(16, 32)]},
    "full": {"mlp": [(128, 64), (512, 64), (128, 256), (512, 256)], "cnn": [(16, 32), (64, 32), (64, 128)]},
}


def make_model(kind: str, width: int) -> tuple[Callable, Any, np.ndarray]:
    """The model, its parameters and all 1797 digits in the layout it takes."""
    if kind == "mlp":
        net, flatten = models.mlp([width] * 3, 10), True
    elif kind == "cnn":
        net, flatten = models.cnn([width, width], 10), False
    else:
        raise ValueError(f"kind must be 'mlp' or 'cnn', got {kind!r}")
    x, _ = data.digits(flatten=flatten)
    params = models.init_params(net, jax.random.PRNGKey(0), (-1,) + x.shape[1:])
    return net.apply_fn, params, x


def _n_params(params: Any) -> int:
    return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params)))


def kernel_program(apply_fn: Callable, implementation: str, trace: bool = False) -> Callable:
    """A jitted ``(x, params) -> Theta(x, x)`` for one implementation."""
    trace_axes = (-1,) if trace else ()
    if implementation == "reference":
        return jax.jit(lambda x, p: kernels.ntk_reference(apply_fn, p, x, trace_axes=trace_axes))
    fn = nt.empirical_ntk_fn(apply_fn, trace_axes=trace_axes, vmap_axes=0, implementation=_NT[implementation])
    return jax.jit(lambda x, p: fn(x, None, p))


def implementations(size: str = "quick", *, repeats: int = 2, memory_fraction: float = 0.25) -> dict[str, Any]:
    """Benchmark 1: every implementation on every (model, width, N) of ``size``.

    A case whose predicted buffers exceed ``memory_fraction`` of the available
    memory is compiled but not run, and recorded as skipped with the reason.
    """
    gemm = harness.gemm_rate(256 if size == "tiny" else 2048)
    budget = (harness.available_bytes() or 8 * 2**30) * memory_fraction
    rows = []
    cases = [(kind, w, n) for kind, specs in SIZES[size].items() for w, n in specs]
    for kind, width, n in track(cases, desc="eNTK implementations"):
        apply_fn, params, x_all = make_model(kind, width)
        x = jax.numpy.asarray(x_all[:n])
        reference = None
        for impl in IMPLEMENTATIONS:
            row = {"model": kind, "width": width, "n": n, "params": _n_params(params), "implementation": impl}
            program = kernel_program(apply_fn, impl)
            row.update(harness.compiled_stats(program, x, params))
            if row.get("peak_bytes", 0) > budget:
                row["skipped"] = f"needs {row['peak_bytes'] / 2**30:.1f} GiB > budget {budget / 2**30:.1f} GiB"
                rows.append(row)
                continue
            row.update(harness.timeit(lambda: program(x, params), repeats=repeats))
            row["flops_per_s"] = row["flops"] / row["min_s"]
            row["fraction_of_gemm"] = row["flops_per_s"] / gemm["flops_per_s"]
            k = np.asarray(program(x, params), np.float64)
            if reference is None:
                reference = k
            # Every implementation computes the same kernel; record how closely (float32).
            row["max_rel_diff_vs_first"] = float(np.abs(k - reference).max() / np.abs(reference).max())
            rows.append(row)
    return {"gemm": gemm, "rows": rows}


def blocking(size: str = "quick", *, repeats: int = 2, memory_bytes: int | None = None) -> dict[str, Any]:
    """Benchmark 4: blocked vs one-block eNTK (structured derivatives, MLP) and the largest N.

    Time overhead: the same full kernel ``(N, N, 10, 10)`` with ``batch_size`` of
    N/4 and N/2 against one block. Largest N: the biggest N whose one-block
    program XLA says fits in the available memory (compiled only, by bisection),
    and the biggest N for which the blocked kernel's output array fits (blocks
    themselves need constant memory; the blocked path holds the assembled NumPy
    array and its JAX copy, so twice the output). ``memory_bytes`` overrides the
    available memory (the smoke test uses a small budget to keep the search short).
    """
    width, n = {"tiny": (16, 16), "quick": (512, 256), "full": (512, 512)}[size]
    apply_fn, params, x_all = make_model("mlp", width)
    x = jax.numpy.asarray(x_all[:n])
    rows = []
    for batch in (None, n // 2, n // 4):
        f = lambda b=batch: kernels.empirical_ntk(apply_fn, params, x, implementation="structured",  # noqa: E731
                                                    vmap_axes=0, batch_size=b)
        t = harness.timeit(f, repeats=repeats)
        rows.append({"batch_size": batch, "blocks": 1 if batch is None else (n // batch) * (n // batch + 1) // 2,
                     **t})
    one = rows[0]["min_s"]
    for r in rows:
        r["overhead"] = r["min_s"] / one

    avail = memory_bytes or (32 * 2**20 if size == "tiny" else harness.available_bytes() or 8 * 2**30)
    largest = {}
    for trace in (False, True):
        program = kernel_program(apply_fn, "structured", trace=trace)

        def bytes_at(m: int) -> int:
            xs = jax.ShapeDtypeStruct((m,) + x.shape[1:], x.dtype)
            return harness.compiled_stats(program, xs, params)["peak_bytes"]

        lo, hi = 16, 16
        if bytes_at(lo) > avail:
            lo = hi = 0
        while hi and bytes_at(hi) <= avail and hi < 2**20:
            lo, hi = hi, hi * 2
        while hi and hi - lo > max(16, lo // 32):  # within ~3 %
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if bytes_at(mid) <= avail else (lo, mid)
        entry_bytes = 4 * (1 if trace else 100)  # float32, k x k = 10 x 10 per pair unless traced
        largest["trace" if trace else "full"] = {
            "one_block_largest_n": lo,
            "one_block_bytes_at_n": bytes_at(lo) if lo else None,
            "blocked_largest_n": int(np.sqrt(avail / (2 * entry_bytes))),
        }
    return {"model": "mlp", "width": width, "n": n, "rows": rows, "available_bytes": avail, "largest_n": largest}
