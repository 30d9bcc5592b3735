import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ntkbook import metrics


def test_exact_power_law_is_recovered():
    x = np.geomspace(1, 1000, 7)
    fit = metrics.fit_power_law(x, 3.5 * x**-0.75)
    assert fit.exponent == pytest.approx(-0.75, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.5, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0) and fit.contains(-0.75)


def test_interval_has_nominal_coverage():
    # 600 synthetic power laws with log-normal noise: the 95 % interval must cover
    # the true exponent in 95 % of them. Binomial sd at n=600 is 0.9 %; accept 91.5-98.5 %
    # (beyond 3.5 sd), which an interval using the wrong quantile (z instead of t with
    # 6 points: coverage ~89 %) would fail.
    rng = np.random.default_rng(0)
    x = np.geomspace(10, 1e4, 6)
    hits = 0
    for _ in range(600):
        y = 2.0 * x**-0.5 * np.exp(0.3 * rng.standard_normal(x.size))
        hits += metrics.fit_power_law(x, y).contains(-0.5)
    assert 0.915 <= hits / 600 <= 0.985, hits / 600


def test_interval_width_matches_scipy_t_quantile():
    rng = np.random.default_rng(1)
    x = np.geomspace(1, 100, 10)
    y = x**1.3 * np.exp(0.1 * rng.standard_normal(10))
    fit = metrics.fit_power_law(x, y, confidence=0.9)
    res = stats.linregress(np.log(x), np.log(y))
    assert fit.ci_high - fit.ci_low == pytest.approx(2 * stats.t.ppf(0.95, 8) * res.stderr)


def test_tree_norms():
    a = {"w": jnp.array([3.0, 0.0]), "b": (jnp.array([[4.0]]),)}
    b = {"w": jnp.array([0.0, 0.0]), "b": (jnp.array([[0.0]]),)}
    assert float(metrics.tree_norm(a)) == pytest.approx(5.0)
    assert float(metrics.tree_distance(a, b)) == pytest.approx(5.0)
    doubled = jax.tree_util.tree_map(lambda t: 2 * t, a)
    assert float(metrics.relative_change(doubled, a)) == pytest.approx(1.0)
    assert float(metrics.relative_frobenius_error(2 * jnp.eye(3), jnp.eye(3))) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "x, y, match",
    [
        ([1, 2], [1, 2], "at least 3"),
        ([1, 2, 3], [1, 2], "same length"),
        ([1, -2, 3], [1, 2, 3], "x must be > 0"),
        ([2, 2, 2], [1, 2, 3], "distinct"),
    ],
)
def test_bad_inputs_raise(x, y, match):
    with pytest.raises(ValueError, match=match):
        metrics.fit_power_law(x, y)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.relative_frobenius_error(jnp.ones(2), jnp.ones(3))


def test_kernel_target_alignment():
    rng = np.random.default_rng(2)
    y = rng.choice([-1.0, 1.0], 20)
    assert float(metrics.kernel_target_alignment(3.0 * np.outer(y, y), y)) == pytest.approx(1.0)
    onehot = np.eye(4)[rng.integers(0, 4, 20)]
    assert float(metrics.kernel_target_alignment(onehot @ onehot.T, onehot)) == pytest.approx(1.0)
    # Closed form: for K = I, <I, yy^T> = N and ||yy^T||_F = N, so A = N / (sqrt(N) N) = 1/sqrt(N).
    assert float(metrics.kernel_target_alignment(np.eye(20), y)) == pytest.approx(1 / np.sqrt(20))
    # Centring removes a constant offset that uncentred alignment rewards.
    offset = np.ones((20, 20)) + 0.01 * np.outer(y, y)
    assert float(metrics.kernel_target_alignment(offset, y, centered=True)) > 0.99
    with pytest.raises(ValueError, match="square"):
        metrics.kernel_target_alignment(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match="targets"):
        metrics.kernel_target_alignment(np.eye(3), np.ones(4))


def test_correction_slope_allowance_two_points_closed_form():
    from ntkbook import metrics
    # Two distinct widths: the fitted slope is the difference quotient of log(1 + c x^-1/2).
    x = [32] * 5 + [1000] * 2
    expected = max(abs((np.log1p(c / np.sqrt(1000)) - np.log1p(c / np.sqrt(32))) / np.log(1000 / 32)) for c in (2, -2))
    assert metrics.correction_slope_allowance(x) == pytest.approx(expected, rel=1e-12)


def test_correction_slope_allowance_is_a_real_fit_shift():
    from ntkbook import metrics
    # Pure power law times (1 - 2 x^-1/2): fit_power_law sees exactly the allowance.
    x = np.repeat([32.0, 100.0, 316.0, 1000.0], [4, 3, 2, 1])
    y = 3.0 * x**-0.5 * (1 - 2 * x**-0.5)
    fit = metrics.fit_power_law(x, y)
    assert abs(fit.exponent + 0.5) == pytest.approx(metrics.correction_slope_allowance(x), rel=1e-9)
    # and the allowance shrinks when the smallest width grows
    assert metrics.correction_slope_allowance([316, 1000, 3162]) < metrics.correction_slope_allowance([32, 100, 316])


