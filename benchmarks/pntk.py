"""Benchmark 3: the pseudo-NTK against the full eNTK and the output-traced eNTK, over the number of classes.

For an MLP 64-w-w-k on N digits, ``kernels.kernel_cost`` compiles each kernel
once (structured derivatives) and reports its best wall time and XLA's
temporary and output bytes: the full ``(N, N, k, k)`` eNTK, its trace over
outputs ``(N, N)`` (which still forms all ``k`` Jacobians), and the first-logit
pNTK ``(N, N)`` (one Jacobian).
"""

from __future__ import annotations

from typing import Any

import jax

from ntkbook import data, kernels, models
from ntkbook.kernels import kernel_cost  # noqa: F401  (the section is offered only where the library has it)
from ntkbook.progress import track

SIZES = {"tiny": (16, 8, (2, 4)), "quick": (256, 128, (2, 10, 50)), "full": (512, 256, (2, 5, 10, 20, 50, 100))}
KINDS = ("entk", "trace", "pntk")


def run(size: str = "quick", *, repeats: int = 3) -> dict[str, Any]:
    width, n, classes = SIZES[size]
    x = jax.numpy.asarray(data.digits()[0][:n])
    rows = []
    for k in track(classes, desc="pNTK vs eNTK"):
        net = models.mlp([width, width], k)
        params = models.init_params(net, jax.random.PRNGKey(0), (-1, 64))
        for kind in KINDS:
            cost = kernels.kernel_cost(net.apply_fn, params, x, kind=kind, repeats=repeats)
            rows.append({"classes": k, "kind": kind, "seconds": cost.seconds, "flops": cost.flops,
                         "temp_bytes": cost.temp_bytes, "output_bytes": cost.output_bytes})
    by = {(r["classes"], r["kind"]): r for r in rows}
    ratios = {str(k): {"entk_over_pntk": by[k, "entk"]["seconds"] / by[k, "pntk"]["seconds"],
                       "trace_over_pntk": by[k, "trace"]["seconds"] / by[k, "pntk"]["seconds"]} for k in classes}
    return {"width": width, "n": n, "rows": rows, "ratios": ratios}
