"""Monte Carlo statistics of the NTK of finite networks at initialisation (chapters 04-05).

The networks are fully connected, in the *standard* parameterisation of thesis
§3.2 eq. (6): ``W^l_ij ~ N(0, sigma_w^2 / n_{l-1})``, ``b^l_i ~ N(0, sigma_b^2)``,
widths ``n_0, ..., n_{L-1}`` and one linear output. Weights and biases are the
trainable parameters, so the NTK on a pair of inputs is the inner product of the
full parameter gradients (thesis §3.2 eq. 4), biases included even when they
start at zero. :func:`ntk_samples` draws many independent networks (``vmap``
over PRNG keys, in memory-bounded batches) and returns ``Theta(x_p, x_q)`` on a
few inputs for each, computed from the gradients; optionally also the
first-order change of ``Theta(x, x)`` in one gradient step (thesis §3.2 Thm 4.1).

:func:`dispersion` estimates ``E[Theta^2] / E[Theta]^2`` from such a sample and
:func:`ratio_of_means` a ratio ``E[A] / E[B]``; both remove the ``O(1/N)`` bias
of the plug-in ratio with the jackknife and report bootstrap standard errors.
:func:`log_interdecile` measures the spread of a skewed sample by its deciles,
which one large draw hardly moves. :func:`init_mlp` and :func:`mlp_apply` expose the network itself (chapter 04
reads its hidden pre-activations).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")
Params = list  # list of {"W": (k, n_out, n_in), "b": (k, n_out)} blocks of identical layers


# --------------------------------------------------------------------------- checks
def _check_variances(W_var: float, b_var: float) -> tuple[float, float]:
    return _checks.positive(W_var, "W_var (sigma_w^2)"), _checks.nonneg(b_var, "b_var (sigma_b^2)")


def _layer_blocks(widths: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Group the layers into blocks: ``[(count, n_out, n_in), ...]``.

    Layer ``l = 1..L`` maps ``n_{l-1} -> n_l`` with ``n_L = 1``. The first layer
    (it acts on the raw input) and the read-out layer (no activation after it)
    are blocks of their own; runs of identical hidden layers in between are
    stacked so that they can be scanned.
    """
    depth = len(widths)
    if depth == 1:
        return [(1, 1, widths[0])]
    blocks: list[tuple[int, int, int]] = [(1, widths[1] if depth > 1 else 1, widths[0])]
    for i in range(1, depth - 1):
        shape = (widths[i + 1], widths[i])
        if len(blocks) > 1 and blocks[-1][1:] == shape:
            blocks[-1] = (blocks[-1][0] + 1,) + shape
        else:
            blocks.append((1,) + shape)
    blocks.append((1, 1, widths[-1]))
    return blocks


# ------------------------------------------------------------------------- network
def init_mlp(key: jax.Array, widths: Sequence[int], *, W_var: float, b_var: float = 0.0) -> Params:
    """Parameters of a standard-parameterisation MLP (thesis §3.2 eq. 6).

    Args:
        key: PRNG key.
        widths: ``(n_0, n_1, ..., n_{L-1})``: input dimension and hidden widths; the
            output is scalar, so the depth is ``L = len(widths)``.
        W_var: ``sigma_w^2``: ``W^l_ij ~ N(0, sigma_w^2 / n_{l-1})`` in every layer.
        b_var: ``sigma_b^2``: ``b^l_i ~ N(0, sigma_b^2)`` (the biases exist and are
            trainable even when ``b_var = 0``).

        Both variances may be traced values (inside ``jit`` or ``vmap``, so that one
        compilation serves every ``sigma_w^2``); only concrete values are checked.

    Returns:
        A list of blocks ``{"W": (k, n_out, n_in), "b": (k, n_out)}``; consecutive
        layers of the same shape are stacked so that :func:`mlp_apply` scans them.
    """
    widths = _checks.positive_ints(widths, "widths (n_0, ..., n_(L-1))")
    if not _checks.is_traced(key):
        _checks.key(key)
    if not any(isinstance(v, jax.core.Tracer) for v in (W_var, b_var)):
        W_var, b_var = _check_variances(W_var, b_var)
    return _init(key, widths, W_var, b_var)


