"""Mean-field signal propagation and the NTK at large depth (chapters 04-05).

Two kinds of results live here.

**Infinite width, any depth** (Poole et al. 2016; Schoenholz et al. 2017; thesis
§2.2.4 and §3.1 eqs. 5-9). For a fully connected network with weights
``W_ij ~ N(0, sigma_w^2 / n_{l-1})`` and biases ``b_i ~ N(0, sigma_b^2)`` the
pre-activation variance ``q^l`` and the covariance ``q_12^l`` of two inputs obey
deterministic maps (:func:`forward`); gradients are multiplied by
``chi^l = sigma_w^2 E[phi'(h^l)^2]`` per layer (:func:`backward_factors`). The
value ``chi_1`` of that factor at the fixed point of the variance map separates
the *ordered* phase (``chi_1 < 1``: gradients vanish, inputs become correlated)
from the *chaotic* one (``chi_1 > 1``), with the *edge of chaos* in between
(:func:`chi1`, :func:`phase`, :func:`critical_weight_variance`). From the same
quantities come the diagonal and off-diagonal NTK constants ``kappa_1``,
``kappa_2`` of thesis §3.1 Lemma 2 (:func:`ntk_parts`) and the output variance
of a network trained in the kernel regime, thesis §3.1 Thm 3
(:func:`output_variance`).

**Depth comparable to width, ReLU** (Seleznova & Kutyniok 2022b; thesis §3.2).
The dispersion ``E[Theta(x,x)^2] / E[Theta(x,x)]^2`` of the NTK at
initialisation in the standard parameterisation with ``sigma_b = 0``:
the infinite-depth-and-width limit ``L/M -> lambda`` of Thm 3.1
(:func:`ntk_dispersion_limit`), the finite-width moments of Thm 3.2
(:func:`ntk_moments`, :func:`ntk_dispersion`), and the estimate (18) of the
ratio of off-diagonal to diagonal NTK entries (:func:`offdiag_ratio_estimate`).

Conventions: ``q^l`` is the variance of a pre-activation ``h^l_i`` (thesis §3.1
eq. 5), ``qhat^l = E[phi(h^l_i)^2]`` that of an activation, with
``qhat^0 = ||x||^2 / n_0`` for the input. Depth ``L`` counts weight layers (the
last one linear, output dimension 1). Expectations over Gaussians use the closed
forms for ReLU and a sinh-mapped trapezoid rule otherwise (:func:`_sinh_rule`); everything is float64
NumPy (these are scalar recursions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _checks
from scipy import optimize, special

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "erf")
PHASES: tuple[str, ...] = ("ordered", "edge_of_chaos", "chaotic")


# --------------------------------------------------------------------------- checks
def _check_variances(W_var: float, b_var: float) -> tuple[float, float]:
    return _checks.positive(W_var, "W_var (sigma_w^2)"), _checks.nonneg(b_var, "b_var (sigma_b^2)")


def _check_moment_args(widths: Any, W_var: float, x_norm_sq: float) -> tuple[np.ndarray, float]:
    """Shared checks of the finite-width NTK moment formulas: widths as floats, the weight variance.

    ``x_norm_sq`` must be a positive finite number (NaN and inf are refused).
    """
    n = np.asarray(widths)
    if n.ndim != 1 or n.size < 1 or not np.issubdtype(n.dtype, np.integer) or np.any(n < 1):
        raise ValueError(f"widths must be a non-empty sequence of positive integers (n_0, ..., n_(L-1)), got {widths!r}")
    W_var, _ = _check_variances(W_var, 0.0)
    _checks.positive(x_norm_sq, "x_norm_sq")
    return n.astype(float), W_var


def check_phase(phase: str) -> str:
    """Return ``phase`` if it names one of :data:`PHASES`, else raise a ``ValueError``."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return phase


