"""A one-layer ReLU transformer in plain JAX, for ``a + b =`` sequences.

The model of the grokking experiments of [trace] Sect. 5.2, after
Nanda et al. (2023): tokens are embedded (token embedding plus a learned
positional embedding), one block of causal multi-head self-attention and one
ReLU MLP are added to the residual stream (no layer norm), and the logits are
read from the last position (the ``=`` token) through an unembedding matrix.

Inputs are **one-hot token sequences** of shape ``(N, T, V)`` (floating point),
so that the embedding is a matrix product ``x @ W_E``. That makes the model a
function of a real input, like the MLP on one-hot pairs: the eNTK and trace
code (:mod:`ntkbook.trace`) and the input-perturbation distance (which adds
Gaussian noise to the inputs) accept it unchanged. Integer token arrays are
accepted too and one-hot encoded on the fly. :func:`sequences` builds the
``a, b, =`` sequences from the pairs of :func:`ntkbook.data.modular_arithmetic`.

Initialisation: every weight matrix is ``N(0, 1 / fan_in)``, the token and
positional embeddings ``N(0, 1)``; biases start at 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

ApplyFn = Callable[..., jax.Array]


class Transformer(NamedTuple):
    """``params = init_fn(key)``; ``apply_fn(params, x) -> (N, out_dim)`` logits."""

    init_fn: Callable[[jax.Array], dict[str, jax.Array]]
    apply_fn: ApplyFn
    vocab: int
    seq_len: int


def transformer(
    vocab: int,
    seq_len: int,
    out_dim: int,
    *,
    d_model: int = 128,
    heads: int = 4,
    d_mlp: int = 512,
) -> Transformer:
    """A one-layer ReLU transformer ([trace] Sect. 5.2; Nanda et al. 2023).

    ``h = x W_E + P``; ``h <- h + Attn(h)`` (causal, ``heads`` heads of size
    ``d_model / heads``); ``h <- h + W_out relu(W_in h + b_in) + b_out``;
    logits ``= h[:, -1] W_U``.

    Args:
        vocab: number of tokens ``V`` (for ``a + b =`` mod ``p``: ``p + 1``).
        seq_len: sequence length ``T`` (3 for ``a, b, =``).
        out_dim: number of logits.
        d_model: width of the residual stream; divisible by ``heads``.
        heads: number of attention heads.
        d_mlp: hidden units of the MLP.

    Returns:
        A :class:`Transformer`. ``apply_fn`` takes one-hot inputs ``(N, T, V)``
        (or integer tokens ``(N, T)``).

    Raises:
        ValueError: a size that is not a positive integer, or ``d_model`` not
            divisible by ``heads``.
    """
    vocab = _checks.positive_int(vocab, "vocab")
    seq_len = _checks.positive_int(seq_len, "seq_len")
    out_dim = _checks.positive_int(out_dim, "out_dim")
    d_model = _checks.positive_int(d_model, "d_model")
    heads = _checks.positive_int(heads, "heads")
    d_mlp = _checks.positive_int(d_mlp, "d_mlp")
    if d_model % heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
    d_head = d_model // heads

    def init_fn(key: jax.Array) -> dict[str, jax.Array]:
        ks = jax.random.split(key, 9)

        def normal(k, shape, fan_in):
            return jax.random.normal(k, shape) / math.sqrt(fan_in)

        return {
            "embed": normal(ks[0], (vocab, d_model), 1.0),
            "pos": normal(ks[1], (seq_len, d_model), 1.0),
            "W_Q": normal(ks[2], (heads, d_model, d_head), d_model),
            "W_K": normal(ks[3], (heads, d_model, d_head), d_model),
            "W_V": normal(ks[4], (heads, d_model, d_head), d_model),
            "W_O": normal(ks[5], (heads, d_head, d_model), d_model),
            "W_in": normal(ks[6], (d_model, d_mlp), d_model),
            "b_in": jnp.zeros((d_mlp,)),
            "W_out": normal(ks[7], (d_mlp, d_model), d_mlp),
            "b_out": jnp.zeros((d_model,)),
            "unembed": normal(ks[8], (d_model, out_dim), d_model),
        }

    def apply_fn(params: dict[str, jax.Array], x: Any, **unused: Any) -> jax.Array:
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.integer):
            if not isinstance(x, jax.core.Tracer) and x.size and (int(x.min()) < 0 or int(x.max()) >= vocab):
                raise ValueError(f"tokens must lie in [0, {vocab}) (vocab={vocab}), got {int(x.min())}..{int(x.max())}: "
                                 "one_hot would turn the others into all-zero vectors")
            x = jax.nn.one_hot(x, vocab, dtype=params["embed"].dtype)
        if x.ndim != 3 or x.shape[1:] != (seq_len, vocab):
            raise ValueError(f"x must have shape (N, {seq_len}, {vocab}) (one-hot) or (N, {seq_len}) (tokens), "
                             f"got {x.shape}")
        # Only the last position's output is read, and one layer means nothing flows back to
        # earlier positions: keys and values are needed at every position, the query, the
        # attention output and the MLP only at the last one (the causal mask lets the last
        # position see every token, so it drops out). Same function as the full causal block,
        # about 2x fewer flops (tested against it in tests/test_transformer.py).
        h = x @ params["embed"] + params["pos"]
        last = h[:, -1]
        q = jnp.einsum("nd,hde->nhe", last, params["W_Q"])
        k = jnp.einsum("ntd,hde->nhte", h, params["W_K"])
        v = jnp.einsum("ntd,hde->nhte", h, params["W_V"])
        attn = jax.nn.softmax(jnp.einsum("nhe,nhse->nhs", q, k) / math.sqrt(d_head), axis=-1)
        last = last + jnp.einsum("nhe,hed->nd", jnp.einsum("nhs,nhse->nhe", attn, v), params["W_O"])
        last = last + jax.nn.relu(last @ params["W_in"] + params["b_in"]) @ params["W_out"] + params["b_out"]
        return last @ params["unembed"]

    return Transformer(init_fn, apply_fn, vocab, seq_len)


def sequences(pairs: Any, p: int) -> np.ndarray:
    """One-hot ``a, b, =`` sequences for token pairs ``(a, b)``: shape ``(n, 3, p + 1)``.

    Token ``p`` is the ``=`` sign.

    Raises:
        ValueError: ``pairs`` not of shape ``(n, 2)``, tokens outside ``[0, p)``, ``p < 2``.
    """
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 2:
        raise ValueError(f"modulus p must be an integer >= 2, got {p!r}")
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (n, 2), got {pairs.shape}")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= p):
        raise ValueError(f"tokens must lie in [0, {p}), got {pairs.min()}..{pairs.max()}")
    tokens = np.concatenate([pairs, np.full((len(pairs), 1), p, pairs.dtype)], axis=1)
    return np.eye(p + 1, dtype=np.float32)[tokens]


def fourier_energy(embed: Any, p: int) -> np.ndarray:
    """Energy of a token embedding per frequency of the group ``Z_p`` (Nanda et al. 2023).

    Nanda et al. ("Progress measures for grokking via mechanistic interpretability",
    ICLR 2023, arXiv:2301.05217) find that the modular-addition transformer embeds token ``a`` through
    ``cos(w_j a)`` and ``sin(w_j a)`` for a few key frequencies ``w_j = 2 pi j / p``, so
    the embedding matrix, read in the Fourier basis over the token axis, becomes
    sparse. This returns that spectrum: for the first ``p`` rows ``E`` (the number
    tokens ``0..p-1``; further rows such as ``=`` are ignored),
    ``energy[j] = sum_d |sum_a E[a, d] exp(-2 pi i j a / p)|^2 / p`` for ``j = 0``,
    doubled for ``1 <= j < p / 2`` (frequencies ``j`` and ``p - j`` carry the same
    energy for a real embedding), so that ``energy.sum() == ||E||_F^2`` (Parseval).
    ``energy[0]`` is the mean over tokens (the constant direction).

    Args:
        embed: the embedding matrix, shape ``(V, d)`` with ``V >= p``.
        p: the modulus (the number tokens are ``0..p-1``), ``p >= 2``.

    Returns:
        ``(p // 2 + 1,)`` non-negative energies, frequencies ``0..p // 2``.

    Raises:
        ValueError: ``p`` not an integer >= 2, ``embed`` not a finite matrix with at
            least ``p`` rows.
    """
    p = _checks.positive_int(p, "p", minimum=2)
    e = np.asarray(_checks.finite_array(embed, "embed", ndim=2), dtype=np.float64)
    if e.shape[0] < p:
        raise ValueError(f"embed must have at least p = {p} rows (one per number token), got {e.shape[0]}")
    power = (np.abs(np.fft.rfft(e[:p], axis=0)) ** 2).sum(axis=1) / p
    power[1:(p + 1) // 2] *= 2.0  # j and p - j; the Nyquist term (even p) appears once
    return power


def fourier_concentration(embed: Any, p: int, top: int) -> float:
    """Share of an embedding's non-constant Fourier energy in its ``top`` strongest frequencies.

    A progress measure after Nanda et al. (2023): the embedding of a
    randomly initialised transformer spreads its energy over all ``p // 2``
    non-zero frequencies (about ``top / (p // 2)`` in the strongest ``top``),
    while the generalising solution of modular addition concentrates it on a few
    key frequencies (share near 1). The constant direction (frequency 0) is left
    out, as it carries no information about the token.

    Args:
        embed: embedding matrix ``(V, d)``, ``V >= p`` (see :func:`fourier_energy`).
        p: the modulus, ``p >= 2``.
        top: how many frequencies to count, ``1 <= top <= p // 2``.

    Returns:
        A number in ``[top / (p // 2), 1]`` (``nan`` for an embedding constant over tokens).
    """
    energy = fourier_energy(embed, p)[1:]
    top = _checks.positive_int(top, "top")
    if top > energy.size:
        raise ValueError(f"top must be at most p // 2 = {energy.size}, got {top}")
    total = energy.sum()
    if total == 0:
        return float("nan")
    return float(np.sort(energy)[::-1][:top].sum() / total)
