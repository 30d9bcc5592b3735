"""erf closed forms and the depth scales xi_q, xi_c of Schoenholz et al. (2017), against
adaptive quadrature, neural-tangents' closed-form erf kernels, and the fitted decay of
|q^l - q*| and |c^l - c*| when the maps are iterated (written here independently)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

from ntkbook import meanfield as mf  # imported first: it patches neural-tangents
from neural_tangents import stax  # noqa: E402  isort: skip


def _derf(u):
    return 2 / np.sqrt(np.pi) * np.exp(-u * u)


def _gauss1(g, q):
    f = lambda z: g(np.sqrt(q) * z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    return integrate.quad(f, -np.inf, np.inf, epsabs=1e-15, epsrel=1e-13, limit=500)[0]


def _gauss2(g, q, c):
    def f(z2, z1):
        u, v = np.sqrt(q) * z1, np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
        return g(u) * g(v) * np.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * np.pi)

    return integrate.dblquad(f, -12, 12, -12, 12, epsabs=1e-13, epsrel=1e-11)[0]


@pytest.mark.parametrize("q", [1e-3, 0.4, 2.0, 50.0])
def test_erf_moments_match_adaptive_quadrature(q):
    e_phi, e_dphi = mf.gaussian_moments(q, "erf")
    np.testing.assert_allclose(e_phi, _gauss1(lambda u: special.erf(u) ** 2, q), rtol=1e-9)
    np.testing.assert_allclose(e_dphi, _gauss1(lambda u: _derf(u) ** 2, q), rtol=1e-9)


@pytest.mark.parametrize("q,c", [(0.5, 0.3), (2.0, -0.6), (1.0, 0.95)])
def test_erf_bivariate_moments_match_adaptive_quadrature(q, c):
    e_phi, e_dphi = mf.bivariate_moments(q, q, c * q, "erf")
    np.testing.assert_allclose(e_phi, _gauss2(special.erf, q, c), rtol=1e-8)
    np.testing.assert_allclose(e_dphi, _gauss2(_derf, q, c), rtol=1e-8)


@pytest.mark.parametrize("w_var", [0.6, 1.4, 3.0])
def test_erf_kernels_match_stax_closed_forms(w_var):
    """NNGP and NTK of an erf network from the recursions equal stax.Erf's (closed forms too)."""
    import jax

    c0, depth, b_var = 0.4, 5, 0.05
    x = np.zeros((2, 4))
    x[0, 0], x[1, :2] = 2.0, (2 * c0, 2 * np.sqrt(1 - c0**2))  # ||x||^2 = n_0 = 4
    layers = []
    for _ in range(depth - 1):
        layers += [stax.Dense(8, W_std=np.sqrt(w_var), b_std=np.sqrt(b_var)), stax.Erf()]
    kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=np.sqrt(w_var), b_std=np.sqrt(b_var)))[2]
    with jax.experimental.enable_x64():
        k = kernel_fn(jnp.asarray(x, jnp.float64), None, ("nngp", "ntk"))
    fwd = mf.forward(depth, w_var, b_var, "erf", c0=c0)
    parts = mf.ntk_parts(depth, w_var, b_var, "erf", c0=c0)
    ntk = w_var * np.array([parts.weight_diag[-1], parts.weight_offdiag[-1]]) + b_var * np.array(
        [parts.bias_diag[-1], parts.bias_offdiag[-1]])
    np.testing.assert_allclose([k.nngp[0, 0], k.nngp[0, 1]], [fwd.q[-1], fwd.q12[-1]], rtol=1e-10)
    np.testing.assert_allclose([k.ntk[0, 0], k.ntk[0, 1]], ntk, rtol=1e-10)


# ------------------------------------------------------------- depth scales
def _maps(activation, w_var, b_var):
    """Independent one-layer maps: q -> q' and (q*, c) -> c' (erf/ReLU closed forms, tanh by scipy)."""
    if activation == "erf":
        qmap = lambda q: w_var * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + b_var  # noqa: E731
        cmap = lambda q, c: (w_var * 2 / np.pi * np.arcsin(2 * c * q / (1 + 2 * q)) + b_var) / q  # noqa: E731
    elif activation == "relu":
        r = lambda t: (np.sqrt(max(1 - t * t, 0.0)) + t * np.pi / 2 + t * np.arcsin(t)) / np.pi  # noqa: E731
        qmap = lambda q: w_var * q / 2 + b_var  # noqa: E731
        cmap = lambda q, c: (w_var * q / 2 * r(c) + b_var) / q  # noqa: E731
    else:
        qmap = lambda q: w_var * _gauss1(lambda u: np.tanh(u) ** 2, q) + b_var  # noqa: E731
        cmap = None  # the 2-D quadrature is too slow for 100 layers; see below
    return qmap, cmap


