"""Time, operation count and memory of the eNTK, the traced eNTK and the pNTK versus the
number of outputs k (chapter 14, appendix A).

The three kernels are measured side by side in one run, on the same inputs and
parameters, with :func:`ntkbook.kernels.kernel_cost` (compiled once; best wall time
of ``--repeats`` runs; XLA's flop estimate and temporary-buffer size). Ratios are
what to compare across machines, not absolute times.

    python benchmarks/pntk_cost.py --n 200 --width 512 --classes 1 2 5 10 20 50
"""

from __future__ import annotations

import argparse
import platform

import jax

from ntkbook import data, kernels, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of digits (inputs)")
    parser.add_argument("--width", type=int, default=512, help="width of the two hidden layers")
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50], help="output sizes k")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per kernel (the best is kept)")
    args = parser.parse_args()
    if args.n < 1 or args.width < 1 or args.repeats < 1 or min(args.classes) < 1:
        parser.error("--n, --width, --repeats and every --classes value must be positive")

    x, _ = data.digits()
    x = jax.numpy.asarray(x[: args.n])
    print(f"# {platform.processor() or platform.machine()}, JAX {jax.__version__}, backend {jax.default_backend()}")
    print(f"# N = {len(x)} digits, MLP 64-{args.width}-{args.width}-k, best of {args.repeats}")
    print(f"{'k':>4s} {'kind':>6s} {'ms':>10s} {'GFLOP':>9s} {'temp MiB':>9s} {'out MiB':>9s} {'time / pNTK':>12s}")
    for k in args.classes:
        net = models.mlp([args.width, args.width], k)
        params = models.init_params(net, jax.random.PRNGKey(0), (-1, x.shape[1]))
        costs = {kind: kernels.kernel_cost(net.apply_fn, params, x, kind=kind, repeats=args.repeats)
                 for kind in ("pntk", "trace", "entk")}
        for kind, c in costs.items():
            print(f"{k:4d} {kind:>6s} {c.seconds * 1e3:10.2f} {c.flops / 1e9:9.3f} {c.temp_bytes / 2**20:9.2f} "
                  f"{c.output_bytes / 2**20:9.3f} {c.seconds / costs['pntk'].seconds:12.1f}")


if __name__ == "__main__":
    main()