# ------------------------------------------------------------ Gaussian expectations
def _sinh_rule(scale: np.ndarray, n: int, span: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``E[g(w)]``, ``w ~ N(0, scale^2)``: trapezoid in ``t`` with ``w = s0 sinh(t)``.

    ``s0 = min(1, scale)`` puts nodes densely where tanh bends (``|w| <~ 1``)
    and spreads them geometrically out to ``span`` standard deviations, so one rule
    serves variances from 1e-4 to 1e3 (relative error ~1e-15 against adaptive
    quadrature, see the tests). Plain Gauss-Hermite nodes in ``z = w / scale`` are
    too sparse near ``w = 0`` once ``scale >> 1`` (error 5 % at ``q = 10``).
    """
    scale = np.maximum(np.asarray(scale, dtype=float), 1e-150)[..., None]
    s0 = np.minimum(1.0, scale)
    t_max = np.arcsinh(span * scale / s0)
    t = np.linspace(-1.0, 1.0, n) * t_max
    w = s0 * np.sinh(t)
    weights = (2 * t_max / (n - 1)) * s0 * np.cosh(t) * np.exp(-0.5 * (w / scale) ** 2) / (np.sqrt(2 * np.pi) * scale)
    weights[..., [0, -1]] *= 0.5
    return w, weights


def _phi(activation: str, u: np.ndarray) -> np.ndarray:
    if activation == "relu":
        return np.maximum(u, 0.0)
    if activation == "erf":
        return special.erf(u)
    return np.tanh(u)


def _dphi(activation: str, u: np.ndarray) -> np.ndarray:
    if activation == "relu":
        return (u > 0).astype(float)
    if activation == "erf":
        return 2.0 / np.sqrt(np.pi) * np.exp(-np.square(u))
    return 1.0 / np.cosh(np.clip(u, -350.0, 350.0)) ** 2


def gaussian_moments(q: Any, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """``E[phi(u)^2]`` and ``E[phi'(u)^2]`` for ``u ~ N(0, q)`` (thesis §3.1 eqs. 5, 8).

    Args:
        q: variance(s) ``>= 0`` (any shape).
        activation: ``"relu"`` (closed form: ``q / 2`` and ``1 / 2``), ``"erf"``
            (closed form: ``(2/pi) arcsin(2q / (1 + 2q))`` and ``(4/pi) / sqrt(1 + 4q)``,
            Williams 1997) or ``"tanh"`` (a 401-node quadrature, see :func:`_sinh_rule`).

    Returns:
        Two arrays of the shape of ``q``.
    """
    _checks.choice(activation, "activation", ACTIVATIONS)
    q = np.asarray(q, dtype=float)
    if np.any(q < 0) or np.any(np.isnan(q)):
        raise ValueError("variances q must be non-negative (and not NaN)")
    if activation == "relu":
        return q / 2.0, np.full_like(q, 0.5)
    if activation == "erf":
        return 2.0 / np.pi * np.arcsin(2 * q / (1 + 2 * q)), 4.0 / np.pi / np.sqrt(1 + 4 * q)
    u, w = _sinh_rule(np.sqrt(q), 401)
    return np.sum(_phi(activation, u) ** 2 * w, axis=-1), np.sum(_dphi(activation, u) ** 2 * w, axis=-1)


def bivariate_moments(q1: Any, q2: Any, q12: Any, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` for ``(u, v) ~ N(0, [[q1, q12], [q12, q2]])``.

    For ReLU these are the arc-cosine kernels (thesis §3.1 App. E.1); for erf the
    closed forms ``(2/pi) arcsin(2 q12 / sqrt((1 + 2 q1)(1 + 2 q2)))`` and
    ``(4/pi) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 q12^2)`` (Williams 1997; thesis §3.1 App. E). Otherwise,
    for equal variances ``q1 = q2 = q`` the pair is rotated to the independent
    ``(u +- v) / sqrt 2`` of variances ``q (1 +- c)`` and integrated with a
    101 x 101 tensor rule (:func:`_sinh_rule`), accurate to ~1e-14 for ``q <~ 10``
    and 1e-9 at ``q = 20``, for all correlations ``c`` including ``c -> 1``; unequal variances are not
    supported for tanh (the book only needs inputs of equal norm).
    """
    _checks.choice(activation, "activation", ACTIVATIONS)
    q1, q2, q12 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, q12)))
    if np.any(q1 < 0) or np.any(q2 < 0) or np.any(np.isnan(q1)) or np.any(np.isnan(q2)) or np.any(np.isnan(q12)):
        raise ValueError("variances q1, q2 must be non-negative, and q1, q2, q12 not NaN")
    norm = np.sqrt(q1 * q2)
    c = np.clip(np.divide(q12, norm, out=np.ones_like(norm), where=norm > 0), -1.0, 1.0)
    if activation == "relu":
        theta = np.arccos(c)
        e_phi = norm * (np.sin(theta) + (np.pi - theta) * c) / (2 * np.pi)
        return e_phi, (np.pi - theta) / (2 * np.pi)
    if activation == "erf":
        q12 = c * norm  # clipped to a valid covariance
        d1, d2 = 1 + 2 * q1, 1 + 2 * q2
        return (2.0 / np.pi * np.arcsin(np.clip(2 * q12 / np.sqrt(d1 * d2), -1.0, 1.0)),
                4.0 / np.pi / np.sqrt(d1 * d2 - 4 * q12**2))
    if not np.allclose(q1, q2, rtol=1e-12, atol=0.0):
        raise ValueError(f"{activation}: bivariate moments are implemented for equal variances q1 == q2 only")
    w1, a1 = _sinh_rule(np.sqrt(q1 * (1 + c)), 101)
    w2, a2 = _sinh_rule(np.sqrt(q1 * (1 - c)), 101)
    plus, minus = w1[..., :, None], w2[..., None, :]
    u, v = (plus + minus) / np.sqrt(2.0), (plus - minus) / np.sqrt(2.0)
    weights = a1[..., :, None] * a2[..., None, :]
    e_phi = np.sum(_phi(activation, u) * _phi(activation, v) * weights, axis=(-2, -1))
    e_dphi = np.sum(_dphi(activation, u) * _dphi(activation, v) * weights, axis=(-2, -1))
    return e_phi, e_dphi


# ------------------------------------------------------------- forward / backward
class Forward(NamedTuple):
    """Mean-field forward pass for two inputs of equal norm.

    ``q[l-1], q12[l-1], c[l-1]``: variance, covariance and correlation of the
    pre-activations of layer ``l = 1..depth``; ``qhat[l], qhat12[l]``: second
    moment and cross moment of the activations of layer ``l = 0..depth-1``
    (``l = 0`` is the input).
    """

    q: np.ndarray
    q12: np.ndarray
    c: np.ndarray
    qhat: np.ndarray
    qhat12: np.ndarray


