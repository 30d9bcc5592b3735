"""Monte Carlo NTK statistics at initialisation: the network's NTK against neural-tangents
and the telescoping formula of thesis §3.2 eq. (19), Monte Carlo moments against a
hand-derived exact answer, the estimators against distributions with known ratios."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import dispersion as dp
from ntkbook import kernels
from ntkbook import meanfield as mf

KEY = jax.random.PRNGKey(0)


def _gamma(key, k, shape):
    """Gamma(k) draws for integer k as sums of k exponentials (much faster than jax.random.gamma)."""
    return np.asarray(jax.random.exponential(key, (int(k),) + shape).sum(0), dtype=np.float64)


def _as64(params):
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)


@pytest.mark.parametrize("widths, activation, b_var", [
    ((5, 7, 7, 7, 6), "relu", 0.3),
    ((4, 6), "tanh", 0.1),
    ((3,), "relu", 0.0),
    ((6, 3, 9, 9), "tanh", 0.0),
])
def test_ntk_matches_neural_tangents(x64, widths, activation, b_var):
    params = _as64(dp.init_mlp(KEY, widths, W_var=1.7, b_var=b_var))
    x = dp.unit_inputs(widths[0], [0.3] if widths[0] > 1 else []).astype(jnp.float64)
    ours = dp.empirical_ntk_on(params, x, activation)
    batched = lambda p, xs: jax.vmap(lambda xx: dp.mlp_apply(p, xx, activation))(xs)[:, None]  # noqa: E731
    ref = kernels.empirical_ntk(batched, params, x, implementation="jacobian")[:, :, 0, 0]
    np.testing.assert_allclose(ours, ref, rtol=1e-11)


def test_ntk_diagonal_is_the_telescoping_sum(x64):
    # Thesis §3.2 eq. (19): Theta(x, x) = sum_l |delta^l|^2 (|x^{l-1}|^2 + 1), by explicit NumPy backprop.
    widths = (6, 8, 8, 5)
    params = _as64(dp.init_mlp(KEY, widths, W_var=2.2, b_var=0.4))
    x = np.linspace(-1, 1, 6)
    mats = [(np.asarray(w), np.asarray(b)) for blk in params for w, b in zip(blk["W"], blk["b"])]
    acts, pres = [x], []
    for i, (w, b) in enumerate(mats):
        h = w @ acts[-1] + b
        pres.append(h)
        acts.append(np.maximum(h, 0) if i < len(mats) - 1 else h)
    delta = np.ones(1)
    total = 0.0
    for i in reversed(range(len(mats))):
        total += delta @ delta * (acts[i] @ acts[i] + 1)
        if i:
            delta = (mats[i][0].T @ delta) * (pres[i - 1] > 0)
    got = dp.empirical_ntk_on(params, jnp.asarray(x)[None])[0, 0]
    np.testing.assert_allclose(got, total, rtol=1e-12)
    out, hidden = dp.mlp_apply(params, jnp.asarray(x), hidden=True)
    assert len(hidden) == len(widths) - 1 and [h.shape[0] for h in hidden] == list(widths[1:])
    np.testing.assert_allclose(out, acts[-1][0], rtol=1e-12)


def test_initialisation_variances():
    params = dp.init_mlp(KEY, (400, 300, 300), W_var=2.5, b_var=0.7)
    w = np.asarray(params[1]["W"])
    b = np.asarray(params[0]["b"])
    # 90000 weights: the sample variance has relative sd sqrt(2/90000) = 0.5 %; 3 % is 6 sd.
    assert w.var() * 300 == pytest.approx(2.5, rel=0.03)
    assert b.var() == pytest.approx(0.7, rel=0.25)  # 300 biases: relative sd 8 %; 25 % is 3 sd


def test_monte_carlo_moments_match_the_exact_one_hidden_layer_answer():
    # Exact moments derived by hand (tests/test_meanfield.py::_two_layer_moments).
    from test_meanfield import _two_layer_moments
    n0, n1, w_var = 3, 4, 2.4
    mean, second, _ = _two_layer_moments(n0, n1, w_var)
    s = dp.ntk_samples(jax.random.PRNGKey(1), 40000, (n0, n1), W_var=w_var)
    theta = s.theta[:, 0, 0]
    se_mean = theta.std() / np.sqrt(theta.size)
    assert abs(theta.mean() - mean) < 4 * se_mean  # 4 standard errors: false alarm rate 6e-5
    est = dp.dispersion(theta, key=jax.random.PRNGKey(2), n_boot=300)
    assert abs(est.value - second / mean**2) < 4 * est.stderr
    # ... and Thm 3.2 says the same (it is exact at this depth).
    assert mf.ntk_moments([n0, n1], w_var).dispersion == pytest.approx(second / mean**2, rel=1e-12)


def test_samples_do_not_depend_on_the_batch_size():
    a = dp.ntk_samples(jax.random.PRNGKey(3), 10, (4, 5, 5), W_var=2.0, batch_size=3)
    b = dp.ntk_samples(jax.random.PRNGKey(3), 10, (4, 5, 5), W_var=2.0, batch_size=10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    assert a.theta.shape == (10, 1, 1) and a.output.shape == (10, 1) and a.first_step is None


def test_first_step_is_the_derivative_of_a_real_gradient_step(x64):
    widths, w_var, y, eta = (5, 6, 6), 2.5, 0.3, 1e-6
    x = dp.unit_inputs(5)
    s = dp.ntk_samples(jax.random.PRNGKey(4), 2, widths, W_var=w_var, inputs=x, first_step=True, target=y)
    # Redo sample 0 by hand: one GD step on (x, y) with loss (f - y)^2 / 2, in float64.
    params = _as64(dp.init_mlp(jax.random.split(jax.random.PRNGKey(4), 2)[0], widths, W_var=w_var))
    x64_ = x[0].astype(jnp.float64)
    f = dp.mlp_apply(params, x64_)
    g = jax.grad(dp.mlp_apply)(params, x64_)
    stepped = jax.tree_util.tree_map(lambda p, gi: p - eta * (f - y) * gi, params, g)
    ntk = jax.jit(lambda p: dp.empirical_ntk_on(p, x64_[None])[0, 0])
    change = (ntk(stepped) - ntk(params)) / eta
    # float32 sample vs float64 finite difference (O(eta) = 1e-6 relative): agree to float32 rounding.
    np.testing.assert_allclose(s.first_step[0], change, rtol=2e-3)


# --------------------------------------------------------------------- estimators
def test_jackknife_dispersion_is_unbiased_where_the_plugin_is_not():
    # Gamma(k) has E[t^2] / E[t]^2 = 1 + 1/k. With N = 50 draws the plug-in ratio is low by
    # ~1 % (O(1/N)); the jackknife leaves O(1/N^2), below the resolution of 20000 replicates.
    k, n, reps = 2.0, 50, 20000
    t = _gamma(jax.random.PRNGKey(5), k, (reps, n))
    jk, plugin = dp._jackknife_dispersion(t)
    truth = 1 + 1 / k
    se = jk.std() / np.sqrt(reps)
    assert abs(jk.mean() - truth) < 4 * se
    assert abs(plugin.mean() - truth) > 10 * plugin.std() / np.sqrt(reps)  # the test has power
    # The public function agrees with the vectorised one.
    assert dp.dispersion(t[0], key=KEY, n_boot=50).value == pytest.approx(jk[0])


def test_jackknife_ratio_of_means_is_unbiased():
    # B ~ Gamma(2), A = B^2: E[A] / E[B] = k (k + 1) / k = 3 exactly.
    k, n, reps = 2.0, 20, 20000
    b = _gamma(jax.random.PRNGKey(6), k, (reps, n))
    jk, plugin = dp._jackknife_ratio(b**2, b)
    assert abs(jk.mean() - 3.0) < 4 * jk.std() / np.sqrt(reps)
    assert abs(plugin.mean() - 3.0) > 10 * plugin.std() / np.sqrt(reps)


def test_bootstrap_standard_error_is_calibrated():
    # For a light-tailed case the bootstrap SE should match the spread of the estimator over
    # independent samples: 200 replicates give that spread to +-5 %; allow 20 %.
    reps, n = 200, 400
    t = _gamma(jax.random.PRNGKey(7), 4, (reps, n))
    values = [dp.dispersion(row, key=jax.random.PRNGKey(i), n_boot=200) for i, row in enumerate(t[:40])]
    spread = dp._jackknife_dispersion(t)[0].std(ddof=1)
    mean_se = np.mean([v.stderr for v in values])
    assert mean_se == pytest.approx(spread, rel=0.2)


# --------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(widths=()), ValueError, "widths"),
    (dict(widths=(4, 0)), ValueError, "widths"),
    (dict(W_var=-1.0), ValueError, "W_var"),
    (dict(W_var=0.0), ValueError, "W_var"),
    (dict(b_var=-0.2), ValueError, "b_var"),
    (dict(activation="gelu"), ValueError, "activation"),
    (dict(n_samples=1), ValueError, "n_samples"),
    (dict(inputs=np.ones((2, 5))), ValueError, "inputs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(key=0), TypeError, "key"),
])
def test_bad_sampler_inputs(kwargs, exc, match):
    args = dict(key=KEY, n_samples=4, widths=(4, 5), W_var=2.0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        dp.ntk_samples(args.pop("key"), args.pop("n_samples"), args.pop("widths"), **args)


def test_bad_estimator_inputs():
    with pytest.raises(ValueError, match="samples"):
        dp.dispersion(np.ones(2), key=KEY)
    with pytest.raises(ValueError, match="samples"):
        dp.dispersion(np.ones((3, 3)), key=KEY)
    with pytest.raises(ValueError, match="non-finite"):
        dp.dispersion(np.array([1.0, np.nan, 2.0]), key=KEY)
    with pytest.raises(ValueError, match="pair"):
        dp.ratio_of_means(np.ones(5), np.ones(4), key=KEY)
    with pytest.raises(ValueError, match="n_boot"):
        dp.dispersion(np.ones(5), key=KEY, n_boot=1)
    with pytest.raises(TypeError, match="key"):
        dp.dispersion(np.ones(5), key=1)
    with pytest.raises(ValueError, match="cosines"):
        dp.unit_inputs(4, [1.5])


# ------------------------------------------- NTK parts and the dispersion grid (chapter 05)
def test_part_samples_add_up_to_the_ntk_and_are_exact_at_depth_one():
    key = jax.random.PRNGKey(3)
    x = dp.unit_inputs(6, [0.3])
    parts = dp.ntk_part_samples(key, 5, (6, 7, 7), W_var=1.7, b_var=0.2, inputs=x)
    full = dp.ntk_samples(key, 5, (6, 7, 7), W_var=1.7, b_var=0.2, inputs=x)
    np.testing.assert_allclose(parts.weight + parts.bias, full.theta, rtol=1e-5)
    # Depth 1, f = W x + b: Theta_W(x, x') = <x, x'>, Theta_b = 1, whatever the draw.
    one = dp.ntk_part_samples(key, 4, (6,), W_var=0.9, inputs=x)
    np.testing.assert_allclose(one.weight, np.broadcast_to(np.asarray(x @ x.T), (4, 2, 2)), rtol=1e-6)
    np.testing.assert_allclose(one.bias, 1.0, rtol=1e-6)


def test_part_sample_means_match_thm_3_2_eqs_11_12():
    # Independent oracle: the closed-form means of thesis §3.2 eqs. (11), (12); 4-sigma bound.
    widths, w_var = (5, 8, 8, 8), 2.6
    s = dp.ntk_part_samples(jax.random.PRNGKey(8), 4000, widths, W_var=w_var)
    mom = mf.ntk_moments(list(widths), w_var)
    for sample, mean in ((s.weight[:, 0, 0], mom.mean_W), (s.bias[:, 0, 0], mom.mean_b)):
        assert abs(sample.mean() - mean) < 4 * sample.std(ddof=1) / np.sqrt(sample.size), (sample.mean(), mean)


def test_dispersion_grid_matches_thm_3_2_and_its_cells():
    key = jax.random.PRNGKey(5)
    g = dp.dispersion_grid(key, 1500, 10, (1, 3), (1.0, 3.0), n_boot=100)
    assert g.value.shape == g.stderr.shape == (2, 2)
    np.testing.assert_allclose(g.value[0], 1.0, atol=1e-5)  # depth 1: Theta = |x|^2 + 1, deterministic
    theory = mf.ntk_dispersion(3, 10, 1.0), mf.ntk_dispersion(3, 10, 3.0)
    assert np.all(np.abs(g.value[1] - theory) < 4 * g.stderr[1]), (g.value[1], theory)
    # A cell is the documented single call.
    cell = jax.random.fold_in(jax.random.fold_in(key, 3), 1)
    s = dp.ntk_samples(cell, 1500, (10, 10, 10), W_var=3.0)
    est = dp.dispersion(s.theta[:, 0, 0], key=jax.random.fold_in(cell, 1), n_boot=100)
    assert g.value[1, 1] == pytest.approx(est.value) and g.stderr[1, 1] == pytest.approx(est.stderr)
    spread = dp.log_interdecile(s.theta[:, 0, 0], key=jax.random.fold_in(cell, 2), n_boot=100)
    assert g.spread[1, 1] == pytest.approx(spread.value) and g.spread_se[1, 1] == pytest.approx(spread.stderr)
    np.testing.assert_allclose(g.spread[0], 0.0, atol=1e-6)  # deterministic at depth 1: every decile equal


def test_log_interdecile_against_the_log_normal_closed_form():
    # Oracle: for Theta = c exp(s Z), Z standard normal, log(Q_0.9 / Q_0.1) = 2 z_0.9 s whatever c.
    # Asymptotic quantile theory: on the log scale each decile has variance 0.1 * 0.9 s^2 / (n phi^2) and
    # their covariance is 0.1 * 0.1 s^2 / (n phi^2) (p1 (1 - p2) / (n f1 f2), phi = phi(z_0.9)), so the
    # difference has sd sqrt(2 * 0.1 * (1 - 2 * 0.1) / n) * s / phi; the bootstrap should match it, and so
    # should the spread of the estimate over independent samples.
    from scipy import stats

    z9, s, n = stats.norm.ppf(0.9), 0.8, 1000
    rng = np.random.default_rng(3)
    draws = 7.0 * np.exp(s * rng.standard_normal((100, n)))
    ests = [dp.log_interdecile(d, key=jax.random.PRNGKey(i), n_boot=200) for i, d in enumerate(draws)]
    values, ses = np.array([e.value for e in ests]), np.array([e.stderr for e in ests])
    sd_theory = np.sqrt(2 * 0.1 * (1 - 2 * 0.1) / n) * s / stats.norm.pdf(z9)
    assert abs(values.mean() - 2 * z9 * s) < 4 * sd_theory / np.sqrt(values.size), (values.mean(), 2 * z9 * s)
    # 100 replicates estimate an sd to about 7 %: 3 of those either side
    assert 0.79 < values.std(ddof=1) / sd_theory < 1.21, (values.std(ddof=1), sd_theory)
    assert 0.79 < ses.mean() / sd_theory < 1.21, (ses.mean(), sd_theory)
    assert dp.log_interdecile(draws[0] * 1e-3, key=KEY, n_boot=200).value == pytest.approx(values[0], abs=1e-12)


def test_log_interdecile_is_not_moved_by_one_draw_where_the_dispersion_is():
    # The reason it exists: one huge draw among 600 moves the dispersion and its error bar, not the deciles.
    rng = np.random.default_rng(4)
    t = np.exp(0.5 * rng.standard_normal(600))
    t_out = t.copy()
    t_out[0] = 200.0 * t.max()
    d, d_out = (dp.dispersion(x, key=KEY, n_boot=200) for x in (t, t_out))
    q, q_out = (dp.log_interdecile(x, key=KEY, n_boot=200) for x in (t, t_out))
    assert d_out.value > 5 * d.value and d_out.stderr > 20 * d.stderr
    assert abs(q_out.value - q.value) < q.stderr and q_out.stderr < 1.5 * q.stderr


@pytest.mark.parametrize("samples, match", [
    (np.r_[np.zeros(30), np.ones(70)], "lower decile"),            # lower decile 0
    (np.r_[-np.ones(30), np.ones(70)], "lower decile"),            # negative
    (np.r_[np.zeros(19), np.arange(1.0, 182.0)], "bootstrap"),    # 9.5 % zeros: positive decile, zero in resamples
    (np.r_[np.nan, np.ones(10)], "non-finite"),
    (np.ones(2), "at least 3"),
])
def test_log_interdecile_refuses_what_it_cannot_measure(samples, match):
    with pytest.raises(ValueError, match=match):
        dp.log_interdecile(samples, key=KEY, n_boot=200)


@pytest.mark.parametrize("kwargs, match", [
    (dict(depths=()), "depths"), (dict(depths=(0,)), "depths"), (dict(W_vars=()), "W_vars"),
    (dict(W_vars=(-1.0,)), "W_var"), (dict(width=0), "width"), (dict(n_samples=2), "n_samples"),
    (dict(activation="gelu"), "activation"), (dict(b_var=-0.1), "b_var"),
])
def test_dispersion_grid_rejects_bad_arguments(kwargs, match):
    args = dict(n_samples=10, width=4, depths=(2,), W_vars=(1.0,))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        dp.dispersion_grid(jax.random.PRNGKey(0), **args)


def test_part_samples_reject_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        dp.ntk_part_samples(jax.random.PRNGKey(0), 1, (3, 3), W_var=1.0)
    with pytest.raises(ValueError, match="inputs"):
        dp.ntk_part_samples(jax.random.PRNGKey(0), 3, (3, 3), W_var=1.0, inputs=np.ones((2, 4)))
    with pytest.raises(TypeError, match="key"):
        dp.ntk_part_samples(0, 3, (3, 3), W_var=1.0)
