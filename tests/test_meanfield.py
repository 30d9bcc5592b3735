"""Mean-field recursions and the NTK dispersion formulas of thesis §3.1-3.2, against
adaptive quadrature, neural-tangents' stax kernels, hand-derived closed forms, and
each other in the limits where they must agree."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from ntkbook import meanfield as mf  # imported first: it patches neural-tangents
from neural_tangents import stax  # noqa: E402  isort: skip


# ------------------------------------------------------------------ expectations
def _quad1(g, q):
    f = lambda u: g(u) * np.exp(-u * u / (2 * q)) / np.sqrt(2 * np.pi * q)  # noqa: E731
    return integrate.quad(f, -np.inf, np.inf, epsabs=1e-15, epsrel=1e-13, limit=1000)[0]


def _quad2(g, q, c):
    s1, s2 = np.sqrt(q * (1 + c)), np.sqrt(q * (1 - c))

    def f(w2, w1):
        u, v = (w1 + w2) / np.sqrt(2), (w1 - w2) / np.sqrt(2)
        return g(u) * g(v) * np.exp(-0.5 * (w1 / s1) ** 2 - 0.5 * (w2 / s2) ** 2) / (2 * np.pi * s1 * s2)

    return integrate.dblquad(f, -14 * s1, 14 * s1, -14 * s2, 14 * s2, epsabs=1e-12, epsrel=1e-10)[0]


def _sech2(u):
    return 1.0 / np.cosh(np.clip(u, -350, 350)) ** 2


@pytest.mark.parametrize("q", [1e-3, 0.3, 1.0, 4.0, 30.0, 500.0])
def test_tanh_moments_match_adaptive_quadrature(q):
    e_phi, e_dphi = mf.gaussian_moments(q, "tanh")
    np.testing.assert_allclose(e_phi, _quad1(lambda u: np.tanh(u) ** 2, q), rtol=1e-10)
    np.testing.assert_allclose(e_dphi, _quad1(lambda u: _sech2(u) ** 2, q), rtol=1e-10)


@pytest.mark.parametrize("q, c", [(0.05, 0.3), (2.5, -0.5), (8.0, 0.95)])
def test_tanh_bivariate_moments_match_adaptive_quadrature(q, c):
    e_phi, e_dphi = mf.bivariate_moments(q, q, c * q, "tanh")
    np.testing.assert_allclose(e_phi, _quad2(np.tanh, q, c), rtol=1e-8)
    np.testing.assert_allclose(e_dphi, _quad2(_sech2, q, c), rtol=1e-8)


@pytest.mark.parametrize("c", [-0.8, 0.0, 0.6, 0.99])
def test_relu_closed_forms_match_quadrature(c):
    # Oracle: condition on u. Given u, v ~ N(c u, q (1 - c^2)) and, with mu = c u, s = sqrt(q (1 - c^2)),
    # E[relu(v) | u] = mu Phi(mu/s) + s phi(mu/s) and P(v > 0 | u) = Phi(mu/s); integrate over u > 0.
    from scipy.stats import norm
    q = 1.7
    s = np.sqrt(q * (1 - c * c))
    dens = lambda u: np.exp(-u * u / (2 * q)) / np.sqrt(2 * np.pi * q)  # noqa: E731
    e_phi = integrate.quad(lambda u: u * (c * u * norm.cdf(c * u / s) + s * norm.pdf(c * u / s)) * dens(u),
                           0, np.inf, epsabs=1e-14, epsrel=1e-12)[0]
    e_dphi = integrate.quad(lambda u: norm.cdf(c * u / s) * dens(u), 0, np.inf, epsabs=1e-14, epsrel=1e-12)[0]
    got = mf.bivariate_moments(q, q, c * q, "relu")
    np.testing.assert_allclose(got, [e_phi, e_dphi], rtol=1e-9)


# ------------------------------------------------------------ against stax (NTP)
def _stax_net(activation, depth, w_var, b_var):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = stax.Relu() if activation == "relu" else stax.ElementwiseNumerical(jnp.tanh, deg=200)
    layers = []
    for _ in range(depth - 1):
        layers += [stax.Dense(8, W_std=np.sqrt(w_var), b_std=np.sqrt(b_var)), act]
    layers.append(stax.Dense(1, W_std=np.sqrt(w_var), b_std=np.sqrt(b_var)))
    return stax.serial(*layers)[2]


@pytest.mark.parametrize("activation, w_var, b_var, rtol", [
    ("relu", 2.0, 0.3, 1e-12),  # both closed forms
    ("relu", 1.3, 0.0, 1e-12),
    ("tanh", 1.2, 0.1, 1e-7),   # stax: Gauss-Hermite with 200 nodes at q <~ 1
])
def test_forward_and_ntk_parts_reproduce_stax(x64, activation, w_var, b_var, rtol):
    depth, angle = 5, 0.7
    x = jnp.array([[np.sqrt(2.0), 0.0], [np.sqrt(2.0) * np.cos(angle), np.sqrt(2.0) * np.sin(angle)]])  # q0 = 1
    k = _stax_net(activation, depth, w_var, b_var)(x, None, ("nngp", "ntk"))
    fwd = mf.forward(depth, w_var, b_var, activation, q0=1.0, c0=np.cos(angle))
    parts = mf.ntk_parts(depth, w_var, b_var, activation, q0=1.0, c0=np.cos(angle))
    np.testing.assert_allclose([fwd.q[-1], fwd.q12[-1]], [k.nngp[0, 0], k.nngp[0, 1]], rtol=rtol)
    # NTK parameterisation: Theta = sigma_w^2 sum_l qhat^{l-1} p^l + sigma_b^2 sum_l p^l.
    ntp = w_var * parts.weight_diag[-1] + b_var * parts.bias_diag[-1]
    ntp12 = w_var * parts.weight_offdiag[-1] + b_var * parts.bias_offdiag[-1]
    np.testing.assert_allclose([ntp, ntp12], [k.ntk[0, 0], k.ntk[0, 1]], rtol=rtol)
    # Entry L-1 of ntk_parts belongs to depth L: check a shallower network too.
    k3 = _stax_net(activation, 3, w_var, b_var)(x, None, "ntk")
    np.testing.assert_allclose(w_var * parts.weight_diag[2] + b_var * parts.bias_diag[2], k3[0, 0], rtol=rtol)


# ----------------------------------------------------------------------- phases
def test_relu_phase_quantities():
    assert mf.chi1(1.5, 0.3, "relu") == 0.75
    assert mf.critical_weight_variance(0.7, "relu") == 2.0
    assert mf.phase(1.5, 0.1, "relu") == "ordered"
    assert mf.phase(2.0, 0.1, "relu") == "edge_of_chaos"
    assert mf.phase(2.5, 0.0, "relu") == "chaotic"
    assert mf.fixed_point(1.5, 0.5, "relu") == pytest.approx(0.5 / 0.25)
    assert mf.fixed_point(2.5, 0.5, "relu") == np.inf


@pytest.mark.parametrize("w_var, b_var", [(1.5, 0.05), (3.0, 0.5), (0.8, 0.0), (4.0, 2.0)])
def test_tanh_fixed_point_and_chi1_is_the_slope_of_the_correlation_map(w_var, b_var):
    q = mf.fixed_point(w_var, b_var, "tanh")
    assert abs(w_var * mf.gaussian_moments(q, "tanh")[0] + b_var - q) < 1e-12 * max(q, 1.0)
    if q == 0.0:  # the correlation map is undefined at q* = 0
        assert mf.chi1(w_var, b_var, "tanh") == pytest.approx(w_var)
        return
    # Independent relation (Schoenholz et al. 2017): d c^{l+1} / d c^l at c = 1 equals chi_1.
    h = 1e-4
    slope = (mf.correlation_map(1.0, w_var, b_var, "tanh") - mf.correlation_map(1.0 - h, w_var, b_var, "tanh")) / h
    np.testing.assert_allclose(slope, mf.chi1(w_var, b_var, "tanh"), rtol=2e-3)  # one-sided difference, O(h)
    assert mf.correlation_map(1.0, w_var, b_var, "tanh") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("activation, closed_form", [("tanh", 1.0), ("erf", np.pi / 4)])
def test_edge_of_chaos_without_bias(activation, closed_form):
    """At sigma_b = 0 the edge is where q* leaves 0. The library reads it off the slope at q = 0; the
    independent oracle is fixed_point (a root of the variance map, E[phi^2], not E[phi'^2]), which must
    be 0 just below the edge and positive just above, to 1e-6, and chi_1 - 1 above the edge must follow
    its series, eps^2 / 3 (expanding E[phi^2] and E[phi'^2] to second order in q, q* ~ eps / 2)."""
    edge = mf.critical_weight_variance(0.0, activation)
    assert edge == pytest.approx(closed_form, rel=1e-12)
    for eps in (1e-1, 1e-2, 1e-6):
        assert mf.fixed_point(edge * (1 - eps), 0.0, activation) == 0.0
        assert mf.fixed_point(edge * (1 + eps), 0.0, activation) > 0.0
    for eps in (1e-2, 1e-3):
        assert mf.chi1(edge * (1 + eps), 0.0, activation) - 1.0 == pytest.approx(eps**2 / 3, rel=0.05)


def test_tanh_critical_line():
    # At sigma_b = 0 the order-to-chaos transition of tanh is at sigma_w^2 = 1 (slope of tanh at 0).
    assert mf.critical_weight_variance(0.0, "tanh") == pytest.approx(1.0, abs=1e-6)
    crit = [mf.critical_weight_variance(b, "tanh") for b in (0.05, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(crit, crit[1:]))  # more bias needs more weight variance for chaos
    for b, w in zip((0.05, 0.5, 1.0, 2.0), crit):
        assert mf.chi1(w, b, "tanh") == pytest.approx(1.0, abs=1e-9)
        assert mf.phase(0.9 * w, b, "tanh") == "ordered" and mf.phase(1.1 * w, b, "tanh") == "chaotic"


def test_kappa_ratio_tends_to_one_in_the_ordered_phase():
    k1, k2 = mf.kappas(60, 1.0, 0.5, "relu", c0=0.2)
    assert k1[-1] / k2[-1] < 1.001 and k1[0] / k2[0] > 2.0


# ------------------------------------------------------------- output variance
def test_output_variance_is_exact_for_equicorrelated_kernels():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = int(rng.integers(2, 12))
        q, qs = 2.0 + rng.random(), rng.random()
        k1, k2 = 1.0 + 3 * rng.random(), rng.random()
        theta = (k1 - k2) * np.eye(s) + k2 * np.ones((s, s))
        nngp = (q - qs) * np.eye(s) + qs * np.ones((s, s))
        t_x, k_x = k2 * np.ones(s), qs * np.ones(s)
        # f(x) = f0(x) + Theta(x,X) Theta^-1 (Y - f0(X)); its variance over f0 ~ GP(0, K):
        w = np.linalg.solve(theta, t_x)
        exact = q - 2 * w @ k_x + w @ nngp @ w
        np.testing.assert_allclose(mf.output_variance(q, qs, k1 / k2, s), exact, rtol=1e-12)


# --------------------------------------------------- NTK dispersion (thesis §3.2)
def _two_layer_moments(n0, n1, w_var):
    """Exact E[Theta], E[Theta^2] of a ReLU net with one hidden layer, |x| = 1, sigma_b = 0.

    Theta = 2A + B + 1 with A = |delta^1|^2 = sum_i s_i w_i^2, B = |x^1|^2 = sum_i s_i h_i^2,
    s_i = 1[h_i > 0], w ~ N(0, sigma^2/n1), h ~ N(0, sigma^2/n0) (derived by hand).
    """
    a, r = w_var / 2, n1 / n0
    ea, eb = a, a * r
    ea2, eb2, eab = a**2 * (1 + 5 / n1), a**2 * r**2 * (1 + 5 / n1), a**2 * r * (1 + 1 / n1)
    mean = 2 * ea + eb + 1
    second = 4 * ea2 + eb2 + 1 + 4 * eab + 4 * ea + 2 * eb
    return mean, second, ea2 + 2 * eab + eb2  # last: E[Theta_W^2]


@pytest.mark.parametrize("n0, n1, w_var", [(3, 4, 2.0), (10, 6, 1.2), (2, 50, 3.3)])
def test_finite_width_moments_are_exact_for_one_hidden_layer(n0, n1, w_var):
    mean, second, ew2 = _two_layer_moments(n0, n1, w_var)
    m = mf.ntk_moments([n0, n1], w_var)
    np.testing.assert_allclose([m.mean, m.second, m.second_W], [mean, second, ew2], rtol=1e-13)
    # Eq. (13) as printed in the thesis, X_(1,L) [sum r^2 + sum r r C], misses this
    # (it coincides only in the special case n1 = 5):
    a, r = w_var / 2, n1 / n0
    printed = a**2 * (1 + 5 / n1) * (1 + r**2 + r * (1 + 1 / n1))
    assert abs(printed - ew2) > 1e-3 * ew2


def test_depth_one_is_deterministic():
    m = mf.ntk_moments([7], 2.3, x_norm_sq=2.0)  # f = W x + b: Theta = |x|^2 + 1
    assert m.mean == pytest.approx(3.0) and m.dispersion == pytest.approx(1.0)


@pytest.mark.parametrize("phase, w_var, alpha0", [("chaotic", 3.0, 1.0), ("edge_of_chaos", 2.0, 1.0),
                                                  ("edge_of_chaos", 2.0, 0.5)])
def test_finite_width_dispersion_tends_to_the_limit(phase, w_var, alpha0):
    lam = 0.5
    errors = []
    for m in (100, 400, 1600):
        fin = mf.ntk_dispersion(int(lam * m), m, w_var, alpha0=alpha0)
        errors.append(abs(fin / mf.ntk_dispersion_limit(lam, phase, alpha0=alpha0) - 1))
    # Thm 3.1 is Thm 3.2 with (1 + c/M)^L -> e^{c lambda}: the gap closes like 1/M.
    assert errors[-1] < 0.015
    assert 2.5 < errors[0] / errors[1] < 6 and 2.5 < errors[1] / errors[2] < 6


def test_ordered_phase_dispersion_tends_to_one():
    values = [mf.ntk_dispersion(m // 2, m, 1.4) for m in (100, 400, 1600)]
    assert values[0] > values[1] > values[2] > 1.0
    assert values[-1] < 1.005
    assert np.all(mf.ntk_dispersion_limit([0.1, 1.0, 5.0], "ordered") == 1.0)


def test_eoc_limit_tends_to_chaotic_limit_as_alpha0_vanishes():
    lam = np.array([0.2, 0.6, 1.0])
    chaos = mf.ntk_dispersion_limit(lam, "chaotic")
    np.testing.assert_allclose(mf.ntk_dispersion_limit(lam, "edge_of_chaos", alpha0=1e-7), chaos, rtol=1e-5)
    assert np.all(mf.ntk_dispersion_limit(lam, "edge_of_chaos", alpha0=1.0) < chaos)


def test_limit_formulas_are_continuous_at_small_lambda():
    # Both limits tend to 1 as lambda -> 0 (a shallow wide network has a deterministic NTK).
    for phase in ("chaotic", "edge_of_chaos"):
        assert mf.ntk_dispersion_limit(1e-3, phase) == pytest.approx(1.0, abs=0.01)


def test_moments_do_not_overflow_the_dispersion():
    m = mf.ntk_moments([50] * 800, 4.0)
    assert np.isinf(m.second) and np.isfinite(m.dispersion) and m.dispersion > 1


def test_offdiag_ratio_estimate():
    # Depth 2 by hand: (a g(rho0) + 1) / (a + 1), g(t) = (pi/2 + arcsin t) / pi.
    a, rho = 0.6, 0.3
    g = (np.pi / 2 + np.arcsin(rho)) / np.pi
    assert mf.offdiag_ratio_estimate(rho, 2, 2 * a) == pytest.approx((a * g + 1) / (a + 1))
    values = [mf.offdiag_ratio_estimate(0.2, d, 1.2) for d in (2, 5, 20, 80)]
    assert all(0.25 <= v <= 1 for v in values)
    np.testing.assert_allclose(mf.relu_correlation([0.0, 1.0]), [1 / np.pi, 1.0])


# ------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("call, match", [
    (lambda: mf.forward(0, 1.0, 0.0, "relu"), "depth"),
    (lambda: mf.ntk_parts(-2, 1.0, 0.0, "tanh"), "depth"),
    (lambda: mf.forward(3, -1.0, 0.0, "relu"), "W_var"),
    (lambda: mf.forward(3, 1.0, -0.1, "relu"), "b_var"),
    (lambda: mf.chi1(1.0, -0.5, "tanh"), "b_var"),
    (lambda: mf.forward(3, 1.0, 0.0, "sigmoid"), "activation"),
    (lambda: mf.ntk_dispersion_limit(0.5, "critical"), "phase"),
    (lambda: mf.check_phase("EOC"), "phase"),
    (lambda: mf.ntk_dispersion_limit(0.0, "chaotic"), "lam"),
    (lambda: mf.ntk_moments([], 2.0), "widths"),
    (lambda: mf.ntk_moments([10, 0], 2.0), "widths"),
    (lambda: mf.ntk_moments([10, 10], 0.0), "W_var"),
    (lambda: mf.ntk_dispersion(0, 10, 2.0), "depth"),
    (lambda: mf.ntk_dispersion(5, 10, -2.0), "W_var"),
    (lambda: mf.output_variance(1.0, 0.5, 0.5, 10), "kappa_ratio"),
    (lambda: mf.output_variance(1.0, 0.5, 2.0, 0), "n_train"),
    (lambda: mf.offdiag_ratio_estimate(1.5, 3, 1.0), "rho0"),
    (lambda: mf.forward(3, 1.0, 0.0, "relu", c0=1.2), "c0"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_numeric_variance_is_a_type_error():
    with pytest.raises(TypeError, match="W_var"):
        mf.chi1("2", 0.0, "relu")


# ---------------------------------------------------------------- sphere kernels
def test_sphere_kernels_relu_match_the_arccos_recursion(x64):
    from ntkbook import kernels
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 5), dtype=jnp.float64)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(5)  # on the sphere |x|^2 = n0
    cos = np.asarray(x @ x.T) / 5
    w_var, b_var, depth = 1.8, 0.2, 4
    sk = mf.sphere_kernels(cos, depth, w_var, b_var, "relu")
    ref = kernels.arccos_kernels(x, hidden_layers=depth - 1, W_std=np.sqrt(w_var), b_std=np.sqrt(b_var))
    np.testing.assert_allclose(sk.nngp, ref.nngp, rtol=1e-10)
    np.testing.assert_allclose(w_var * sk.weight + b_var * sk.bias, ref.ntk, rtol=1e-10)


def test_sphere_kernels_tanh_interpolation_matches_direct_evaluation():
    cos = np.array([-0.83, -0.1, 0.37, 0.91, 0.999, 1.0])
    sk = mf.sphere_kernels(cos, 6, 2.2, 0.4, "tanh")
    for i, c in enumerate(cos):
        fwd = mf.forward(6, 2.2, 0.4, "tanh", c0=c)
        parts = mf.ntk_parts(6, 2.2, 0.4, "tanh", c0=c)
        # Chebyshev interpolation of an analytic function with 64 nodes: error ~1e-10 here.
        np.testing.assert_allclose([sk.nngp[i], sk.weight[i], sk.bias[i]],
                                   [fwd.q12[-1], parts.weight_offdiag[-1], parts.bias_offdiag[-1]], rtol=1e-8)


def test_eq13_as_printed():
    # Two layers, |x| = 1: the printed form is a^2 (1 + 5/n1) (1 + r^2 + r (1 + 1/n1)), r = n1/n0
    # (worked by hand from eq. 13 with L = 2); the derived one is exact (test above).
    for n0, n1, w_var in ((3, 4, 2.0), (10, 6, 1.2), (2, 50, 3.3)):
        a, r = w_var / 2, n1 / n0
        printed = a**2 * (1 + 5 / n1) * (1 + r**2 + r * (1 + 1 / n1))
        assert mf.ntk_second_W_as_printed([n0, n1], w_var) == pytest.approx(printed, rel=1e-12)
    # Three layers of width n, by hand: X_(1,3) = (1 + 5/n)^2, C_(1,2) = C_(2,3) = 1 + 1/n, C_(1,3) = (1 + 1/n)^2.
    n, w_var, x2 = 7, 1.4, 2.0
    a, X, C = w_var / 2, (1 + 5 / n) ** 2, 1 + 1 / n
    by_hand = x2**2 * a**4 * X * (3 + 2 * C + C**2)
    assert mf.ntk_second_W_as_printed([n] * 3, w_var, x_norm_sq=x2) == pytest.approx(by_hand, rel=1e-12)
    # It can fall below E[Theta_W]^2, which a second moment cannot (Jensen); the derived one does not.
    m = mf.ntk_moments([40, 40], 2.0)
    assert mf.ntk_second_W_as_printed([40, 40], 2.0) < m.mean_W**2 < m.second_W
    with pytest.raises(ValueError, match="widths"):
        mf.ntk_second_W_as_printed([0, 3], 1.0)
    with pytest.raises(ValueError, match="x_norm_sq"):
        mf.ntk_second_W_as_printed([3, 3], 1.0, x_norm_sq=0.0)
