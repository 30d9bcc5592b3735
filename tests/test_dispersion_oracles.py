"""ntkbook.dispersion.ratio_of_means (the public function) against known ratios and a hand jackknife.

The existing tests exercise the private vectorised jackknife; these call
:func:`dispersion.ratio_of_means` itself, so the order of its arguments, the
plug-in ratio and the bootstrap standard error are checked where the chapters use them.
Draws come from numpy's generator (independent of the bootstrap's JAX key).
"""

import jax
import numpy as np
import pytest

from ntkbook import dispersion as dp

Z = 4.5  # standard errors per statistical check (two-sided normal p ~ 7e-6)


def _hand_jackknife(a, b):
    n = a.size
    plugin = a.sum() / b.sum()
    loo = np.array([(a.sum() - a[i]) / (b.sum() - b[i]) for i in range(n)])
    return n * plugin - (n - 1) * loo.mean(), plugin


def test_ratio_of_means_is_the_jackknifed_sum_ratio_in_argument_order():
    rng = np.random.default_rng(0)
    b = rng.gamma(3.0, 1.0, 40)
    a = 2.0 * b + rng.normal(0.0, 0.5, 40)  # E[A] / E[B] = 2, far from its inverse 0.5
    est = dp.ratio_of_means(a, b, key=jax.random.PRNGKey(0), n_boot=200)
    value, plugin = _hand_jackknife(a, b)
    assert est.plugin == pytest.approx(plugin, rel=1e-12)
    assert est.value == pytest.approx(value, rel=1e-12)
    assert est.n == 40
    # swapping the arguments gives the jackknifed inverse ratio, not the same number
    inv = dp.ratio_of_means(b, a, key=jax.random.PRNGKey(0), n_boot=200)
    assert inv.plugin == pytest.approx(1.0 / plugin, rel=1e-12)
    assert inv.value == pytest.approx(_hand_jackknife(b, a)[0], rel=1e-12)


@pytest.mark.parametrize("case", ["square", "independent"])
def test_ratio_of_means_recovers_a_known_ratio_with_a_calibrated_error(case):
    # "square": B ~ Gamma(2, 1), A = B^2, E[A] / E[B] = (k (k + 1)) / k = 3.
    # "independent": A ~ N(5, 1), B ~ Exponential(mean 2) independent, ratio 2.5.
    rng = np.random.default_rng(1 if case == "square" else 2)
    n = 4000
    if case == "square":
        b = rng.gamma(2.0, 1.0, n)
        a, truth = b**2, 3.0
    else:
        a, b, truth = rng.normal(5.0, 1.0, n), rng.exponential(2.0, n), 2.5
    est = dp.ratio_of_means(a, b, key=jax.random.PRNGKey(3), n_boot=2000)
    # delta-method standard error of mean(A) / mean(B): sd(A - R B) / (sqrt(n) mean(B))
    r = a.mean() / b.mean()
    delta_se = np.std(a - r * b, ddof=1) / (np.sqrt(n) * b.mean())
    # the bootstrap SE from 2000 resamples has Monte Carlo error ~1/sqrt(2 * 2000) = 1.6 %
    # (more with the heavy Gamma^2 tail); the delta method is exact to O(1/n): 15 % is
    # ~9 Monte Carlo standard deviations.
    assert est.stderr == pytest.approx(delta_se, rel=0.15)
    assert abs(est.value - truth) < Z * delta_se, (est.value, truth, delta_se)
