"""Chapters 9-10 (issue 16): the new statistics and records, against independent oracles.

Oracles:
- ``augment.match_norms``: the definition (norm of the reference, direction of the image);
- ``scaling.paired_exponent_gap``: errors built as exact power laws times a noise factor
  shared by both models (the paired slope must be exact whatever the noise), and a
  least-squares slope and t-interval computed with ``numpy.linalg.lstsq`` by hand;
- ``PairedGap.equivalent``: Schuirmann's two one-sided tests written out with ``scipy.stats.t``;
- ``scaling.slope_change``: piecewise power laws with known slopes on each half;
- ``semisup`` test-set traces: at step 0 every EMA copy is the model (equal traces), and
  the recorded trace equals ``trace.exact_diagonal`` of the model on the same images.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ntkbook import augment, models, scaling, semisup, trace


# ------------------------------------------------------------------- match_norms
def test_match_norms_takes_reference_norm_and_keeps_direction():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(5, 64)), jnp.float32)
    r = jnp.asarray(rng.normal(size=(5, 64)) * 3, jnp.float32)
    out = augment.match_norms(x, r)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(r, axis=1), rtol=1e-5)
    cos = np.sum(np.asarray(out) * np.asarray(x), 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(cos, 1.0, rtol=1e-5)
    assert out.dtype == x.dtype and out.shape == x.shape
    # image shapes (N, 8, 8) too, and zero images with zero references stay zero
    x3 = jnp.zeros((2, 8, 8))
    np.testing.assert_array_equal(augment.match_norms(x3, x3), 0.0)


def test_match_norms_rejects_bad_inputs():
    with pytest.raises(ValueError):
        augment.match_norms(jnp.ones((3, 4)), jnp.ones((3, 5)))
    with pytest.raises(ValueError):
        augment.match_norms(jnp.zeros((1, 4)), jnp.ones((1, 4)))
    with pytest.raises(ValueError):
        augment.match_norms(jnp.full((1, 4), jnp.nan), jnp.ones((1, 4)))


# -------------------------------------------------------------- paired exponent gap
NS = (25, 50, 100, 200, 400)


def test_paired_gap_is_exact_when_the_noise_is_shared():
    rng = np.random.default_rng(1)
    shared = np.exp(rng.normal(0, 0.3, (len(NS), 4)))  # the draw of the data, common to both models
    n = np.asarray(NS, float)[:, None]
    a, b = 2.0 * n**-0.35 * shared, 1.5 * n**-0.2 * shared
    g = scaling.paired_exponent_gap(NS, a, b)
    assert g.difference == pytest.approx(0.15, abs=1e-12)
    assert g.se < 1e-10 and g.significant
    # the independent-fit gap sees the same difference but a wide interval
    from ntkbook import metrics

    ind = scaling.exponent_gap(metrics.fit_power_law(np.repeat(NS, 4), a.ravel()),
                               metrics.fit_power_law(np.repeat(NS, 4), b.ravel()))
    assert ind.difference == pytest.approx(0.15, abs=1e-9) and ind.combined_halfwidth > 0.05


def test_paired_gap_matches_a_least_squares_fit_by_hand():
    rng = np.random.default_rng(2)
    a = np.exp(rng.normal(-1, 0.2, (len(NS), 3)))
    b = np.exp(rng.normal(-1, 0.2, (len(NS), 3)))
    g = scaling.paired_exponent_gap(NS, a, b, confidence=0.9)
    x = np.repeat(np.log(NS), 3)
    y = np.log(b / a).ravel()
    design = np.stack([np.ones_like(x), x], 1)
    coef, res, *_ = np.linalg.lstsq(design, y, rcond=None)
    sigma2 = res[0] / (x.size - 2)
    se = np.sqrt(sigma2 / np.sum((x - x.mean()) ** 2))
    assert g.difference == pytest.approx(coef[1], rel=1e-10)
    assert g.se == pytest.approx(se, rel=1e-10) and g.dof == x.size - 2
    assert g.halfwidth == pytest.approx(stats.t.ppf(0.95, x.size - 2) * se, rel=1e-10)


@pytest.mark.parametrize("diff,se,margin", [(0.01, 0.01, 0.078), (0.05, 0.02, 0.078), (-0.03, 0.03, 0.078)])
def test_equivalent_is_schuirmann_tost(diff, se, margin):
    g = scaling.PairedGap(diff, se, 0.0, 10)
    lower = (diff + margin) / se  # H0: diff <= -margin
    upper = (margin - diff) / se  # H0: diff >= +margin
    t = stats.t.ppf(0.95, 10)
    assert g.equivalent(margin) == (lower > t and upper > t)


def test_paired_gap_rejects_bad_inputs():
    ok = np.ones((len(NS), 2))
    with pytest.raises(ValueError):
        scaling.paired_exponent_gap(NS, ok, np.ones((len(NS), 3)))
    with pytest.raises(ValueError):
        scaling.paired_exponent_gap(NS, ok, 0 * ok)
    with pytest.raises(ValueError):
        scaling.paired_exponent_gap((5,), np.ones((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError):
        scaling.PairedGap(0.0, 1.0, 1.0, 5).equivalent(-1.0)


# ------------------------------------------------------------------- slope change
def test_slope_change_recovers_the_slopes_of_each_half():
    t = np.geomspace(1, 1000, 16)
    knee = np.median(np.log(t))
    logy = np.where(np.log(t) <= knee, -0.6 * np.log(t), -0.6 * knee - 0.2 * (np.log(t) - knee))
    sc = scaling.slope_change(t, np.exp(logy))
    assert sc.early.exponent == pytest.approx(-0.6, abs=1e-10)
    assert sc.late.exponent == pytest.approx(-0.2, abs=1e-10)
    assert sc.difference == pytest.approx(0.4, abs=1e-10)
    # a constant power law: no change, and the whole-range slope is the exponent
    sc = scaling.slope_change(t, 3 * t**-0.3)
    assert sc.difference == pytest.approx(0.0, abs=1e-10) and sc.whole.exponent == pytest.approx(-0.3)


def test_slope_change_order_and_bad_inputs():
    t = np.geomspace(1, 100, 8)
    y = t**-0.5 * np.exp(np.random.default_rng(3).normal(0, 0.05, 8))
    perm = np.random.default_rng(4).permutation(8)
    a, b = scaling.slope_change(t, y), scaling.slope_change(t[perm], y[perm])
    assert a.difference == pytest.approx(b.difference) and a.se == pytest.approx(b.se)
    with pytest.raises(ValueError):
        scaling.slope_change(t[:5], y[:5])
    with pytest.raises(ValueError):
        scaling.slope_change(t, -y)


# ----------------------------------------------------------- EMA test-set traces
def test_test_set_traces_of_model_and_ema_copies():
    split = semisup.semisup_split(3, 4, jax.random.PRNGKey(5))
    net = models.mlp((16,), 10, parameterization="standard")
    params = models.init_params(net, jax.random.PRNGKey(1), (-1, 64))
    res = semisup.train_fixmatch(net.apply_fn, params, split, 6, key=jax.random.PRNGKey(2), taus=(0.5, 0.9),
                                 threshold=0.1, mu=2, batch_size=10, n_probe=20, record_steps=[0, 6],
                                 progress=False)
    h = res.history
    assert h["ema_trace_test"].shape == (2, 2) and h["trace_test"].shape == (2,)
    # at step 0 the copies are the model
    np.testing.assert_allclose(h["ema_trace_test"][0], h["trace_test"][0], rtol=1e-6)
    # the recorded images: n_probe = 20 of the 40 test images, drawn with the documented probe key
    pk = jax.random.fold_in(jax.random.PRNGKey(2), 2**31 - 1)
    idx = np.sort(np.asarray(jax.random.choice(jax.random.fold_in(pk, 1), 40, (20,), replace=False)))
    x_te = jnp.asarray(split.x_test)[idx]
    for model, rec in [(res.params, h["trace_test"][-1])] + [(e, h["ema_trace_test"][-1, j])
                                                            for j, e in enumerate(res.ema)]:
        d = np.asarray(trace.exact_diagonal(net.apply_fn, model, x_te)) / 10
        assert rec == pytest.approx(d.mean(), rel=1e-5)
    assert np.all(h["ema_trace_test_se"][-1] > 0)