def test_correction_slope_allowance_rejects_bad_inputs():
    from ntkbook import metrics
    with pytest.raises(ValueError, match="distinct"):
        metrics.correction_slope_allowance([10, 10])
    with pytest.raises(ValueError, match="positive"):
        metrics.correction_slope_allowance([10, 100], coefficient=0)
    with pytest.raises(ValueError, match="non-positive"):
        metrics.correction_slope_allowance([4, 100], coefficient=2)


def test_argument_types_the_book_passes_are_accepted():
    # numpy float32 / int64 scalars, 0-d jax arrays, python lists and jax arrays go through the _checks
    x, y = [32, 100, 316, 1000], jnp.asarray([1.0, 0.56, 0.31, 0.18], jnp.float32)
    assert metrics.fit_power_law(x, y, confidence=np.float32(0.9)).exponent < 0
    assert metrics.correction_slope_allowance(np.asarray(x), coefficient=np.float32(0.5), power=np.int64(1)) > 0
    assert metrics.settling_step(jnp.arange(4), [1.0, 2.0, 2.0, 2.0], np.float32(0.05)) == 1
    assert metrics.first_reaching(np.arange(4), np.array([0.0, 0.5, 1.0, 1.0], np.float32), jnp.asarray(1.0)) == 2
    assert metrics.rms_z_quantile(np.int64(4), np.float32(0.95)) > 1
    assert metrics.simplex_etf(np.int64(3)).shape == (3, 3)
    k = np.eye(3) + 0.1
    assert metrics.eigen_decay_rates(np.ones((4, 3)), jnp.asarray(k, jnp.float32), np.float32(0.5),
                                     min_steps=np.int64(2)) == []
    kta = metrics.kernel_target_alignment(np.eye(3, dtype=int), np.array([1, -1, 1]))  # integer arrays, as before
    assert float(kta) == pytest.approx(3 ** -0.5)


def test_array_checks_are_skipped_under_tracing():
    k, y = jnp.eye(3) + 0.1, jnp.array([1.0, -1.0, 1.0])
    eager = float(metrics.kernel_target_alignment(k, y, centered=True))
    traced = float(jax.jit(lambda a, b: metrics.kernel_target_alignment(a, b, centered=True))(k, y))
    assert traced == pytest.approx(eager, rel=1e-6)
    both = jax.vmap(metrics.relative_frobenius_error)(jnp.stack([2 * k, 3 * k]), jnp.stack([k, k]))
    np.testing.assert_allclose(both, [1.0, 2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="kernel must be finite"):
        metrics.kernel_target_alignment(k.at[0, 0].set(jnp.nan), y)


def test_paired_z_matches_the_paired_t_statistic():
    # Independent oracle: scipy's paired t-test statistic is the same quantity.
    rng = np.random.default_rng(1)
    for n in (2, 3, 10, 257):
        a = rng.standard_normal(n)
        b = 0.3 * a + rng.standard_normal(n) + 0.2
        assert metrics.paired_z(a, b) == pytest.approx(float(stats.ttest_rel(a, b).statistic), rel=1e-12)
    # Any shape, flattened pair by pair; lists and float32 are accepted.
    a2, b2 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    assert metrics.paired_z(a2, b2) == pytest.approx(float(stats.ttest_rel(a2.ravel(), b2.ravel()).statistic), rel=1e-12)
    assert metrics.paired_z([1.0, 2.0, 4.0], [0.0, 0.5, 1.0]) == pytest.approx(
        float(stats.ttest_rel([1.0, 2.0, 4.0], [0.0, 0.5, 1.0]).statistic), rel=1e-12)
    assert isinstance(metrics.paired_z(np.float32(a), np.float32(b)), float)
    # Antisymmetric, and invariant to a shift common to both arrays.
    a, b = rng.standard_normal(20), rng.standard_normal(20)
    assert metrics.paired_z(b, a) == pytest.approx(-metrics.paired_z(a, b))
    assert metrics.paired_z(a + 7.0, b + 7.0) == pytest.approx(metrics.paired_z(a, b), rel=1e-9)


@pytest.mark.parametrize("a, b, match", [
    (np.ones(3), np.ones(4), "same shape"),
    (np.ones((2, 3)), np.ones(6), "same shape"),
    (np.ones(1), np.zeros(1), "at least 2 pairs"),
    (np.array([]), np.array([]), "at least 2 pairs"),
    (np.array([1.0, np.nan, 2.0]), np.zeros(3), "a must be finite"),
    (np.zeros(3), np.array([1.0, np.inf, 2.0]), "b must be finite"),
    (np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]), "zero spread"),
])
def test_paired_z_refuses_bad_inputs(a, b, match):
    with pytest.raises(ValueError, match=match):
        metrics.paired_z(a, b)
