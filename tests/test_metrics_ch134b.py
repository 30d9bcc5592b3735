"""participation_ratio and rms_z_quantile against independent oracles (eigenvalues by hand, Monte Carlo)."""

import numpy as np
import pytest

from ntkbook import metrics


def _equicorrelated(p, rho):
    return (1 - rho) * np.eye(p) + rho * np.ones((p, p))


def _draws(corr, n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, corr.shape[0])) @ np.linalg.cholesky(corr).T


def test_participation_ratio_equicorrelated_closed_form():
    # Eigenvalues of (1 - rho) I + rho 11^T: 1 + (p - 1) rho once and 1 - rho (p - 1) times.
    p, rho = 20, 0.6
    lam = np.r_[1 + (p - 1) * rho, np.full(p - 1, 1 - rho)]
    expected = lam.sum() ** 2 / np.sum(lam**2)
    got = metrics.participation_ratio(_draws(_equicorrelated(p, rho), 200_000, 0))
    assert got == pytest.approx(expected, rel=0.02)


def test_participation_ratio_limits_and_scale_invariance():
    rng = np.random.default_rng(1)
    k, reps = 3, 5  # k independent coordinates, each repeated: nu = k exactly
    base = rng.standard_normal((500, k))
    base = np.linalg.qr(base - base.mean(0))[0]  # centred, exactly uncorrelated columns
    x = np.repeat(base, reps, axis=1) * rng.uniform(0.5, 3.0, k * reps) + rng.normal(size=k * reps)
    assert metrics.participation_ratio(x) == pytest.approx(k, rel=1e-10)
    assert metrics.participation_ratio(np.tile(base[:, :1], (1, 7))) == pytest.approx(1.0)


def test_rms_z_quantile_matches_monte_carlo_of_correlated_z():
    # Oracle: simulate the RMS of z ~ N(0, R) directly and compare quantiles.
    p = 30
    idx = np.arange(p)
    corr = np.exp(-np.abs(idx[:, None] - idx[None, :]) / 6.0)  # smooth, strongly correlated grid
    lam = np.linalg.eigvalsh(corr)
    nu = lam.sum() ** 2 / np.sum(lam**2)
    z = _draws(corr, 400_000, 2)
    rms = np.sqrt(np.mean(z**2, axis=1))
    for level in (0.9, 0.99):
        # Satterthwaite matches the first two moments; the tail is good to a few per cent.
        assert metrics.rms_z_quantile(nu, level) == pytest.approx(np.quantile(rms, level), rel=0.05)


def test_rms_z_quantile_exact_for_independent_scores():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((400_000, 4))
    assert metrics.rms_z_quantile(4, 0.95) == pytest.approx(np.quantile(np.sqrt(np.mean(z**2, 1)), 0.95), rel=0.01)


@pytest.mark.parametrize("bad", [np.zeros((1, 3)), np.ones(5), np.array([[1.0, 2.0], [1.0, 3.0]]),
                                 np.array([[np.nan, 1.0], [2.0, 3.0]])])
def test_participation_ratio_refuses_bad_input(bad):
    with pytest.raises(ValueError):
        metrics.participation_ratio(bad)


@pytest.mark.parametrize("nu, level", [(0.0, 0.5), (np.inf, 0.5), (3.0, 0.0), (3.0, 1.0)])
def test_rms_z_quantile_refuses_bad_input(nu, level):
    with pytest.raises(ValueError):
        metrics.rms_z_quantile(nu, level)


def test_extrapolate_log_over_l_recovers_exact_model():
    depths = (100, 300, 1000)
    r = [3.0 + (2.5 * np.log(L) - 9.0) / L for L in depths]
    r_inf, a, b = metrics.extrapolate_log_over_l(depths, r)
    assert r_inf == pytest.approx(3.0, rel=1e-12)
    assert a == pytest.approx(2.5, rel=1e-9) and b == pytest.approx(-9.0, rel=1e-9)


def test_extrapolation_weights_bound_the_neglected_term():
    depths = np.array([100.0, 300.0, 1000.0])
    w = metrics.extrapolation_weights(depths)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert w @ (np.log(depths) / depths) == pytest.approx(0.0, abs=1e-12)
    assert w @ (1 / depths) == pytest.approx(0.0, abs=1e-12)
    # a next-order term c log^2 L / L^2 moves the limit by exactly c w @ e, which |w| @ |e| bounds
    e = (np.log(depths) / depths) ** 2
    r = 4.0 + (np.log(depths) - 2.0) / depths + 5.0 * e
    r_inf, _, _ = metrics.extrapolate_log_over_l(depths, r)
    assert abs(r_inf - 4.0) == pytest.approx(abs(5.0 * w @ e), rel=1e-6)
    assert abs(r_inf - 4.0) <= 5.0 * np.abs(w) @ e


@pytest.mark.parametrize("depths", [(1, 2), (1, 1, 2), (0, 1, 2), (1, 2, np.inf)])
def test_extrapolation_refuses_bad_depths(depths):
    with pytest.raises(ValueError):
        metrics.extrapolation_weights(depths)


def test_extrapolate_log_over_l_refuses_bad_values():
    with pytest.raises(ValueError):
        metrics.extrapolate_log_over_l((1, 2, 3), (1.0, np.nan, 2.0))