def forward(
    depth: int, W_var: float, b_var: float, activation: str, *, q0: float = 1.0, c0: Any = 0.0
) -> Forward:
    """Iterate the variance and covariance maps (thesis §3.1 eqs. 5-7; eq. 2.30).

    ``q^1 = sigma_w^2 qhat^0 + sigma_b^2`` and ``q^{l+1} = sigma_w^2 E[phi(h^l)^2] + sigma_b^2``;
    likewise ``q_12^{l+1} = sigma_w^2 E[phi(h^l(x)) phi(h^l(x'))] + sigma_b^2``.

    Args:
        depth: number of layers ``L >= 1``.
        W_var, b_var: ``sigma_w^2 > 0`` and ``sigma_b^2 >= 0``.
        activation: one of :data:`ACTIVATIONS`.
        q0: ``||x||^2 / n_0`` of both inputs (1 for inputs on the sphere of radius ``sqrt(n_0)``).
        c0: cosine of the angle between the two inputs, in ``[-1, 1]``; an array of
            cosines gives two-input quantities of shape ``(depth, *c0.shape)``.

    Returns:
        A :class:`Forward`.
    """
    depth = _checks.positive_int(depth, "depth")
    W_var, b_var = _check_variances(W_var, b_var)
    _checks.choice(activation, "activation", ACTIVATIONS)
    _checks.positive(q0, "q0 (input second moment)")
    c0 = np.asarray(c0, dtype=float)
    if np.any(np.abs(c0) > 1.0) or not np.all(np.isfinite(c0)):
        raise ValueError(f"c0 (input cosine) must lie in [-1, 1], got {c0}")
    q, qhat = np.empty(depth), np.empty(depth)
    q12, qhat12 = np.empty((depth,) + c0.shape), np.empty((depth,) + c0.shape)
    qhat[0], qhat12[0] = q0, c0 * q0
    for layer in range(depth):
        q[layer] = W_var * qhat[layer] + b_var
        q12[layer] = W_var * qhat12[layer] + b_var
        if layer + 1 < depth:
            qhat[layer + 1] = gaussian_moments(q[layer], activation)[0]
            qhat12[layer + 1] = bivariate_moments(q[layer], q[layer], q12[layer], activation)[0]
    c = q12 / q.reshape((depth,) + (1,) * c0.ndim)
    return Forward(q=q, q12=q12, c=c, qhat=qhat, qhat12=qhat12)


