"""metrics.eigen_decay_rates and metrics.median_upper_bound against independent oracles."""

import numpy as np
import pytest
from scipy import stats

from ntkbook import metrics


def _gd_residuals(kernel, r0, lr, steps, n):
    """Residuals of gradient descent on a linear model, by plain iteration r <- (I - lr K / n) r."""
    out, r = [r0], r0
    for _ in range(steps):
        r = r - lr * kernel @ r / n
        out.append(r)
    return np.array(out)


def test_rates_of_exact_linear_dynamics_are_recovered():
    # Oracle: iterate GD on a fixed kernel (no eigendecomposition); the fitted
    # log-decay of every resolvable component is then log(1 - lr lambda / n) exactly.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    lam = np.array([6.0, 2.0, 0.7, 0.2, 0.05, 0.001])
    k = q @ np.diag(lam) @ q.T
    r0 = q @ np.array([1.0, 0.8, -0.9, 0.6, 0.5, 0.4])
    res = _gd_residuals(k, r0, lr=0.9, steps=300, n=6)
    rates = metrics.eigen_decay_rates(res, k, 0.9, min_share=0.05)
    # Index 0 (factor 0.1) spends its 3 e-folds within 2 steps: too few to fit, skipped;
    # index 5 decays by 4.5 % over 300 steps, under one e-fold: unresolved, skipped.
    assert [r.index for r in rates] == [1, 2, 3, 4]
    for r in rates:
        assert r.fitted == pytest.approx(np.log(1 - 0.9 * lam[r.index] / 6), rel=1e-8)
        assert r.relative_error < 1e-8


def test_small_components_are_skipped_and_leakage_biases_long_windows():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    lam = np.array([4.0, 1.0, 0.3, 0.1])
    k = q @ np.diag(lam) @ q.T
    r0 = q @ np.array([1.0, 1.0, 0.01, 1.0])
    res = _gd_residuals(k, r0, lr=1.0, steps=200, n=4)
    assert 2 not in [r.index for r in metrics.eigen_decay_rates(res, k, 1.0, min_share=0.1)]
    assert 2 in [r.index for r in metrics.eigen_decay_rates(res, k, 1.0, min_share=0.0)]


def test_float32_rounded_kernel_is_accepted():
    # A float32 kernel is symmetric only to rounding; entries near zero carry the
    # rounding of the large ones. It must be accepted (and symmetrised), not refused.
    rng = np.random.default_rng(4)
    a = rng.standard_normal((8, 3))
    k = a @ a.T + 1e-3 * np.eye(8)
    k[0, 1] = 0.0
    k[1, 0] = 1e-7 * np.abs(k).max()
    res = _gd_residuals(0.5 * (k + k.T), rng.standard_normal(8), lr=0.5, steps=50, n=8)
    metrics.eigen_decay_rates(res, k.astype(np.float32), 0.5)


def test_normalization_scales_the_prediction():
    k = np.diag([2.0, 1.0])
    res = _gd_residuals(k, np.array([1.0, 1.0]), lr=0.1, steps=100, n=4.0)
    rates = metrics.eigen_decay_rates(res, k, 0.1, normalization=4.0)
    assert [r.predicted for r in rates] == pytest.approx([np.log(1 - 0.05), np.log(1 - 0.025)])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(residuals=np.ones(3)), "residuals"),
        (dict(kernel=np.eye(3)), "kernel must have shape"),
        (dict(kernel=np.array([[1.0, 0.5], [0.0, 1.0]])), "symmetric"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(normalization=-1.0), "normalization"),
        (dict(min_share=1.0), "min_share"),
        (dict(efolds=0.0), "efolds"),
        (dict(min_steps=1), "min_steps"),
    ],
)
def test_decay_rates_bad_inputs(kwargs, match):
    args = dict(residuals=np.ones((5, 2)), kernel=np.eye(2), learning_rate=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        metrics.eigen_decay_rates(**args)


def test_median_upper_bound_matches_binomial_order_statistic():
    # n = 10: P(B <= 7) = 0.9453 < 0.95, P(B <= 8) = 0.9893 -> the 9th smallest value.
    v = np.arange(10.0)[::-1]
    assert metrics.median_upper_bound(v, 0.95) == 8.0
    assert stats.binom.cdf(7, 10, 0.5) < 0.95 <= stats.binom.cdf(8, 10, 0.5)


def test_median_upper_bound_has_nominal_coverage():
    # 2000 samples of 15 exponentials (median ln 2): the bound must lie above the
    # median in at least 95 % of them (the sign-test bound is conservative; its exact
    # coverage at n = 15 is P(B <= k - 1) = 0.9824). Binomial sd at 2000 is 0.3 %.
    rng = np.random.default_rng(2)
    hits = np.mean([metrics.median_upper_bound(rng.exponential(size=15)) >= np.log(2) for _ in range(2000)])
    assert 0.97 <= hits <= 0.995, hits


def test_median_upper_bound_bad_inputs():
    with pytest.raises(ValueError, match="non-empty"):
        metrics.median_upper_bound([])
    with pytest.raises(ValueError, match="confidence"):
        metrics.median_upper_bound([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="cannot give"):
        metrics.median_upper_bound([1.0, 2.0, 3.0], confidence=0.95)


def test_within_fit_matches_dummy_variable_least_squares():
    # Oracle: ordinary least squares with one indicator column per group (numpy lstsq),
    # and its classical standard error from the residual variance with n - G - 1 dof.
    rng = np.random.default_rng(3)
    alphas = np.array([1.0, 3.2, 10.0, 32.0])
    g = np.repeat(np.arange(3), alphas.size)
    x = np.tile(alphas, 3)
    y = np.exp(rng.normal(0, 1, 3))[g] * x**-0.9 * np.exp(0.05 * rng.standard_normal(x.size))
    fit = metrics.fit_power_law_within(x, y, g)
    design = np.column_stack([np.log(x)] + [(g == k).astype(float) for k in range(3)])
    coef, res, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    dof = x.size - 4
    cov = res[0] / dof * np.linalg.inv(design.T @ design)
    assert fit.exponent == pytest.approx(coef[0], rel=1e-10)
    assert fit.stderr == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-8)
    assert fit.ci_high - fit.ci_low == pytest.approx(2 * stats.t.ppf(0.975, dof) * np.sqrt(cov[0, 0]), rel=1e-8)


def test_within_fit_ignores_group_levels():
    # Levels differing by 100x between groups: the pooled fit's interval is wide, the within fit exact.
    x = np.tile([1.0, 2.0, 4.0], 2)
    y = np.r_[np.ones(3), 100 * np.ones(3)] * x**-1.0
    g = np.repeat([0, 1], 3)
    fit = metrics.fit_power_law_within(x, y, g)
    assert fit.exponent == pytest.approx(-1.0) and fit.stderr == pytest.approx(0.0, abs=1e-12)


def test_within_fit_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        metrics.fit_power_law_within([1, 2, 3], [1, 2, 3], [0, 0])
    with pytest.raises(ValueError, match="more points than groups"):
        metrics.fit_power_law_within([1, 2], [1, 2], [0, 0])
    with pytest.raises(ValueError, match="distinct values in every group"):
        metrics.fit_power_law_within([1, 2, 3, 3, 3], [1, 2, 3, 1, 2], [0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="x must be > 0"):
        metrics.fit_power_law_within([1, -2, 3], [1, 2, 3], [0, 0, 0])
