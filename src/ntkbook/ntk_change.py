"""How much the NTK of a finite network changes when it is trained, across the phase diagram (chapter 05).

The experiment of thesis §3.1 Sect. 4 (Figs. 3-4, appendix Figs. 8-9)
{cite}`seleznova2022trust`: fully connected networks in the standard
parameterisation (the networks of :mod:`ntkbook.dispersion`: scalar output,
``W^l_ij ~ N(0, sigma_w^2 / n_{l-1})``, ``b^l_i ~ N(0, sigma_b^2)``) are trained by
full-batch gradient descent on the mean squared error

    ``loss(w) = (1 / 2S) sum_s (f(x_s; w) - y_s)^2``,

over a grid of ``(sigma_w^2, L)`` at fixed width, and after given numbers of steps
we measure the relative change of the NTK Gram matrix on the training set,
``||Theta_t - Theta_0||_F / ||Theta_0||_F``, together with the lowest loss reached.

The learning rate is the experiment's key choice. Gradient descent on this loss
is stable only for ``eta < 2 S / lambda_max(Theta_0)`` (to first order in the
step, the outputs move by ``-eta Theta (f - y) / S``), and ``lambda_max`` spans
orders of magnitude across the grid (it grows like ``chi_1^L``). Two rules:

- ``"shared"``: one rate for the whole grid, ``eta = fraction * S / max lambda_max``
  over every cell, as in the thesis (one constant rate chosen below the stability
  limit of every network). Networks with a small NTK then learn slowly or not at all.
- ``"per_network"``: ``eta = fraction * S / lambda_max`` for each cell, every network
  at the same fraction of its own stability limit. This separates "the NTK does not
  change" from "the network did not train".

All ``sigma_w^2`` of one depth are trained together (``vmap``), with one
compilation per depth; the steps between two records run in one compiled loop.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, dispersion, progress

LR_RULES: tuple[str, ...] = ("shared", "per_network")


class GridResult(NamedTuple):
    """Results of :func:`train_grid`; axes ``(depth, sigma_w^2, seed[, record])``.

    ``depths``, ``W_vars``, ``steps``: the grid and the record steps (``steps[0] = 0``
    is the initialisation). ``rel_change[d, w, s, r]``: ``||Theta_t - Theta_0||_F /
    ||Theta_0||_F`` after ``steps[r]`` steps. ``loss[d, w, s, r]``: the loss then.
    ``min_loss[d, w, s]``: the lowest loss seen at any step. ``lam_max[d, w, s]``: the
    largest eigenvalue of ``Theta_0``. ``lr[d, w, s]``: the learning rate used.
    ``diverged[d, w, s]``: the loss or the kernel became non-finite.
    """

    depths: np.ndarray
    W_vars: np.ndarray
    steps: np.ndarray
    rel_change: np.ndarray
    loss: np.ndarray
    min_loss: np.ndarray
    lam_max: np.ndarray
    lr: np.ndarray
    diverged: np.ndarray


def _check_grid(depths: Sequence[int], W_vars: Sequence[float], b_var: float) -> tuple[np.ndarray, np.ndarray]:
    depths = np.asarray(_checks.positive_ints(depths, "depths (each depth L)", allow_empty=True), dtype=int)
    if depths.size == 0:
        raise ValueError("depths must contain at least one depth L >= 1")
    W_vars = np.asarray(W_vars, dtype=float)
    if W_vars.ndim != 1 or W_vars.size == 0 or not np.all(np.isfinite(W_vars)) or np.any(W_vars <= 0):
        raise ValueError(f"W_vars must be a non-empty list of positive sigma_w^2 values, got {W_vars!r}")
    _checks.nonneg(b_var, "b_var (sigma_b^2)")
    return depths, W_vars


def _check_steps(steps: int, record_steps: Sequence[int] | None) -> np.ndarray:
    steps = _checks.positive_int(steps, "steps")
    rec = np.unique(np.asarray([steps] if record_steps is None else list(record_steps), dtype=int))
    if rec.size == 0 or rec[0] < 1 or rec[-1] > steps:
        raise ValueError(f"record_steps must lie in [1, steps={steps}], got {record_steps!r}")
    return np.concatenate([[0], rec, [steps]] if rec[-1] != steps else [[0], rec])


def _check_data(x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    x = _checks.finite_array(x, "x", dtype=jnp.float32)
    y = _checks.finite_array(y, "y", dtype=jnp.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be a (S, n0) array with S >= 2 training inputs, got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must be a vector of S = {x.shape[0]} scalar targets, got shape {y.shape}")
    return x, y


@functools.lru_cache(maxsize=32)
def _compiled(widths: tuple[int, ...], activation: str):
    """Jitted init / NTK / training for one architecture, vectorised over sigma_w^2."""

    def outputs(p, x):
        return jax.vmap(dispersion.mlp_apply, in_axes=(None, 0, None))(p, x, activation)

    def loss(p, x, y):
        return 0.5 * jnp.mean((outputs(p, x) - y) ** 2)

    @jax.jit
    def init(keys, W_vars, b_var):
        return jax.vmap(lambda k, w: dispersion.init_mlp(k, widths, W_var=w, b_var=b_var))(keys, W_vars)

    @jax.jit
    def ntk(P, x):  # one network at a time: the Jacobians of the whole grid need not fit at once
        return jax.lax.map(lambda p: dispersion.empirical_ntk_on(p, x, activation), P)

    @jax.jit
    def train(P, lrs, x, y, n):  # n is traced: one compilation serves every segment length
        def one(p, eta):
            def step(_, carry):
                p, best = carry
                value, g = jax.value_and_grad(loss)(p, x, y)
                p = jax.tree_util.tree_map(lambda a, b: a - eta * b, p, g)
                return p, jnp.fmin(best, value)

            p, best = jax.lax.fori_loop(0, n, step, (p, jnp.float32(jnp.inf)))
            return p, jnp.fmin(best, loss(p, x, y))

        return jax.vmap(one)(P, lrs)

    return init, ntk, train, jax.jit(jax.vmap(loss, in_axes=(0, None, None)))


def train_grid(
    key: jax.Array,
    x: Any,
    y: Any,
    *,
    width: int,
    depths: Sequence[int],
    W_vars: Sequence[float],
    b_var: float = 0.0,
    activation: str = "relu",
    steps: int,
    record_steps: Sequence[int] | None = None,
    lr_rule: str = "shared",
    fraction: float = 1.0,
    n_seeds: int = 1,
) -> GridResult:
    """Train one network per ``(depth, sigma_w^2)`` by full-batch GD and record its NTK change.

    Thesis §3.1 Sect. 4 (Figs. 3-4): relative change of the NTK Gram matrix on the
    training set, ``||Theta_t - Theta_0||_F / ||Theta_0||_F``, and the minimal loss.

    Args:
        key: PRNG key; seed ``s`` of depth ``L`` initialises with
            ``fold_in(fold_in(key, L), s)``, the same draw for every ``sigma_w^2``
            (rescaled), so neighbouring cells differ only by ``sigma_w^2``.
        x: ``(S, n0)`` training inputs; y: ``(S,)`` scalar targets.
        width: hidden width ``M`` (constant); the input layer maps ``n0 -> M``.
        depths: network depths ``L >= 1`` (``L`` weight layers, ``L - 1`` hidden layers).
        W_vars: the ``sigma_w^2`` values; b_var: ``sigma_b^2``.
        activation: ``"relu"`` or ``"tanh"``.
        steps: number of GD steps; record_steps: when to measure the NTK (default:
            only at the end; ``steps`` is always included).
        lr_rule: ``"shared"`` (one rate for the grid) or ``"per_network"`` (see module doc).
        fraction: the learning rate as a fraction of ``S / lambda_max``, in ``(0, 2)``
            (2 is the stability limit of GD on a quadratic).
        n_seeds: independent networks per cell (trained together with the others).

    Returns:
        A :class:`GridResult` (NumPy arrays).

    Raises:
        ValueError: bad grid, data, steps, rule or fraction, before anything is computed.
    """
    _checks.key(key)
    _checks.nonneg(b_var, "b_var (sigma_b^2)")
    depths, W_vars = _check_grid(depths, W_vars, float(b_var))
    x, y = _check_data(x, y)
    width = _checks.positive_int(width, "width")
    _checks.choice(activation, "activation", dispersion.ACTIVATIONS)
    rec = _check_steps(steps, record_steps)
    _checks.choice(lr_rule, "lr_rule", LR_RULES)
    _checks.finite(fraction, "fraction", low=0.0, high=2.0, low_open=True, high_open=True)
    n_seeds = _checks.positive_int(n_seeds, "n_seeds")

    S, n0 = x.shape
    G = W_vars.size * n_seeds  # networks per depth, sigma_w^2-major
    wv = jnp.repeat(jnp.asarray(W_vars, dtype=jnp.float32), n_seeds)
    seeds = jnp.tile(jnp.arange(n_seeds), W_vars.size)
    nets, kernels0, lam = [], [], np.zeros((depths.size, G))
    for i, L in enumerate(depths):  # initialisations and initial NTKs first: the shared rate needs them all
        init, ntk, _, _ = _compiled((n0,) + (width,) * (int(L) - 1), activation)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.fold_in(key, int(L)), seeds)
        P = init(keys, wv, jnp.float32(b_var))
        K0 = ntk(P, x)
        lam[i] = np.asarray(jnp.linalg.eigvalsh(K0)[:, -1])
        nets.append(P)
        kernels0.append(K0)
    lr = fraction * S / (lam.max() if lr_rule == "shared" else lam)
    lr = np.broadcast_to(lr, lam.shape).astype(np.float64)

    n_rec = rec.size
    rel = np.zeros((depths.size, G, n_rec))
    losses = np.zeros_like(rel)
    best = np.full(lam.shape, np.inf)
    with progress.bar(depths.size * (n_rec - 1), desc=f"train {activation} grid ({lr_rule} rate)") as bar:
        for i, L in enumerate(depths):
            _, ntk, train, loss = _compiled((n0,) + (width,) * (int(L) - 1), activation)
            P, K0 = nets[i], kernels0[i]
            k0_norm = jnp.linalg.norm(K0.reshape(G, -1), axis=1)
            losses[i, :, 0] = np.asarray(loss(P, x, y))
            for r in range(1, n_rec):
                P, seg_best = train(P, jnp.asarray(lr[i], dtype=jnp.float32), x, y, jnp.int32(rec[r] - rec[r - 1]))
                best[i] = np.fmin(best[i], np.asarray(seg_best))
                K = ntk(P, x)
                rel[i, :, r] = np.asarray(jnp.linalg.norm((K - K0).reshape(G, -1), axis=1) / k0_norm)
                losses[i, :, r] = np.asarray(loss(P, x, y))
                bar.update(1)
    diverged = ~np.isfinite(losses).all(axis=2) | ~np.isfinite(rel).all(axis=2)
    min_loss = np.fmin(best, losses.min(axis=2, initial=np.inf))
    cell = (depths.size, W_vars.size, n_seeds)
    return GridResult(depths=depths, W_vars=W_vars, steps=rec, rel_change=rel.reshape(cell + (n_rec,)),
                      loss=losses.reshape(cell + (n_rec,)), min_loss=min_loss.reshape(cell),
                      lam_max=lam.reshape(cell), lr=lr.reshape(cell), diverged=diverged.reshape(cell))