def backward_factors(fwd: Forward, W_var: float, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer gradient factors ``chi^l = sigma_w^2 E[phi'(h^l)^2]`` and their two-input analogue.

    The squared norm of the back-propagated error ``delta^l = df/dh^l`` obeys
    ``E||delta^l||^2 = chi^l E||delta^{l+1}||^2`` (thesis §3.1 eq. 8, constant width;
    eq. 2.31), and ``E<delta^l(x), delta^l(x')>`` likewise with
    ``sigma_w^2 E[phi'(u) phi'(v)]`` (eq. 9). Returned for ``l = 1..depth-1``.
    """
    W_var, _ = _check_variances(W_var, 0.0)
    hidden = fwd.q[:-1]
    chi = W_var * gaussian_moments(hidden, activation)[1]
    qq = hidden.reshape(hidden.shape + (1,) * (fwd.q12.ndim - 1))
    chi12 = W_var * bivariate_moments(qq, qq, fwd.q12[:-1], activation)[1]
    return chi, chi12


def _suffix_products(factors: np.ndarray) -> np.ndarray:
    """``out[L-1, l-1] = prod_{k=l}^{L-1} factors[k-1]`` for ``1 <= l <= L <= depth`` (zero above).

    ``factors`` has shape ``(depth - 1, *batch)``; the result ``(depth, depth, *batch)``.
    """
    depth = factors.shape[0] + 1
    batch = factors.shape[1:]
    with np.errstate(divide="ignore"):
        logs = np.concatenate([np.zeros((1,) + batch), np.cumsum(np.log(factors), axis=0)])
    ell = np.arange(depth).reshape((depth,) + (1,) * len(batch))
    mat = logs[:, None] - logs[None, :]  # row L-1, column l-1: sum_{k=l}^{L-1} log f_k
    lower = (ell[None, :] <= ell[:, None])
    with np.errstate(invalid="ignore"):
        return np.where(lower, np.exp(np.where(lower, mat, 0.0)), 0.0)


class NTKParts(NamedTuple):
    """Infinite-width NTK constants for every depth ``L = 1..depth`` (arrays of length ``depth``).

    ``weight_diag[L-1] = sum_l alpha_{l-1} qhat^{l-1} p^l`` and ``bias_diag[L-1] = sum_l p^l``
    with ``p^l = prod_{k=l}^{L-1} chi^k`` (thesis §3.1 Lemma 2, App. A); ``*_offdiag``
    are the same with the two-input moments. ``kappa_1 = weight_diag`` and
    ``kappa_2 = weight_offdiag`` up to the common factor ``1/alpha``, which cancels
    in every ratio we use. In the NTK parameterisation the infinite-width NTK is
    ``sigma_w^2 weight + sigma_b^2 bias``; in the standard one it is
    ``M weight + bias`` to leading order (``M`` the width).
    """

    weight_diag: np.ndarray
    weight_offdiag: np.ndarray
    bias_diag: np.ndarray
    bias_offdiag: np.ndarray


def ntk_parts(
    depth: int, W_var: float, b_var: float, activation: str, *, q0: float = 1.0, c0: float = 0.0, alpha0: float = 1.0
) -> NTKParts:
    """The mean-field NTK constants of thesis §3.1 Lemma 2 for all depths up to ``depth``.

    Args:
        depth: largest depth ``L`` (weight layers, output linear).
        W_var, b_var, activation, q0, c0: as in :func:`forward`.
        alpha0: ``n_0 / M``, the input dimension relative to the (constant) width.

    Returns:
        :class:`NTKParts`; entry ``L - 1`` belongs to the network of depth ``L`` (the
        off-diagonal arrays have shape ``(depth, *c0.shape)``).
    """
    _checks.positive(alpha0, "alpha0")
    return _parts(forward(depth, W_var, b_var, activation, q0=q0, c0=c0), W_var, activation, alpha0)


def _parts(fwd: Forward, W_var: float, activation: str, alpha0: float) -> NTKParts:
    depth = fwd.q.size
    chi, chi12 = backward_factors(fwd, W_var, activation)
    p, p12 = _suffix_products(chi), _suffix_products(chi12)  # (L, l, ...) -> p^l in a depth-L net
    alpha = np.ones(depth)
    alpha[0] = alpha0
    a12 = alpha.reshape((depth,) + (1,) * (fwd.qhat12.ndim - 1))
    return NTKParts(
        weight_diag=p @ (alpha * fwd.qhat),
        weight_offdiag=np.einsum("Ll...,l...->L...", p12, a12 * fwd.qhat12),
        bias_diag=p.sum(axis=1),
        bias_offdiag=p12.sum(axis=1),
    )


def kappas(
    depth: int, W_var: float, b_var: float, activation: str, *, c0: float = 0.0, q0: float = 1.0, alpha0: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(kappa_1, kappa_2)`` of thesis §3.1 Lemma 2 for depths ``1..depth`` (up to ``1/alpha``).

    The NTK matrix of a wide network on inputs with pairwise cosine ``c0`` is
    approximately ``alpha M ((kappa_1 - kappa_2) I + kappa_2 1 1^T)``, so its
    condition number is ``(kappa_1 + (S - 1) kappa_2) / (kappa_1 - kappa_2)``:
    a ratio ``kappa_1 / kappa_2`` near 1 means an ill-conditioned kernel.
    """
    parts = ntk_parts(depth, W_var, b_var, activation, q0=q0, c0=c0, alpha0=alpha0)
    return parts.weight_diag, parts.weight_offdiag


class SphereKernels(NamedTuple):
    """Infinite-width kernels of a depth-``L`` network as functions of the input cosine.

    ``nngp``: output covariance ``q_12^L`` (``q^L`` at cosine 1); ``weight``, ``bias``:
    the weight and bias parts of the NTK (:class:`NTKParts` at depth ``L``).
    """

    nngp: np.ndarray
    weight: np.ndarray
    bias: np.ndarray


def sphere_kernels(cosines: Any, depth: int, W_var: float, b_var: float, activation: str, *,
                   n_nodes: int = 64) -> SphereKernels:
    """NNGP and NTK parts for inputs on the sphere ``||x||^2 = n_0``, evaluated at any array of cosines.

    On that sphere every kernel of a fully connected network is a function of the
    cosine alone, so a data set's kernel matrices follow from
    ``cosines = X X^T / n_0``. For ReLU the recursion runs on the array directly
    (closed forms); for tanh the kernels, analytic in the cosine, are computed at
    ``n_nodes`` Chebyshev-Lobatto points of ``[-1, 1]`` and interpolated (error
    ~1e-10, see the tests).
    """
    depth = _checks.positive_int(depth, "depth")
    _checks.choice(activation, "activation", ACTIVATIONS)
    c = np.asarray(cosines, dtype=float)
    _checks.finite_values(c, "cosines", low=-1.0, high=1.0, slack=1e-6)
    # Cosines within 1e-12 of 1 are a point paired with itself up to rounding; arccos
    # would turn that rounding into an error of 1e-8 (ReLU), so snap them to 1.
    c = np.where(c > 1.0 - 1e-12, 1.0, np.clip(c, -1.0, 1.0))

    def direct(cs):
        fwd = forward(depth, W_var, b_var, activation, c0=cs)
        parts = _parts(fwd, W_var, activation, 1.0)
        return fwd.q12[-1], parts.weight_offdiag[-1], parts.bias_offdiag[-1]

    if activation in ("relu", "erf"):
        return SphereKernels(*direct(c))
    _checks.positive_int(n_nodes, "n_nodes", minimum=4)
    nodes = np.cos(np.pi * np.arange(n_nodes) / (n_nodes - 1))
    values = direct(nodes)  # one vectorised pass over all nodes
    coefs = [np.polynomial.chebyshev.chebfit(nodes, v, n_nodes - 1) for v in values]
    return SphereKernels(*(np.polynomial.chebyshev.chebval(c, k) for k in coefs))


# ------------------------------------------------------------------ phases
def fixed_point(W_var: float, b_var: float, activation: str) -> float:
    """The stable fixed point ``q*`` of the variance map ``q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2``.

    For ReLU it is ``sigma_b^2 / (1 - sigma_w^2 / 2)`` when ``sigma_w^2 < 2`` and
    ``inf`` otherwise (the variance grows without bound; with ``sigma_b = 0`` and
    ``sigma_w^2 = 2`` every ``q`` is fixed and 1 is returned). For tanh the map is concave and bounded, so ``F(q) = map(q) - q`` has one positive root
    when ``sigma_b > 0`` (found by Brent's method); with ``sigma_b = 0`` the root
    is 0 unless the map's slope at 0 exceeds 1.
    """
    W_var, b_var = _check_variances(W_var, b_var)
    _checks.choice(activation, "activation", ACTIVATIONS)
    if activation == "relu":
        a = W_var / 2.0
        if a < 1.0:
            return b_var / (1.0 - a)
        if a == 1.0 and b_var == 0.0:
            return 1.0
        return float("inf")

    def excess(q: float) -> float:
        return float(W_var * gaussian_moments(q, activation)[0] + b_var - q)

    hi = W_var + b_var + 1.0  # E[phi^2] <= 1, so excess(hi) < 0
    lo = 0.0
    if b_var == 0.0:
        lo = 1e-12
        if excess(lo) <= 0.0:
            return 0.0
    return float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14))


def chi1(W_var: float, b_var: float, activation: str) -> float:
    """``chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]`` at the fixed point ``q*`` (thesis eq. 2.33; §3.1).

    ``chi_1 < 1``: ordered phase (vanishing gradients); ``> 1``: chaotic (exploding);
    ``= 1``: edge of chaos. It is also the slope at ``c = 1`` of the correlation
    map (:func:`correlation_map`). For ReLU, ``chi_1 = sigma_w^2 / 2`` for every ``q``.
    """
    W_var, b_var = _check_variances(W_var, b_var)
    if activation == "relu":
        return W_var / 2.0
    q_star = fixed_point(W_var, b_var, activation)
    return float(W_var * gaussian_moments(q_star, activation)[1])


def critical_weight_variance(b_var: float, activation: str) -> float:
    """The ``sigma_w^2`` of the edge of chaos for a given ``sigma_b^2``: the root of ``chi_1 = 1``.

    For ReLU the gradient factor is ``sigma_w^2 / 2`` at every ``q``, so this returns 2
    whatever ``sigma_b`` (thesis §3.1 Fig. 7 caption). That is the root of ``chi_1 = 1``
    only: for ReLU an edge of chaos in the sense of a finite fixed point ``q*`` with
    ``chi_1 = 1`` exists only at ``sigma_b = 0`` (Hayou et al. 2019); with ``sigma_b > 0`` and
    ``sigma_w^2 = 2`` the variance grows without bound (:func:`fixed_point`, :func:`depth_scales`).
    For tanh and erf with ``sigma_b > 0``, found with Brent's method. At ``sigma_b = 0``
    the fixed point is ``q* = 0`` until the variance map's slope at 0,
    ``sigma_w^2 phi'(0)^2``, reaches 1; there ``chi_1 = 1`` and ``q*`` starts to grow.
    Above that point ``chi_1 - 1`` grows only like the square of the distance (about
    ``eps^2 / 3`` at ``sigma_w^2 (1 + eps)``), too flat for a root finder in floating point
    (Brent's method failed to converge for erf on some CPUs), so the edge is read off the
    slope: ``1 / phi'(0)^2`` (1 for tanh, ``pi / 4`` for erf). Brent's iteration cap is 500
    (SciPy's default 100 is not always enough at the ``1e-12`` tolerance).
    """
    _check_variances(1.0, b_var)
    _checks.choice(activation, "activation", ACTIVATIONS)
    if activation == "relu":
        return 2.0
    if b_var == 0.0:
        return float(1.0 / gaussian_moments(0.0, activation)[1])
    return float(optimize.brentq(lambda w: chi1(w, b_var, activation) - 1.0, 1e-2, 1e3, xtol=1e-12, rtol=1e-12,
                                 maxiter=500))


def phase(W_var: float, b_var: float, activation: str, *, rtol: float = 1e-3) -> str:
    """``"ordered"``, ``"edge_of_chaos"`` or ``"chaotic"``: where ``chi_1`` lies relative to 1 (± ``rtol``)."""
    value = chi1(W_var, b_var, activation)
    if value < 1.0 - rtol:
        return "ordered"
    if value > 1.0 + rtol:
        return "chaotic"
    return "edge_of_chaos"


def correlation_map(c: Any, W_var: float, b_var: float, activation: str, *, q: float | None = None) -> np.ndarray:
    """One layer of the correlation map at variance ``q`` (default the fixed point ``q*``).

    ``c -> (sigma_w^2 E[phi(u) phi(v)] + sigma_b^2) / q*`` with ``(u, v)`` of variance
    ``q`` and correlation ``c`` (Poole et al. 2016; thesis §3.1 eq. 7). Its slope at
    ``c = 1`` is ``chi_1``: above 1 nearby inputs are pushed apart (chaos).
    """
    W_var, b_var = _check_variances(W_var, b_var)
    if q is None:
        q = fixed_point(W_var, b_var, activation)
        if not np.isfinite(q):
            raise ValueError("the variance map has no finite fixed point here; pass q explicitly")
    c = np.asarray(c, dtype=float)
    _checks.finite_values(c, "correlations c", low=-1.0, high=1.0)
    q_next = W_var * gaussian_moments(q, activation)[0] + b_var
    return (W_var * bivariate_moments(q, q, c * q, activation)[0] + b_var) / q_next


def _variance_map_slope(q: float, W_var: float, activation: str) -> float:
    """``d q^{l+1} / d q^l = sigma_w^2 d/dq E[phi(sqrt(q) z)^2] = sigma_w^2 E[phi'^2 + phi phi'']`` at ``q``.

    The second form is Gaussian integration by parts (Schoenholz et al. 2017, eq. 5).
    ReLU: ``sigma_w^2 / 2``; erf: ``sigma_w^2 (4/pi) / ((1 + 2q) sqrt(1 + 4q))`` (the
    derivative of the arcsine); tanh: quadrature of ``phi'^2 + phi phi''`` with
    ``phi'' = -2 tanh sech^2``.
    """
    if activation == "relu":
        return W_var / 2.0
    if activation == "erf":
        return W_var * 4.0 / np.pi / ((1 + 2 * q) * np.sqrt(1 + 4 * q))
    u, w = _sinh_rule(np.sqrt(q), 401)
    t, s2 = np.tanh(u), _dphi("tanh", u)
    return float(W_var * np.sum((s2**2 - 2 * t**2 * s2) * w, axis=-1))


def correlation_fixed_point(W_var: float, b_var: float, activation: str) -> float:
    """The stable fixed point ``c*`` of the correlation map at ``q*`` (Poole et al. 2016; Schoenholz et al. 2017).

    ``c* = 1`` when ``chi_1 <= 1`` (ordered phase and edge of chaos, and always for ReLU,
    whose correlation map satisfies ``c^{l+1} >= c^l``); in the chaotic phase of an odd
    activation it is the root in ``[0, 1)`` of ``map(c) = c`` (Brent's method).

    Raises:
        ValueError: if the variance map has no positive finite fixed point ``q*``.
    """
    q_star = _positive_fixed_point(W_var, b_var, activation)
    if activation == "relu" or chi1(W_var, b_var, activation) <= 1.0:
        return 1.0

    def excess(c: float) -> float:
        return float(correlation_map(c, W_var, b_var, activation, q=q_star) - c)

    for k in range(2, 15):  # 1 - c close enough to 1 that the map's slope chi_1 > 1 dominates
        hi = 1.0 - 10.0**-k
        if excess(hi) < 0.0:
            return float(optimize.brentq(excess, 0.0, hi, xtol=1e-15, rtol=1e-14))
    raise ValueError(f"chi_1 = {chi1(W_var, b_var, activation)} is too close to 1 to locate c* < 1")


def _positive_fixed_point(W_var: float, b_var: float, activation: str) -> float:
    W_var, b_var = _check_variances(W_var, b_var)
    _checks.choice(activation, "activation", ACTIVATIONS)
    q_star = fixed_point(W_var, b_var, activation)
    if not (np.isfinite(q_star) and q_star > 0):
        raise ValueError(
            f"the variance map of {activation} at sigma_w^2 = {W_var}, sigma_b^2 = {b_var} has no positive finite "
            f"fixed point q* (got {q_star}); depth scales are defined around one")
    return q_star


class DepthScales(NamedTuple):
    """Depth scales of signal propagation (Schoenholz et al. 2017, eqs. 5-9).

    ``|q^l - q*| ~ exp(-l / xi_q)`` and ``|c^l - c*| ~ exp(-l / xi_c)`` for large ``l``,
    with ``xi = -1 / log(chi)``, ``chi_q`` and ``chi_c`` the slopes of the variance and
    correlation maps at their fixed points (``inf`` when the slope is 1: no exponential
    approach).
    """

    xi_q: float
    xi_c: float
    chi_q: float
    chi_c: float
    q_star: float
    c_star: float


def depth_scales(W_var: float, b_var: float, activation: str) -> DepthScales:
    """How many layers the variance and the correlation of two inputs take to reach their fixed points.

    Schoenholz et al. (2017), eqs. (5)-(9): linearising the maps at ``(q*, c*)``,
    ``chi_q = sigma_w^2 E[phi'(u)^2 + phi(u) phi''(u)]`` (``u ~ N(0, q*)``) and
    ``chi_c = sigma_w^2 E[phi'(u) phi'(v)]`` with ``(u, v)`` of variance ``q*`` and
    correlation ``c*`` (Price's theorem), and ``xi_q = -1 / log chi_q``,
    ``xi_c = -1 / log chi_c``. In the ordered phase ``c* = 1`` and ``chi_c = chi_1``, so
    ``xi_c`` diverges at the edge of chaos ``chi_1 = 1`` while ``xi_q`` stays finite.

    ReLU (``chi_q = chi_c = sigma_w^2 / 2``): defined only where ``q*`` is finite and
    positive, i.e. ``sigma_b > 0`` with ``sigma_w^2 < 2``, or ``(sigma_b, sigma_w^2) = (0, 2)``
    (every ``q`` fixed; both scales infinite), the ReLU edge of chaos of Hayou et al. (2019).

    Args:
        W_var, b_var: ``sigma_w^2 > 0`` and ``sigma_b^2 >= 0``.
        activation: one of :data:`ACTIVATIONS`.

    Returns:
        :class:`DepthScales`.

    Raises:
        ValueError: where the variance map has no positive finite fixed point.
    """
    q_star = _positive_fixed_point(W_var, b_var, activation)
    c_star = correlation_fixed_point(W_var, b_var, activation)
    chi_q = _variance_map_slope(q_star, W_var, activation)
    if c_star == 1.0:
        chi_c = chi1(W_var, b_var, activation)
    else:
        chi_c = float(W_var * bivariate_moments(q_star, q_star, c_star * q_star, activation)[1])

    def scale(chi: float) -> float:
        return float("inf") if chi >= 1.0 else float(-1.0 / np.log(chi))

    return DepthScales(xi_q=scale(abs(chi_q)), xi_c=scale(abs(chi_c)), chi_q=float(chi_q), chi_c=float(chi_c),
                       q_star=float(q_star), c_star=float(c_star))


# --------------------------------------------------------- output variance, Thm 3
def output_variance(q_out: Any, q_out_cross: Any, kappa_ratio: Any, n_train: int) -> np.ndarray:
    """Variance of the output of a network trained to convergence in the kernel regime (thesis §3.1 Thm 3).

    ``Var f^{t=inf}(x) ~= (1 + A^2 / S) (q^L - q_sr^L) + (A - 1)^2 q_sr^L`` with
    ``A = S / (kappa_1 / kappa_2 + S - 1)``, where ``q^L`` and ``q_sr^L`` are the
    output variance and the output covariance of two distinct inputs at
    initialisation (the NNGP), and ``S`` the number of training points. Exact when
    the NTK and NNGP matrices have the data-independent form of Lemma 2
    (all inputs pairwise at the same angle); an approximation otherwise.

    Args:
        q_out: ``q^L`` (NNGP diagonal).
        q_out_cross: ``q_sr^L`` (NNGP off-diagonal), ``<= q_out``.
        kappa_ratio: ``kappa_1 / kappa_2 >= 1``.
        n_train: ``S >= 1``.
    """
    n_train = _checks.positive_int(n_train, "n_train")
    q, qs, ratio = (np.asarray(v, dtype=float) for v in (q_out, q_out_cross, kappa_ratio))
    _checks.finite_values(q, "q_out", low=0.0)
    _checks.finite_values(qs, "q_out_cross")
    _checks.finite_values(ratio, "kappa_ratio = kappa_1 / kappa_2", low=1.0, slack=1e-12)
    a = n_train / (ratio + n_train - 1)
    return (1 + a**2 / n_train) * (q - qs) + (a - 1) ** 2 * qs


# --------------------------------------------------- NTK dispersion, thesis §3.2
def ntk_dispersion_limit(lam: Any, phase: str, *, alpha0: float = 1.0) -> np.ndarray:
    """Limit of ``E[Theta(x,x)^2] / E[Theta(x,x)]^2`` as ``L, M -> inf``, ``L/M -> lambda`` (thesis §3.2 Thm 3.1).

    ReLU network, standard parameterisation, ``sigma_b = 0``, constant width ``M``,
    ``n_0 = alpha0 M``, normalised input:

    - chaotic (``sigma_w^2 > 2``), eq. (8):
      ``e^{5 lambda} / (2 lambda) (1 - (1 - e^{-4 lambda}) / (4 lambda))``;
    - edge of chaos (``sigma_w^2 = 2``), eq. (9) (depends on ``alpha0``);
    - ordered (``sigma_w^2 < 2``), eq. (10): 1.

    Args:
        lam: depth-to-width ratio(s) ``lambda > 0``.
        phase: one of :data:`PHASES`.
        alpha0: ``n_0 / M > 0`` (used at the edge of chaos only).
    """
    check_phase(phase)
    lam = np.asarray(lam, dtype=float)
    _checks.finite_values(lam, "lam (depth-to-width ratio)", low=0.0, low_open=True)
    _checks.positive(alpha0, "alpha0")
    if phase == "ordered":
        return np.ones_like(lam)
    e5, e1 = np.exp(5 * lam), np.exp(lam)
    if phase == "chaotic":
        return e5 / (2 * lam) * (1 - (1 - np.exp(-4 * lam)) / (4 * lam))
    a0 = float(alpha0)
    return (
        e5 * (1 / (2 * lam) + (2 * a0**2 - 8 * a0) / (25 * lam**2))
        + (e1 - e5) * (1 - 4 * a0) / (8 * lam**2)
        + 2 * a0 / (5 * lam) * ((4 - a0) / (5 * lam) - 1 - a0)
    ) / (1 + a0) ** 2


class NTKMoments(NamedTuple):
    """First two moments of ``Theta(x,x) = Theta_W + Theta_b`` at initialisation (thesis §3.2 Thm 3.2).

    ``mean_W, mean_b``: eqs. (11), (12); ``second_W, second_b, cross``: eqs. (13),
    (14), (15) (``cross = E[Theta_W Theta_b]``); ``mean``, ``second`` of the sum and
    ``dispersion = second / mean^2``. The moments themselves overflow to ``inf`` for
    very deep chaotic networks; ``dispersion`` is computed in log space and does not.
    """

    mean_W: float
    mean_b: float
    second_W: float
    second_b: float
    cross: float
    mean: float
    second: float
    dispersion: float


def _logsumexp(x: np.ndarray) -> float:
    return float(special.logsumexp(x)) if x.size else -np.inf


def ntk_moments(widths: Sequence[int], W_var: float, *, x_norm_sq: float = 1.0) -> NTKMoments:
    """Moments of the NTK diagonal of a ReLU network at finite depth and width (thesis §3.2 Thm 3.2).

    Standard parameterisation, ``sigma_b = 0``, widths ``n_0, ..., n_{L-1}`` and a
    linear scalar output. With ``a = sigma_w^2 / 2``,
    ``X_(i,j) = prod_{k=i}^{j-1} (1 + 5/n_k)`` and ``C_(i,j) = prod_{k=i}^{j-1} (1 + 1/n_k)``
    (the ``O(M^{-3/2})`` terms dropped):

    - ``E[Theta_W] = ||x||^2 a^{L-1} sum_l n_{l-1}/n_0``, ``E[Theta_b] = sum_l a^{L-l}``;
    - ``E[Theta_W^2] = ||x||^4 a^{2(L-1)} [X_(1,L) sum_l (n_{l-1}/n_0)^2
      + 2 sum_{l1<l2} (n_{l1-1} n_{l2-1}/n_0^2) X_(1,l1) C_(l1,l2) X_(l2,L)]``;
    - ``E[Theta_b^2]`` and ``E[Theta_W Theta_b]`` exactly as eqs. (14), (15).

    The expression for ``E[Theta_W^2]`` is the one derived in the proof (Lemma A.5
    with general widths). Eq. (13) as printed in the thesis factors out
    ``X_(1,L)`` and drops the factor 2 of the cross terms; that version does not
    reduce to the limit of Thm 3.1 and disagrees with an exact two-layer
    computation, so we do not use it (the tests check both facts).

    Args:
        widths: ``(n_0, n_1, ..., n_{L-1})``, positive integers (``L = len(widths) >= 1``).
        W_var: ``sigma_w^2 > 0``.
        x_norm_sq: ``||x||^2`` of the input (the thesis normalises it to 1).

    Returns:
        :class:`NTKMoments`.
    """
    n, W_var = _check_moment_args(widths, W_var, x_norm_sq)
    depth = n.size
    log_a = np.log(W_var / 2.0)
    # Prefix sums over hidden layers k = 1..L-1: P[i] = sum_{k=1}^{i-1} log(1 + 5/n_k), so
    # log X_(i,j) = P[j] - P[i] for 1 <= i <= j <= L (index arrays by l - 1).
    px = np.concatenate([[0.0], np.cumsum(np.log1p(5.0 / n[1:]))])
    pc = np.concatenate([[0.0], np.cumsum(np.log1p(1.0 / n[1:]))])
    ell = np.arange(1, depth + 1)
    log_r = np.log(n / n[0])  # log(n_{l-1} / n_0)
    log_x2 = np.log(x_norm_sq)
    log_xl_L = px[-1] - px  # log X_(l, L)
    i1, i2 = np.triu_indices(depth, 1)  # pairs l1 < l2 (0-based l - 1)
    l1, l2 = ell[i1], ell[i2]

    log_mean_W = log_x2 + (depth - 1) * log_a + _logsumexp(log_r)
    log_mean_b = _logsumexp((depth - ell) * log_a)
    log_second_W = 2 * log_x2 + 2 * (depth - 1) * log_a + _logsumexp(np.concatenate([
        px[-1] + 2 * log_r,
        np.log(2.0) + log_r[i1] + log_r[i2] + (px[i1] - px[0]) + (pc[i2] - pc[i1]) + log_xl_L[i2],
    ]))
    log_second_b = 2 * depth * log_a + _logsumexp(np.concatenate([
        log_xl_L - 2 * ell * log_a,
        np.log(2.0) + log_xl_L[i2] - (l1 + l2) * log_a,
    ]))
    log_cross = log_x2 + (2 * depth - 1) * log_a + _logsumexp(np.concatenate([
        log_r + log_xl_L - ell * log_a,
        log_xl_L[i2] - l1 * log_a + log_r[i2] + (pc[i2] - pc[i1]),
        log_xl_L[i2] - l1 * log_a + log_r[i1] + (l1 - l2) * log_a,
    ]))
    log_mean = np.logaddexp(log_mean_W, log_mean_b)
    log_second = _logsumexp(np.array([log_second_W, log_second_b, np.log(2.0) + log_cross]))
    with np.errstate(over="ignore"):
        values = np.exp([log_mean_W, log_mean_b, log_second_W, log_second_b, log_cross, log_mean, log_second])
    return NTKMoments(*map(float, values), dispersion=float(np.exp(log_second - 2 * log_mean)))


def ntk_second_W_as_printed(widths: Sequence[int], W_var: float, *, x_norm_sq: float = 1.0) -> float:
    """``E[Theta_W(x,x)^2]`` from eq. (13) of thesis §3.2 *as printed* (for comparison only).

    ``||x||^4 a^{2(L-1)} X_(1,L) [sum_l (n_{l-1}/n_0)^2 + sum_{l1<l2} (n_{l1-1} n_{l2-1}/n_0^2) C_(l1,l2)]``:
    the factor ``X_(1,L)`` multiplies every term and the cross terms carry no factor 2.
    The derivation (Lemma A.5; :func:`ntk_moments`) gives
    ``X_(1,L) sum_l (n_{l-1}/n_0)^2 + 2 sum_{l1<l2} (...) X_(1,l1) C_(l1,l2) X_(l2,L)``.
    The printed form can fall below ``E[Theta_W]^2`` (eq. 11 squared), which no second
    moment can (Jensen); chapter 05 shows both against Monte Carlo.

    Args:
        widths: ``(n_0, n_1, ..., n_{L-1})``, positive integers.
        W_var: ``sigma_w^2 > 0``.
        x_norm_sq: ``||x||^2`` of the input.

    Returns:
        The printed second moment (``inf`` if it overflows).
    """
    n, W_var = _check_moment_args(widths, W_var, x_norm_sq)
    depth = n.size
    pc = np.concatenate([[0.0], np.cumsum(np.log1p(1.0 / n[1:]))])  # log C_(1, l), l = 1..L
    log_r = np.log(n / n[0])
    i1, i2 = np.triu_indices(depth, 1)
    log_terms = np.concatenate([2 * log_r, log_r[i1] + log_r[i2] + (pc[i2] - pc[i1])])
    log_value = (2 * np.log(x_norm_sq) + 2 * (depth - 1) * np.log(W_var / 2.0)
                 + np.sum(np.log1p(5.0 / n[1:])) + _logsumexp(log_terms))
    with np.errstate(over="ignore"):
        return float(np.exp(log_value))


def ntk_dispersion(depth: Any, width: int, W_var: float, *, alpha0: float = 1.0) -> np.ndarray:
    """Thm 3.2's ``E[Theta^2] / E[Theta]^2`` for constant-width ReLU networks, for each depth in ``depth``.

    The widths are ``n_0 = round(alpha0 * width)`` and ``n_1 = ... = n_{L-1} = width``
    (thesis §3.2 eq. 5). See :func:`ntk_moments`.
    """
    depths = np.atleast_1d(np.asarray(depth))
    if not np.issubdtype(depths.dtype, np.integer) or np.any(depths < 1):
        raise ValueError(f"depth must be an integer >= 1 or an array of them, got {depth!r}")
    width = _checks.positive_int(width, "width")
    _checks.positive(alpha0, "alpha0")
    n0 = max(1, int(round(alpha0 * width)))
    out = np.array([ntk_moments([n0] + [width] * (int(d) - 1), W_var).dispersion for d in depths.ravel()])
    return out.reshape(depths.shape) if np.ndim(depth) else out[0]


def relu_correlation(rho: Any) -> np.ndarray:
    """``r(t) = (sqrt(1 - t^2) + t pi/2 + t arcsin t) / pi``: the cosine of two ReLU layers' outputs
    given the cosine ``t`` of their inputs, at infinite width (thesis §3.2, below eq. 18)."""
    t = np.clip(_checks.finite_values(rho, "rho"), -1.0, 1.0)
    return (np.sqrt(1 - t**2) + t * np.pi / 2 + t * np.arcsin(t)) / np.pi


def offdiag_ratio_estimate(rho0: float, depth: int, W_var: float) -> float:
    """The estimate (18) of ``E[Theta(x, x')] / E[Theta(x, x)]`` for deep ReLU networks in the ordered phase.

    ``sum_l a^{L-l} prod_{k=l}^{L-1} g(rho_{k-1}) / sum_l a^{L-l}`` with
    ``g(t) = (pi/2 + arcsin t) / pi``, ``a = sigma_w^2 / 2`` and ``rho_k`` the
    ``k``-fold application of :func:`relu_correlation` to the input cosine ``rho0``
    (thesis §3.2 eq. 18). It keeps only the bias part of the kernel, which
    dominates in the ordered phase.
    """
    depth = _checks.positive_int(depth, "depth")
    W_var, _ = _check_variances(W_var, 0.0)
    _checks.finite(rho0, "rho0 (input cosine)", low=-1.0, high=1.0)
    a = W_var / 2.0
    rho = np.empty(max(depth - 1, 1))
    rho[0] = rho0
    for k in range(1, rho.size):
        rho[k] = relu_correlation(rho[k - 1])
    g = (np.pi / 2 + np.arcsin(np.clip(rho, -1, 1))) / np.pi  # g(rho_{k-1}) for k = 1..L-1
    num = den = 0.0
    for ell in range(1, depth + 1):
        weight = a ** (depth - ell)
        num += weight * np.prod(g[ell - 1: depth - 1])
        den += weight
    return float(num / den)
