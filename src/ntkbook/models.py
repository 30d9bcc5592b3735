"""Small models as ``(init_fn, apply_fn, kernel_fn)`` triples.

Fully connected and convolutional networks are built with ``neural_tangents.stax``
so the same description gives a finite network (``init_fn``/``apply_fn``) and its
infinite-width NNGP/NTK kernels (``kernel_fn``). Two parameterisations:

- ``"ntk"`` (Jacot et al. 2018; thesis eq. 2.51): ``W = sigma_w / sqrt(n_in) * w``
  with ``w ~ N(0, 1)``; the NTK has a finite infinite-width limit.
- ``"standard"`` (LeCun): ``W ~ N(0, sigma_w^2 / n_in)`` directly; same forward pass
  at initialisation, but gradients and hence the NTK scale with width.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _compat

_compat.apply()
from neural_tangents import stax  # noqa: E402

Parameterization = Literal["ntk", "standard"]
ApplyFn = Callable[..., jax.Array]

ACTIVATIONS = ("relu", "tanh", "erf", "identity")


class Model(NamedTuple):
    """A network: ``params = init_fn(key, input_shape)[1]``, ``apply_fn(params, x)``,
    and ``kernel_fn(x1, x2, "ntk" | "nngp")`` for its infinite-width limit."""

    init_fn: Callable[..., Any]
    apply_fn: ApplyFn
    kernel_fn: Callable[..., Any]


def _activation(name: str):
    _checks.choice(name, "activation", ACTIVATIONS)
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()
    if name == "tanh":
        # No closed-form kernel for tanh: stax integrates it with Gauss-Hermite
        # quadrature (32 nodes: relative error < 1e-6 on the variances used in the
        # book). stax warns about this on every construction; we know.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return stax.ElementwiseNumerical(jnp.tanh, deg=32)
    if name == "identity":
        return stax.Identity()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def _check_stds(activation: str, W_std: Any, b_std: Any, out_W_std: Any = None) -> tuple[float, float | None, float]:
    """``(W_std, b_std, out_W_std)`` checked: finite, ``W_std > 0``, ``b_std >= 0`` or ``None``."""
    _checks.choice(activation, "activation", ACTIVATIONS)
    W_std = default_weight_std(activation) if W_std is None else _checks.positive(W_std, "W_std")
    out_W_std = W_std if out_W_std is None else _checks.positive(out_W_std, "out_W_std")
    if b_std is not None:
        _checks.nonneg(b_std, "b_std")
    return W_std, b_std, out_W_std


def _serial(layers: list) -> tuple:
    """``stax.serial(*layers)`` whose ``apply_fn`` refuses a parameter list of the wrong length."""
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    return init_fn, _checks.checked_apply(apply_fn, len(layers)), kernel_fn


def default_weight_std(activation: str) -> float:
    """``sigma_w`` at the edge of chaos for ReLU (sqrt 2, He), 1 otherwise."""
    return float(np.sqrt(2.0)) if activation == "relu" else 1.0


def mlp(
    hidden: Sequence[int],
    out_dim: int,
    *,
    activation: str = "relu",
    parameterization: Parameterization = "ntk",
    W_std: float | None = None,
    b_std: float | None = 0.1,
    out_W_std: float | None = None,
) -> Model:
    """A fully connected network ``Dense -> act -> ... -> Dense(out_dim)``.

    Args:
        hidden: widths of the hidden layers (at least one).
        out_dim: number of outputs.
        activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"identity"``.
        parameterization: ``"ntk"`` or ``"standard"`` (module docstring).
        W_std: ``sigma_w``; default :func:`default_weight_std` of the activation.
        b_std: ``sigma_b``; ``None`` means no biases.
        out_W_std: ``sigma_w`` of the read-out layer (default ``W_std``; the
            thesis uses the same value in every layer).

    Returns:
        A :class:`Model`.

    >>> net = mlp([512, 512], 10)
    >>> _, params = net.init_fn(jax.random.PRNGKey(0), (-1, 64))
    """
    return Model(*_serial(_mlp_layers(hidden, out_dim, activation, parameterization, W_std, b_std, out_W_std)))


def token_mlp(
    vocab: int,
    n_tokens: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    activation: str = "relu",
    parameterization: Parameterization = "ntk",
    W_std: float | None = None,
    b_std: float | None = 0.1,
    out_W_std: float | None = None,
) -> Model:
    """:func:`mlp` on ``n_tokens`` tokens, read as their one-hot codes side by side.

    The network is :func:`mlp` with input dimension ``n_tokens * vocab`` (same
    parameters, same ``init_fn``, same ``kernel_fn``), and ``apply_fn`` takes either
    those one-hot codes, shape ``(N, n_tokens * vocab)``, or the integer tokens, shape
    ``(N, n_tokens)``. For tokens, the first layer adds the rows of ``W_1`` that the
    one-hot code would select instead of multiplying by a vector of zeros and ones:
    the same function (for two tokens the same numbers, bit for bit, since ``1 x w``
    and ``0 x w`` add nothing to round), without the ``n_tokens * vocab x width``
    multiply-adds of the first layer in the forward pass and in the weight
    gradient. Used for modular addition, ``a + b mod p`` ([trace] Sect. 5.2), where
    the first layer is about a quarter of an MLP's work.

    Raises:
        ValueError: as :func:`mlp`, or ``vocab`` / ``n_tokens`` not positive integers;
            ``apply_fn``: integer inputs not of shape ``(N, n_tokens)``, or tokens outside
            ``[0, vocab)``. The range is checked on concrete arrays only: tokens traced
            inside ``jit`` are not checked, and an out-of-range token then reads a wrong
            row of ``W_1`` (token ``vocab`` at position ``t`` is token ``0`` at position
            ``t + 1``; indices beyond the table are clipped). Which path is taken depends
            on the dtype: float inputs go to the one-hot network, whatever their shape.
    """
    vocab = _checks.positive_int(vocab, "vocab")
    n_tokens = _checks.positive_int(n_tokens, "n_tokens")
    layers = _mlp_layers(hidden, out_dim, activation, parameterization, W_std, b_std, out_W_std)
    init_fn, apply_one_hot, kernel_fn = _serial(layers)
    apply_rest = stax.serial(*layers[1:])[1]
    W_std1 = _check_stds(activation, W_std, b_std, out_W_std)[0]
    offsets = vocab * np.arange(n_tokens)

    def apply_fn(params, x, **kwargs):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.integer):
            return apply_one_hot(params, x, **kwargs)
        _checks.layer_count(params, len(layers))
        if x.ndim != 2 or x.shape[1] != n_tokens:
            raise ValueError(f"x must have shape (N, {n_tokens}) (tokens) or (N, {n_tokens * vocab}) (one-hot), "
                             f"got {tuple(x.shape)}")
        if not isinstance(x, jax.core.Tracer) and x.size:  # concrete tokens: check on the host (under jit too)
            lo, hi = int(np.min(np.asarray(x))), int(np.max(np.asarray(x)))
            if lo < 0 or hi >= vocab:
                raise ValueError(f"tokens must lie in [0, {vocab}), got {lo}..{hi}")
        W, b = params[0]
        rows = W[x + offsets]  # (N, n_tokens, width): the rows the one-hot codes select
        h = rows[:, 0]
        for t in range(1, n_tokens):  # in input order, as the product accumulates them
            h = h + rows[:, t]
        # stax.Dense's own scaling (neural_tangents/_src/stax/linear.py): standard x W / sqrt(s_0) + b
        # with s_0 = 1 (a division by 1, exact, so left out); ntk (W_std / sqrt(fan_in)) x W + b_std b.
        if parameterization == "ntk":
            h = (W_std1 / (n_tokens * vocab) ** 0.5) * h
            if b is not None:
                h = h + b_std * b
        elif b is not None:
            h = h + b
        return apply_rest(params[1:], h, **kwargs)

    apply_fn.n_layers = len(layers)
    return Model(init_fn, apply_fn, kernel_fn)


def _mlp_layers(hidden, out_dim, activation, parameterization, W_std, b_std, out_W_std) -> list:
    """The checked ``stax`` layers of :func:`mlp`: ``[Dense, act] * len(hidden) + [Dense]``."""
    hidden = _checks.positive_ints(hidden, "hidden")
    out_dim = _checks.positive_int(out_dim, "out_dim")
    _checks.choice(parameterization, "parameterization", ("ntk", "standard"))
    W_std, b_std, out_W_std = _check_stds(activation, W_std, b_std, out_W_std)
    layers = []
    for width in hidden:
        layers += [stax.Dense(width, W_std=W_std, b_std=b_std, parameterization=parameterization),
                   _activation(activation)]
    layers.append(stax.Dense(out_dim, W_std=out_W_std, b_std=b_std, parameterization=parameterization))
    return layers


def cnn(
    channels: Sequence[int],
    out_dim: int,
    *,
    filter_shape: tuple[int, int] = (3, 3),
    activation: str = "relu",
    parameterization: Parameterization = "ntk",
    W_std: float | None = None,
    b_std: float | None = 0.1,
) -> Model:
    """A small CNN on NHWC images: ``[Conv(c, SAME) -> act] * len(channels) -> Flatten -> Dense``.

    Used for the 8x8 digits (``data.digits(flatten=False)``).
    """
    channels = _checks.positive_ints(channels, "channels")
    out_dim = _checks.positive_int(out_dim, "out_dim")
    _checks.choice(parameterization, "parameterization", ("ntk", "standard"))
    W_std, b_std, _ = _check_stds(activation, W_std, b_std)
    filter_shape = _checks.positive_ints(filter_shape, "filter_shape")
    if len(filter_shape) != 2:
        raise ValueError(f"filter_shape must be (height, width), got {filter_shape!r}")
    layers = []
    for c in channels:
        layers += [stax.Conv(c, filter_shape, padding="SAME", W_std=W_std, b_std=b_std,
                             parameterization=parameterization),
                   _activation(activation)]
    layers += [stax.Flatten(), stax.Dense(out_dim, W_std=W_std, b_std=b_std, parameterization=parameterization)]
    return Model(*_serial(layers))


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    """``(batch, *features)`` with ``batch`` positive or ``-1`` and positive feature sizes."""
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or len(input_shape) < 2:
        raise ValueError(f"input_shape must be (batch, *features), e.g. (-1, 64), got {input_shape!r}")
    batch, *features = input_shape
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or (batch < 1 and batch != -1):
        raise ValueError(f"input_shape must start with a positive batch size or -1, got {input_shape!r}")
    _checks.positive_ints(features, "input_shape")
    return tuple(int(v) for v in input_shape)


def init_params(model: Model, key: jax.Array, input_shape: Sequence[int]) -> Any:
    """Initial parameters for inputs of shape ``(batch, *features)`` (batch may be -1)."""
    key = _checks.key(key)
    input_shape = _check_input_shape(input_shape)
    _, params = model.init_fn(key, tuple(input_shape))
    return params


def init_ensemble(model: Model, key: jax.Array, input_shape: Sequence[int], n: int) -> Any:
    """``n`` independent initialisations stacked along a new leading axis (for ``jax.vmap``)."""
    key = _checks.key(key)
    input_shape = _check_input_shape(input_shape)
    n = _checks.positive_int(n, "n")
    keys = jax.random.split(key, n)
    return jax.vmap(lambda k: model.init_fn(k, tuple(input_shape))[1])(keys)


def named_layers(params: Any) -> dict[str, jax.Array]:
    """The weights and biases of a :func:`mlp` / :func:`cnn` by name: ``W1, b1, W2, ...``.

    Layer ``l`` is the ``l``-th layer with parameters (1 = first). Works on
    ensembles too (the leading ensemble axis is kept). Absent biases are skipped.
    """
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params must be the list returned by a stax.serial init_fn, got {type(params).__name__}")
    named: dict[str, jax.Array] = {}
    layer = 0
    for entry in params:
        if not entry:
            continue  # activations and reshapes carry no parameters
        layer += 1
        weight, bias = entry
        named[f"W{layer}"] = weight
        if bias is not None:
            named[f"b{layer}"] = bias
    return named


def centered_scaled(apply_fn: ApplyFn, params0: Any, alpha: float) -> ApplyFn:
    """The lazy-training model ``alpha * (f(w, x) - f(w0, x))`` of Chizat & Bach (2019).

    It outputs zero at ``w0`` and its inverse relative scale kappa shrinks like
    ``1 / alpha``; train it with learning rate ``lr / alpha**2`` to keep the
    function-space time scale fixed.
    """
    alpha = _checks.positive(alpha, "alpha")

    def apply_alpha(params, x, **kwargs):
        return alpha * (apply_fn(params, x, **kwargs) - apply_fn(params0, x, **kwargs))

    return apply_alpha


def toy_scalar_model(w: jax.Array, x: jax.Array) -> jax.Array:
    """A one-parameter non-linear model used to picture linearisation (chapter 01).

    ``g(w, x) = sin(3 w x) + 0.5 cos(5 w)``: smooth, with curvature in ``w``
    (any twice-differentiable model would do; this one has a visible bend).
    """
    return jnp.sin(3.0 * w * x) + 0.5 * jnp.cos(5.0 * w)


# --- intermediate outputs of an MLP (chapters 06-08) ---
def mlp_features(
    hidden: Sequence[int],
    out_dim: int,
    *,
    activation: str = "relu",
    parameterization: Parameterization = "ntk",
    W_std: float | None = None,
    b_std: float | None = 0.1,
    out_W_std: float | None = None,
) -> dict[str, ApplyFn]:
    """Apply functions for every hidden layer and the logits of :func:`mlp` with the same arguments.

    Returns ``{"hidden1": f1, ..., "logits": f}``; each ``f(params, x)`` takes the
    parameters of the *full* :func:`mlp` and returns the post-activation output of
    that layer, shape ``(N, width)`` (the logits: ``(N, out_dim)``). Used for the
    NTK of intermediate outputs ([trace] Sect. 5.1).
    """
    layers = _mlp_layers(hidden, out_dim, activation, parameterization, W_std, b_std, out_W_std)

    def prefix(n_layers: int) -> ApplyFn:
        apply_prefix = stax.serial(*layers[:n_layers])[1]

        def apply_fn(params, x, **kwargs):
            return apply_prefix(params[:n_layers], x, **kwargs)

        return _checks.checked_apply(apply_fn, len(layers))

    out = {f"hidden{i + 1}": prefix(2 * (i + 1)) for i in range(len(layers) // 2)}
    out["logits"] = prefix(len(layers))
    return out


# --- last-layer features and read-out (chapters 11-12) ---
class SplitMLP(NamedTuple):
    """An :func:`mlp` seen as features and a linear read-out, ``f(x) = W h(x) + b``.

    ``model`` is the full network (the same as :func:`mlp` with the same arguments);
    ``features(params, x)`` is ``h(x)`` of shape ``(N, n)`` (all layers but the last,
    ending with the activation), evaluated on the *full* parameter list;
    ``readout(params)`` returns the read-out as ``(W, b)`` with ``W`` of shape ``(k, n)``
    and ``b`` of shape ``(k,)`` (zeros without biases), as the layer applies them.
    """

    model: Model
    features: ApplyFn
    readout: Callable[[Any], tuple[jax.Array, jax.Array]]


def split_mlp(
    hidden: Sequence[int],
    out_dim: int,
    *,
    activation: str = "relu",
    parameterization: Parameterization = "ntk",
    W_std: float | None = None,
    b_std: float | None = 0.1,
    out_W_std: float | None = None,
) -> SplitMLP:
    """:func:`mlp` together with its feature map and read-out (arguments as in :func:`mlp`).

    The feature kernel of thesis 3.3, eq. (3) is the eNTK of ``features`` (the
    read-out parameters do not enter ``h``, so they contribute nothing).

    >>> net = split_mlp([128, 128], 10, parameterization="standard")
    >>> params = init_params(net.model, jax.random.PRNGKey(0), (-1, 64))
    >>> net.features(params, x).shape, net.readout(params)[0].shape
    ((N, 128), (10, 128))
    """
    layers = _mlp_layers(hidden, out_dim, activation, parameterization, W_std, b_std, out_W_std)
    model = Model(*_serial(layers))
    _, feature_apply, _ = stax.serial(*layers[:-1])
    W_std, b_std, out_W_std = _check_stds(activation, W_std, b_std, out_W_std)

    def features(params, x, **kwargs):
        return feature_apply(params[:-1], x, **kwargs)

    def readout(params):
        _checks.layer_count(params, len(layers))
        w, b = params[-1]
        if parameterization == "ntk":
            w = w * (out_W_std / np.sqrt(w.shape[0]))
            b = None if b is None else b * b_std
        bias = jnp.zeros(w.shape[1], w.dtype) if b is None else jnp.reshape(b, (-1,))
        return w.T, bias

    return SplitMLP(model, _checks.checked_apply(features, len(layers)), readout)