def _fitted_scale(errors, lo, hi):
    """-1 / slope of log|error| against the layer, over the layers where lo < |error| < hi."""
    errors = np.abs(np.asarray(errors))
    sel = (errors > lo) & (errors < hi)
    assert sel.sum() >= 4, errors
    slope = np.polyfit(np.nonzero(sel)[0], np.log(errors[sel]), 1)[0]
    return -1.0 / slope


@pytest.mark.parametrize("activation,w_var,b_var", [
    ("erf", 1.0, 0.05), ("erf", 2.2, 0.05), ("erf", 3.0, 0.3), ("relu", 1.5, 0.1), ("tanh", 1.2, 0.05),
    ("tanh", 2.5, 0.05),
])
def test_depth_scales_match_the_fitted_decay_of_the_iterated_maps(activation, w_var, b_var):
    ds = mf.depth_scales(w_var, b_var, activation)
    qmap, cmap = _maps(activation, w_var, b_var)
    q = [1.5 * ds.q_star + 0.5]
    for _ in range(80):
        q.append(qmap(q[-1]))
    q = np.array(q)
    assert abs(q[-1] - ds.q_star) < 1e-9 * ds.q_star  # the fixed point itself
    # Linearisation error ~ |q - q*|, so the window stays far below 1 and above rounding.
    np.testing.assert_allclose(_fitted_scale(q - ds.q_star, 1e-11 * ds.q_star, 1e-4 * ds.q_star), ds.xi_q, rtol=1e-2)
    if cmap is None:  # tanh: iterate the library's correlation map (a different code path from chi_c)
        cmap = lambda qs, c: float(mf.correlation_map(min(c, 1.0), w_var, b_var, activation, q=qs))  # noqa: E731
    c = [0.0 if ds.c_star < 1 else 0.5]
    for _ in range(int(40 * ds.xi_c) + 20):
        c.append(cmap(ds.q_star, c[-1]))
    c = np.array(c)
    assert abs(c[-1] - ds.c_star) < 1e-8
    lo = 1e-12 if activation != "tanh" else 1e-9
    np.testing.assert_allclose(_fitted_scale(c - ds.c_star, lo, 1e-5), ds.xi_c, rtol=1e-2)


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_xi_c_diverges_like_one_over_the_distance_to_the_edge(activation):
    """chi_1 is smooth in sigma_w^2 with chi_1 = 1 at the edge, so xi_c ~ 1 / |sigma_w^2 - edge| on
    both sides: a tenfold closer point has a tenfold larger xi_c (to first order), while xi_q stays finite."""
    b_var = 0.05
    edge = mf.critical_weight_variance(b_var, activation)
    for side in (-1, 1):
        far, near = (mf.depth_scales(edge * (1 + side * eps), b_var, activation) for eps in (1e-2, 1e-3))
        assert near.xi_c / far.xi_c == pytest.approx(10.0, rel=0.05)
        assert near.xi_q < 10 and far.xi_q < 10
    assert mf.depth_scales(edge * 0.999, b_var, activation).c_star == 1.0
    assert mf.depth_scales(edge * 1.01, b_var, activation).c_star < 1.0


def test_relu_depth_scales_exist_only_with_a_finite_fixed_point():
    ds = mf.depth_scales(1.5, 0.2, "relu")
    assert ds.xi_q == pytest.approx(-1 / np.log(0.75)) and ds.xi_c == pytest.approx(-1 / np.log(0.75))
    edge = mf.depth_scales(2.0, 0.0, "relu")  # (sigma_b, sigma_w^2) = (0, 2): every q is fixed
    assert edge.xi_q == np.inf and edge.xi_c == np.inf
    with pytest.raises(ValueError, match="fixed point"):
        mf.depth_scales(2.0, 0.1, "relu")  # q grows by sigma_b^2 per layer
    with pytest.raises(ValueError, match="fixed point"):
        mf.depth_scales(1.5, 0.0, "relu")  # q -> 0
    with pytest.raises(ValueError, match="fixed point"):
        mf.depth_scales(0.8, 0.0, "tanh")  # q* = 0 in the ordered phase without biases
    with pytest.raises(ValueError, match="activation"):
        mf.depth_scales(1.0, 0.1, "gelu")