def _init(key: jax.Array, widths: tuple[int, ...], W_var: Any, b_var: Any) -> Params:
    # Unchecked: the variances may be traced values (one compilation serves every sigma_w^2).
    params = []
    for i, (count, n_out, n_in) in enumerate(_layer_blocks(widths)):
        kw, kb = jax.random.split(jax.random.fold_in(key, i))
        params.append({
            "W": jax.random.normal(kw, (count, n_out, n_in)) * jnp.sqrt(W_var / n_in),
            "b": jax.random.normal(kb, (count, n_out)) * jnp.sqrt(b_var),
        })
    return params


def _act(activation: str):
    return jax.nn.relu if activation == "relu" else jnp.tanh


def mlp_apply(params: Params, x: jax.Array, activation: str = "relu", *, hidden: bool = False) -> Any:
    """The network's scalar output on one input ``x`` of shape ``(n_0,)``.

    ``h^1 = W^1 x + b^1``, ``h^{l+1} = W^{l+1} phi(h^l) + b^{l+1}``, ``f = h^L`` (thesis §3.2 eq. 3).
    With ``hidden=True`` returns ``(f, [h^1, ..., h^{L-1}])``: the hidden pre-activations.
    """
    phi = _act(_checks.choice(activation, "activation", ACTIVATIONS))
    if len(params) == 1:  # depth 1: a linear model
        out = (params[0]["W"][0] @ x + params[0]["b"][0])[0]
        return (out, []) if hidden else out
    h = params[0]["W"][0] @ x + params[0]["b"][0]
    layers = [h]

    def step(h, wb):
        w, b = wb
        h = w @ phi(h) + b
        return h, h

    for block in params[1:-1]:
        if block["W"].shape[1] == block["W"].shape[2]:  # square layers: one compiled body for the run
            h, hs = jax.lax.scan(step, h, (block["W"], block["b"]))
            layers.extend(list(hs))
        else:  # a change of width: a single layer
            h, _ = step(h, (block["W"][0], block["b"][0]))
            layers.append(h)
    out = (params[-1]["W"][0] @ phi(h) + params[-1]["b"][0])[0]
    return (out, layers) if hidden else out


def _flat_grad(params: Params, x: jax.Array, activation: str) -> jax.Array:
    g = jax.grad(mlp_apply)(params, x, activation)
    return jnp.concatenate([leaf.ravel() for leaf in jax.tree_util.tree_leaves(g)])


def empirical_ntk_on(params: Params, inputs: jax.Array, activation: str = "relu") -> jax.Array:
    """``Theta(x_p, x_q) = <grad f(x_p), grad f(x_q)>`` over all weights and biases, ``(P, P)``."""
    jac = jax.vmap(_flat_grad, in_axes=(None, 0, None))(params, inputs, activation)
    return jac @ jac.T


# ------------------------------------------------------------------ Monte Carlo
class NTKSamples(NamedTuple):
    """Independent draws of the NTK at initialisation.

    ``theta``: ``(n, P, P)`` kernel on the ``P`` inputs; ``output``: ``(n, P)`` outputs
    ``f(x_p)``; ``first_step``: ``(n,)`` first-order change of ``Theta(x_1, x_1)`` per
    unit learning rate in one GD step on ``(x_1, target)`` (``None`` unless requested).
    """

    theta: np.ndarray
    output: np.ndarray
    first_step: np.ndarray | None


def unit_inputs(n0: int, cosines: Sequence[float] = ()) -> jax.Array:
    """Inputs of norm 1 in ``R^{n0}``: ``e_1`` followed by one unit vector at each cosine to ``e_1``.

    For Gaussian weights and ``sigma_b = 0`` the NTK's distribution depends on the
    inputs only through their norms and angles, so these are general.
    """
    n0 = _checks.positive_int(n0, "n0")
    if cosines and n0 < 2:
        raise ValueError("pairs of inputs at an angle need n0 >= 2")
    rows = [np.eye(n0)[0]]
    for c in cosines:
        _checks.finite(c, "cosines", low=-1.0, high=1.0)
        v = np.zeros(n0)
        v[0], v[1] = c, np.sqrt(1.0 - c * c)
        rows.append(v)
    return jnp.asarray(np.stack(rows), dtype=jnp.float32)


