"""FixMatch, EMA copies and Thm 5.1 against closed forms and independent computations.

Oracles:
- EMA: the closed forms of an exponential moving average of a constant sequence,
  ``e_n = w + tau^n (e_0 - w)``, and of the linear sequence of plain gradient descent
  on a linear loss, ``e_n - w_n = lr g tau (1 - tau^n) / (1 - tau)``;
- FixMatch loss: a numpy re-implementation of [trace] eqs. 5-6 on a linear model;
- threshold 1: pseudo-labels nothing, so training must equal the labelled-only
  baseline (a separate code path: plain cross-entropy through ``train.fit``);
- Thm 5.1: explicit Jacobians from ``jax.jacrev`` for the trace, and parameters built
  so that the theorem's hypothesis (Appendix A, eq. 10) holds exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from ntkbook import models, semisup, train

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def split():
    return semisup.semisup_split(3, 4, jax.random.PRNGKey(5))


def _small_net(hidden=16):
    net = models.mlp((hidden,), 10, parameterization="standard")
    return net, models.init_params(net, jax.random.PRNGKey(1), (-1, 64))


# ---------------------------------------------------------------------------- split
def test_split_is_balanced_disjoint_and_complete(split):
    assert split.x_labelled.shape == (30, 64) and split.x_test.shape == (40, 64)
    assert np.array_equal(np.bincount(split.y_labelled), np.full(10, 3))
    assert np.array_equal(np.bincount(split.y_test), np.full(10, 4))
    rows = [tuple(r) for part in (split.x_labelled, split.x_unlabelled, split.x_test) for r in part]
    assert len(rows) == 1797
    assert 0.0 <= split.x_unlabelled.min() and split.x_unlabelled.max() <= 1.0  # pixels: background 0


# ------------------------------------------------------------------------------ EMA
def test_ema_of_constant_sequence_is_geometric(x64):
    w = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(3.0)}
    e0 = {"a": jnp.array([5.0, 5.0]), "b": jnp.array(-1.0)}
    taus = (0.5, 0.9)
    params = {"model": w, "ema": (e0, e0)}
    n = 7
    opt = semisup.ema_optimizer(optax.sgd(0.0), taus)  # the model stays at w
    final, _ = train.fit(lambda p, b: 0.0 * p["model"]["b"], params, opt, n, progress=False)
    for tau, e in zip(taus, final["ema"]):
        for name in ("a", "b"):
            expected = w[name] + tau**n * (e0[name] - w[name])
            np.testing.assert_allclose(np.asarray(e[name]), np.asarray(expected), rtol=1e-12)


def test_ema_of_gradient_descent_on_linear_loss_matches_closed_form(x64):
    g = jnp.array([0.3, -1.0, 2.0])
    w0 = jnp.array([1.0, 2.0, 3.0])
    lr, n, taus = 0.1, 25, (0.5, 0.9, 0.99)
    opt = semisup.ema_optimizer(optax.sgd(lr), taus)
    final, _ = train.fit(lambda p, b: jnp.dot(g, p["model"]), semisup.with_ema(w0, taus), opt, n, progress=False)
    w_n = w0 - n * lr * g
    np.testing.assert_allclose(np.asarray(final["model"]), np.asarray(w_n), rtol=1e-12)
    for tau, e in zip(taus, final["ema"]):
        lag = lr * g * tau * (1 - tau**n) / (1 - tau)
        np.testing.assert_allclose(np.asarray(e), np.asarray(w_n + lag), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- losses
def test_pseudo_labels_by_hand():
    logits = jnp.log(jnp.array([[0.96, 0.02, 0.02], [0.5, 0.3, 0.2], [0.01, 0.01, 0.98]]))
    labels, mask = semisup.pseudo_labels(logits, 0.95)
    assert labels.tolist() == [0, 0, 2] and mask.tolist() == [True, False, True]
    # threshold 1 masks everything, even where float32 rounds the probability to 1
    _, mask1 = semisup.pseudo_labels(jnp.array([[100.0, 0.0, 0.0]]), 1.0)
    assert not bool(mask1.any())


def test_fixmatch_loss_matches_numpy_and_stops_gradient_through_weak_view():
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    apply_fn = lambda p, x: 3.0 * x @ p  # noqa: E731  a linear model, confident enough to pass some
    xl, xuw, xus = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((6, 5), (8, 5), (8, 5)))
    yl = jnp.asarray(rng.integers(0, 4, 6))
    phi, lam = 0.9, 0.7
    loss = semisup.fixmatch_loss(apply_fn, threshold=phi, unlabelled_weight=lam)

    def np_ce(logits, labels):
        logits = np.asarray(logits, np.float64)
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        return lse - logits[np.arange(len(labels)), labels]

    pw = np.asarray(apply_fn(w, xuw), np.float64)
    prob = np.exp(pw - pw.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    mask = prob.max(1) >= phi
    assert 0 < mask.sum() < 8  # both branches exercised
    yhat = prob.argmax(1)
    expected = np_ce(apply_fn(w, xl), np.asarray(yl)).mean() + lam * np.mean(mask * np_ce(apply_fn(w, xus), yhat))
    assert float(loss(w, (xl, yl, xuw, xus))) == pytest.approx(expected, rel=1e-5)
    # gradient: as if the pseudo-labels and mask were constants (stop_gradient on the weak view)
    def fixed(p):
        l1 = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, xl), yl))
        ce = optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, xus), jnp.asarray(yhat))
        return l1 + lam * jnp.mean(jnp.asarray(mask) * ce)
    np.testing.assert_allclose(np.asarray(jax.grad(loss)(w, (xl, yl, xuw, xus))), np.asarray(jax.grad(fixed)(w)),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- training
def _run(fn, split, **kw):
    net, p0 = _small_net()
    kwargs = dict(key=KEY, taus=(0.9,), batch_size=8, learning_rate=0.1, n_probe=20, progress=False,
                  record_steps=(0, 12))
    kwargs.update(kw)
    return fn(net.apply_fn, p0, split, 12, **kwargs)


def test_threshold_one_equals_labelled_only_baseline(split):
    sup = _run(semisup.train_supervised, split)
    fm = _run(semisup.train_fixmatch, split, threshold=1.0, mu=2)
    for a, b in zip(jax.tree_util.tree_leaves((sup.params, sup.ema)), jax.tree_util.tree_leaves((fm.params, fm.ema))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)  # float32 rounding only
    np.testing.assert_array_equal(sup.history["test_acc"], fm.history["test_acc"])
    # positive control: a threshold of 0.1 pseudo-labels every image (max prob >= 1/10) and changes training
    fm_all = _run(semisup.train_fixmatch, split, threshold=0.1, mu=2)
    assert fm_all.history["pseudo_fraction"][-1] == 1.0
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(sup.params),
                                                               jax.tree_util.tree_leaves(fm_all.params)))
    assert diff > 1e-3


def test_recorded_metrics_have_expected_shapes_and_ranges(split):
    res = _run(semisup.train_fixmatch, split, taus=(0.5, 0.9), threshold=0.1, mu=2)
    h = res.history
    assert list(h.steps) == [0, 12]
    assert h["ema_test_acc"].shape == (2, 2) and h["thm_ratio"].shape == (2, 2)
    # at step 0 every EMA copy equals the model: distance 0 and the same accuracy
    np.testing.assert_array_equal(h["thm_distance"][0], 0.0)
    np.testing.assert_array_equal(h["ema_test_acc"][0], h["test_acc"][0])
    # pseudo-labelling everything: the pseudo trace is the strong trace
    assert h["trace_pseudo"][-1] == pytest.approx(h["trace_unsup_strong"][-1], rel=1e-6)
    # the proof's Cauchy-Schwarz chain (eq. 12) holds at every record
    assert np.all(h["thm_grad_ratio"] <= h["thm_rms"] * (1 + 1e-5))


# ------------------------------------------------------------------------ Thm 5.1
def _thm_setup(seed=0):
    net = models.mlp((12, 12), 4, activation="tanh")
    z2 = models.init_params(net, jax.random.PRNGKey(seed), (-1, 6))
    x = jax.random.normal(jax.random.PRNGKey(seed + 1), (9, 6))
    y = jax.random.randint(jax.random.PRNGKey(seed + 2), (9,), 0, 4)
    return net, z2, x, y


def test_thm51_trace_against_explicit_jacobian(x64):
    net, z2, x, y = _thm_setup()
    flat, unravel = ravel_pytree(z2)
    jac = np.asarray(jax.jacrev(lambda w: net.apply_fn(unravel(w), x).ravel())(flat))
    weights = np.array([1, 1, 0, 1, 0, 1, 1, 1, 1], float)
    per_input = (jac.reshape(9, 4, -1) ** 2).sum(axis=(1, 2))
    terms = semisup.thm51_terms(net.apply_fn, z2, z2, x, y, 0.9, weights=weights)
    assert terms.trace_per_input == pytest.approx((weights * per_input).sum() / weights.sum(), rel=1e-10)
    prob = np.asarray(jax.nn.softmax(net.apply_fn(z2, x)))
    resid = np.eye(4)[np.asarray(y)] - prob
    assert terms.residual_rms == pytest.approx(np.sqrt((weights * (resid**2).sum(1)).sum() / weights.sum()),
                                               rel=1e-10)
    assert terms.distance == 0.0 and terms.ratio == 0.0


@pytest.mark.parametrize("tau", [0.5, 0.9, 0.999])
def test_thm51_inequality_holds_under_its_hypothesis_and_can_fail_without(x64, tau):
    net, z2, x, y = _thm_setup(seed=3)
    loss = lambda p: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(net.apply_fn(p, x), y))  # noqa: E731
    grad = jax.grad(loss)(z2)
    # eq. 10: -grad L(z2) = (1 - tau)/tau (z1 - z2)  =>  z1 = z2 - tau/(1 - tau) grad L(z2)
    z1 = jax.tree_util.tree_map(lambda a, g: a - tau / (1 - tau) * g, z2, grad)
    t = semisup.thm51_terms(net.apply_fn, z1, z2, x, y, tau)
    assert t.lhs == pytest.approx(t.grad_norm, rel=1e-10)  # the hypothesis holds exactly
    assert t.ratio == pytest.approx(t.grad_ratio, rel=1e-10)
    assert t.ratio <= t.residual_rms  # eq. 7
    # the bound is not vacuous: moving z1 away from the hypothesis breaks it
    far = jax.tree_util.tree_map(lambda a: a + 50.0 * tau / (1 - tau), z2)
    assert semisup.thm51_terms(net.apply_fn, far, z2, x, y, tau).ratio > t.residual_rms


# ---------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kw,exc,name", [
    (dict(taus=(0.9, 1.0)), ValueError, "taus"),
    (dict(taus=()), ValueError, "taus"),
    (dict(threshold=0.0), ValueError, "threshold"),
    (dict(threshold=1.5), ValueError, "threshold"),
    (dict(batch_size=31), ValueError, "batch_size"),
    (dict(mu=0), ValueError, "mu"),
    (dict(mu=1000), ValueError, "mu"),
    (dict(n_probe=5000), ValueError, "n_probe"),
    (dict(unlabelled_weight=-1.0), ValueError, "unlabelled_weight"),
    (dict(key=None), TypeError, "key"),
    (dict(probe_key=3), TypeError, "probe_key"),
    (dict(strong_kwargs=dict(strength=2.0)), ValueError, "strength"),
])
def test_bad_training_inputs_raise(split, kw, exc, name):
    with pytest.raises(exc, match=name):
        _run(semisup.train_fixmatch, split, **kw)


def test_bad_split_and_thm_inputs_raise(split):
    net, p0 = _small_net()
    with pytest.raises(TypeError, match="split"):
        semisup.train_supervised(net.apply_fn, p0, tuple(split), 5, key=KEY)
    with pytest.raises(ValueError, match="steps"):
        semisup.train_supervised(net.apply_fn, p0, split, 0, key=KEY)
    with pytest.raises(ValueError, match="n_labelled_per_class"):
        semisup.semisup_split(0, 5, KEY)
    with pytest.raises(ValueError, match="n_per_class"):
        semisup.semisup_split(150, 50, KEY)  # digits have ~180 images per class
    n2, z2, x, y = _thm_setup()
    with pytest.raises(ValueError, match="taus"):
        semisup.thm51_terms(n2.apply_fn, z2, z2, x, y, 1.0)
    with pytest.raises(ValueError, match="labels"):
        semisup.thm51_terms(n2.apply_fn, z2, z2, x, y[:3], 0.9)
    with pytest.raises(ValueError, match="weights"):
        semisup.thm51_terms(n2.apply_fn, z2, z2, x, y, 0.9, weights=np.zeros(9))