@functools.lru_cache(maxsize=64)
def _sampler(widths: tuple[int, ...], activation: str, first_step: bool):
    def one(key, inputs, target, w_var, b_var):
        params = _init(key, widths, w_var, b_var)
        theta = empirical_ntk_on(params, inputs, activation)
        outputs = jax.vmap(mlp_apply, in_axes=(None, 0, None))(params, inputs, activation)
        if not first_step:
            return theta, outputs, jnp.zeros(())
        # One GD step on (x_1, y) with loss (f - y)^2 / 2 moves the weights by
        # -eta (f - y) g, g = grad f(x_1). To first order in eta, Theta(x_1, x_1) = |g|^2
        # changes by -eta (f - y) * 2 g^T H g (H: Hessian of f(x_1)); H g is a jvp of grad.
        x1 = inputs[0]
        grad_fn = lambda p: jax.grad(mlp_apply)(p, x1, activation)  # noqa: E731
        g = grad_fn(params)
        _, hg = jax.jvp(grad_fn, (params,), (g,))
        ghg = sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(hg)))
        return theta, outputs, -2.0 * (outputs[0] - target) * ghg

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))


def ntk_samples(
    key: jax.Array,
    n_samples: int,
    widths: Sequence[int],
    *,
    W_var: float,
    b_var: float = 0.0,
    activation: str = "relu",
    inputs: Any = None,
    first_step: bool = False,
    target: float = 0.0,
    batch_size: int | None = None,
) -> NTKSamples:
    """Draw ``n_samples`` networks and return their NTK on ``inputs`` (thesis §3.2 eq. 4).

    Args:
        key: PRNG key; sample ``i`` uses the ``i``-th key of ``jax.random.split(key, n)``,
            so results do not depend on ``batch_size``.
        n_samples: number of independent initialisations (>= 2).
        widths: ``(n_0, ..., n_{L-1})`` as in :func:`init_mlp`.
        W_var, b_var: ``sigma_w^2 > 0``, ``sigma_b^2 >= 0``.
        activation: ``"relu"`` or ``"tanh"``.
        inputs: ``(P, n_0)`` inputs (default :func:`unit_inputs` ``(n_0)``: one unit vector).
        first_step: also return the first-order change of ``Theta(x_1, x_1)`` per unit
            learning rate in one GD step on ``(x_1, target)`` (thesis §3.2 Thm 4.1).
        target: the label ``y`` of that step.
        batch_size: networks per compiled call (default: about 8M parameters in flight).

    Returns:
        :class:`NTKSamples` (NumPy arrays).

    Raises:
        ValueError / TypeError: bad widths, variances, activation, inputs, key or sizes,
            before any network is drawn.
    """
    widths, W_var, b_var, inputs, n_params = _check_sampling(key, widths, W_var, b_var, activation, n_samples, inputs)
    if batch_size is None:
        batch_size = int(max(1, min(n_samples, (1 << 23) // (n_params * (inputs.shape[0] + 3)))))
    else:
        batch_size = _checks.positive_int(batch_size, "batch_size")
    fn = _sampler(widths, activation, bool(first_step))
    keys = jax.random.split(key, n_samples)
    n_pad = -n_samples % batch_size
    if n_pad:
        keys = jnp.concatenate([keys, keys[:n_pad]])
    args = (inputs, jnp.float32(target), jnp.float32(W_var), jnp.float32(b_var))
    parts = [fn(keys[i: i + batch_size], *args) for i in range(0, keys.shape[0], batch_size)]
    theta, out, step = (np.concatenate([np.asarray(p[j]) for p in parts])[:n_samples] for j in range(3))
    return NTKSamples(theta=theta.astype(np.float64), output=out.astype(np.float64),
                      first_step=step.astype(np.float64) if first_step else None)


class NTKPartSamples(NamedTuple):
    """Independent draws of the two parts of the NTK (thesis §3.2 eq. 4): ``theta = weight + bias``.

    ``weight``: ``(n, P, P)`` the sum over weight gradients ``Theta_W``; ``bias``: ``(n, P, P)``
    the sum over bias gradients ``Theta_b``.
    """

    weight: np.ndarray
    bias: np.ndarray


@functools.lru_cache(maxsize=32)
def _part_sampler(widths: tuple[int, ...], activation: str):
    def one(key, inputs, w_var, b_var):
        params = _init(key, widths, w_var, b_var)
        grads = jax.vmap(jax.grad(mlp_apply), in_axes=(None, 0, None))(params, inputs, activation)
        jw = jnp.concatenate([blk["W"].reshape(inputs.shape[0], -1) for blk in grads], axis=1)
        jb = jnp.concatenate([blk["b"].reshape(inputs.shape[0], -1) for blk in grads], axis=1)
        return jw @ jw.T, jb @ jb.T

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))


def ntk_part_samples(
    key: jax.Array,
    n_samples: int,
    widths: Sequence[int],
    *,
    W_var: float,
    b_var: float = 0.0,
    activation: str = "relu",
    inputs: Any = None,
) -> NTKPartSamples:
    """Draw ``n_samples`` networks and return the weight and bias parts of their NTK on ``inputs``.

    Thesis §3.2 eq. (4): ``Theta_W`` sums the products of the gradients with respect to
    the weights, ``Theta_b`` those with respect to the biases. Same networks and key
    convention as :func:`ntk_samples` (sample ``i`` uses the ``i``-th key of
    ``jax.random.split(key, n)``), so ``weight + bias`` equals its ``theta`` for the same key.

    Args:
        key, n_samples, widths, W_var, b_var, activation, inputs: as in :func:`ntk_samples`.

    Returns:
        :class:`NTKPartSamples` (float64 NumPy arrays).
    """
    widths, W_var, b_var, inputs, n_params = _check_sampling(key, widths, W_var, b_var, activation, n_samples, inputs)
    batch_size = int(max(1, min(n_samples, (1 << 23) // (n_params * (inputs.shape[0] + 3)))))
    fn = _part_sampler(widths, activation)
    keys = jax.random.split(key, n_samples)
    n_pad = -n_samples % batch_size
    if n_pad:
        keys = jnp.concatenate([keys, keys[:n_pad]])
    args = (inputs, jnp.float32(W_var), jnp.float32(b_var))
    parts = [fn(keys[i: i + batch_size], *args) for i in range(0, keys.shape[0], batch_size)]
    weight, bias = (np.concatenate([np.asarray(p[j]) for p in parts])[:n_samples] for j in range(2))
    return NTKPartSamples(weight=weight.astype(np.float64), bias=bias.astype(np.float64))


class DispersionGrid(NamedTuple):
    """Monte Carlo NTK dispersion over a ``(depth, sigma_w^2)`` grid (thesis §3.1 Figs. 1, 7).

    ``value[d, w]``, ``stderr[d, w]``: the jackknife estimate of ``E[Theta(x,x)^2] / E[Theta(x,x)]^2``
    and its bootstrap standard error (:func:`dispersion`) for depth ``depths[d]`` and
    ``sigma_w^2 = W_vars[w]``. ``spread[d, w]``, ``spread_se[d, w]``: the same cell's
    :func:`log_interdecile` of ``Theta(x,x)``, a spread that no single draw dominates.
    """

    depths: np.ndarray
    W_vars: np.ndarray
    value: np.ndarray
    stderr: np.ndarray
    spread: np.ndarray
    spread_se: np.ndarray


def dispersion_grid(
    key: jax.Array,
    n_samples: int,
    width: int,
    depths: Sequence[int],
    W_vars: Sequence[float],
    *,
    b_var: float = 0.0,
    activation: str = "relu",
    n_boot: int = 300,
) -> DispersionGrid:
    """Estimate the NTK dispersion at initialisation for every ``(depth, sigma_w^2)`` (thesis §3.1 Figs. 1, 7).

    Constant-width networks ``(width,) * depth`` (so ``n_0 = width``) on one unit input
    (:func:`unit_inputs`): ``n_samples`` networks per cell (:func:`ntk_samples`, one
    compilation per depth serves every ``sigma_w^2``), :func:`dispersion` and
    :func:`log_interdecile`. Cell ``(L, w)`` samples with ``fold_in(fold_in(key, L), w)``
    (``w`` the column index) and bootstraps with ``fold_in`` of that key by 1 (dispersion)
    and by 2 (spread).

    Args:
        key: PRNG key.
        n_samples: networks per cell (>= 3).
        width: the constant width ``m`` (input dimension included).
        depths: depths ``L >= 1``; W_vars: the ``sigma_w^2 > 0`` values.
        b_var: ``sigma_b^2 >= 0``; activation: ``"relu"`` or ``"tanh"``.
        n_boot: bootstrap resamples per cell.

    Returns:
        :class:`DispersionGrid`.
    """
    _checks.key(key)
    _checks.positive_int(width, "width")
    depths = list(_checks.positive_ints(depths, "depths"))
    W_vars = [_checks.finite(w, "W_vars") for w in W_vars]
    if not W_vars:
        raise ValueError("W_vars must be a non-empty sequence of positive numbers")
    for w in W_vars:
        _check_variances(w, b_var)
    _checks.choice(activation, "activation", ACTIVATIONS)
    _checks.positive_int(n_samples, "n_samples", minimum=3)
    _check_boot(key, n_boot)
    value = np.empty((len(depths), len(W_vars)))
    stderr, spread, spread_se = np.empty_like(value), np.empty_like(value), np.empty_like(value)
    for i, depth in enumerate(depths):
        for j, w in enumerate(W_vars):
            cell = jax.random.fold_in(jax.random.fold_in(key, depth), j)
            s = ntk_samples(cell, int(n_samples), (int(width),) * depth, W_var=w, b_var=b_var, activation=activation)
            est = dispersion(s.theta[:, 0, 0], key=jax.random.fold_in(cell, 1), n_boot=n_boot)
            value[i, j], stderr[i, j] = est.value, est.stderr
            est = log_interdecile(s.theta[:, 0, 0], key=jax.random.fold_in(cell, 2), n_boot=n_boot)
            spread[i, j], spread_se[i, j] = est.value, est.stderr
    return DispersionGrid(np.asarray(depths), np.asarray(W_vars), value, stderr, spread, spread_se)


# ------------------------------------------------------------------- estimators
class Estimate(NamedTuple):
    """An estimate with its bootstrap standard error.

    ``value``: the estimate (jackknife bias-corrected for the ratios); ``stderr``:
    bootstrap standard error of ``value``; ``plugin``: the uncorrected plug-in value
    (equal to ``value`` where no correction applies); ``n``: sample size.
    """

    value: float
    stderr: float
    plugin: float
    n: int


def _check_sampling(key: Any, widths: Sequence[int], W_var: float, b_var: float, activation: str,
                    n_samples: Any, inputs: Any) -> tuple[tuple[int, ...], float, float, jax.Array, int]:
    """The shared argument checks of :func:`ntk_samples` and :func:`ntk_part_samples`.

    Returns the checked widths, variances and inputs and the number of parameters of one network.
    """
    _checks.key(key)
    widths = _checks.positive_ints(widths, "widths (n_0, ..., n_(L-1))")
    W_var, b_var = _check_variances(W_var, b_var)
    _checks.choice(activation, "activation", ACTIVATIONS)
    _checks.positive_int(n_samples, "n_samples", minimum=2)
    inputs = unit_inputs(widths[0]) if inputs is None else _checks.finite_array(inputs, "inputs", dtype=jnp.float32)
    if inputs.ndim != 2 or inputs.shape[1] != widths[0] or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have shape (P, {widths[0]}), got {inputs.shape}")
    n_params = sum(c * (o * i + o) for c, o, i in _layer_blocks(widths))
    return widths, W_var, b_var, inputs, n_params


def _check_sample(x: Any, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"{name} must be a 1-D sample of at least 3 values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def _jackknife_dispersion(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plug-in ``mean(t^2) / mean(t)^2`` and its jackknife correction along the last axis."""
    n = t.shape[-1]
    s1, s2 = t.sum(-1, keepdims=True), (t * t).sum(-1, keepdims=True)
    plugin = (s2[..., 0] / n) / (s1[..., 0] / n) ** 2
    loo = ((s2 - t * t) / (n - 1)) / ((s1 - t) / (n - 1)) ** 2
    return n * plugin - (n - 1) * loo.mean(-1), plugin


def _jackknife_ratio(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = a.shape[-1]
    sa, sb = a.sum(-1, keepdims=True), b.sum(-1, keepdims=True)
    plugin = sa[..., 0] / sb[..., 0]
    loo = (sa - a) / (sb - b)
    return n * plugin - (n - 1) * loo.mean(-1), plugin


def _bootstrap(stat, arrays: Sequence[np.ndarray], key: jax.Array, n_boot: int, chunk: int = 64) -> float:
    n = arrays[0].size
    idx = np.asarray(jax.random.randint(key, (n_boot, n), 0, n))
    values = []
    for i in range(0, n_boot, chunk):
        rows = idx[i: i + chunk]
        values.append(stat(*(a[rows] for a in arrays))[0])
    return float(np.std(np.concatenate(values), ddof=1))


def _check_boot(key: Any, n_boot: int) -> None:
    _checks.key(key)
    _checks.positive_int(n_boot, "n_boot", minimum=2)


def dispersion(samples: Any, *, key: jax.Array, n_boot: int = 1000) -> Estimate:
    """Estimate ``E[Theta^2] / E[Theta]^2`` from i.i.d. draws (thesis §3.2 Fig. 1, App. C.3).

    The plug-in ratio ``mean(t^2) / mean(t)^2`` is biased by ``O(1/N)`` (low: the
    same draws enter numerator and denominator). The jackknife
    ``N r - (N - 1) mean_i r_{-i}`` cancels that term, leaving ``O(1/N^2)``; the
    tests check it against a distribution with a known ratio. (The thesis's
    leave-one-out estimator divides by an independent unbiased estimate of
    ``E[Theta]^2``; by Jensen's inequality its bias is ``+4 r (r - 1) / N``, larger.)
    The standard error is the spread of the estimator over ``n_boot`` bootstrap
    resamples; with heavy tails (large ``r``) it is itself uncertain.

    Args:
        samples: 1-D array of draws of ``Theta(x, x)`` (or any positive quantity).
        key: PRNG key for the bootstrap.
        n_boot: number of bootstrap resamples.
    """
    t = _check_sample(samples, "samples")
    _check_boot(key, n_boot)
    value, plugin = _jackknife_dispersion(t)
    return Estimate(float(value), _bootstrap(_jackknife_dispersion, [t], key, n_boot), float(plugin), t.size)


def _log_interdecile(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.quantile(t, [0.1, 0.9], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(high / low)
    return value, value


def log_interdecile(samples: Any, *, key: jax.Array, n_boot: int = 1000) -> Estimate:
    """``log(Q_0.9 / Q_0.1)`` of positive draws: how far apart a high and a low draw are, on a log scale.

    A scale-free spread like the dispersion ``E[Theta^2] / E[Theta]^2`` (for a
    log-normal ``Theta`` with log-standard deviation ``s`` the two are
    ``2 z_0.9 s = 2.563 s`` and ``exp(s^2)``), but one that no single draw can move
    far: where ``Theta`` is heavy-tailed (deep networks in the chaotic phase,
    thesis §3.1) one network in a few hundred can double the dispersion's estimate
    and its bootstrap error, while one draw shifts a decile by at most one step
    between neighbouring sorted draws. The two measures grow together when the
    bulk of the law spreads (as for the log-normal); a heavier tail alone moves
    only the dispersion. Quantiles by linear interpolation (``numpy.quantile``);
    the standard error is the bootstrap's. Draws at or below zero are allowed as
    long as the lower decile is positive.

    Args:
        samples: 1-D array of draws (at least 3); its lower decile must be positive.
        key: PRNG key for the bootstrap.
        n_boot: number of bootstrap resamples.

    Returns:
        :class:`Estimate` with ``value = plugin = log(Q_0.9 / Q_0.1)`` (no bias correction)
        and its bootstrap ``stderr``.

    Raises:
        ValueError: non-finite draws, a lower decile at or below zero, or so many draws
            at or below zero that some bootstrap resample's lower decile is.
    """
    t = _check_sample(samples, "samples")
    _check_boot(key, n_boot)
    value, _ = _log_interdecile(t)
    if not np.isfinite(value) or float(np.quantile(t, 0.1)) <= 0:
        raise ValueError(f"samples must have a positive lower decile, got {float(np.quantile(t, 0.1)):.3g} "
                         f"(log(Q_0.9 / Q_0.1) is a spread of positive draws)")
    with np.errstate(invalid="ignore"):  # an infinite resample is reported below
        stderr = _bootstrap(_log_interdecile, [t], key, n_boot)
    if not np.isfinite(stderr):
        raise ValueError(f"samples has {int(np.sum(t <= 0))} of {t.size} draws at or below zero: some bootstrap "
                         "resamples have no positive lower decile, so log(Q_0.9 / Q_0.1) has no standard error")
    return Estimate(float(value), stderr, float(value), t.size)


def ratio_of_means(numerator: Any, denominator: Any, *, key: jax.Array, n_boot: int = 1000) -> Estimate:
    """Estimate ``E[A] / E[B]`` from paired draws ``(A_i, B_i)``: jackknife-corrected, paired bootstrap error.

    Used for ``E[Theta(x, x')] / E[Theta(x, x)]`` (thesis §3.2 Thm 3.3, eq. 18) and
    for the relative first-step change ``E[Delta Theta] / E[Theta]`` (Thm 4.1).
    """
    a, b = _check_sample(numerator, "numerator"), _check_sample(denominator, "denominator")
    if a.shape != b.shape:
        raise ValueError(f"numerator and denominator must pair up, got {a.size} and {b.size} values")
    _check_boot(key, n_boot)
    value, plugin = _jackknife_ratio(a, b)
    return Estimate(float(value), _bootstrap(_jackknife_ratio, [a, b], key, n_boot), float(plugin), a.size)
