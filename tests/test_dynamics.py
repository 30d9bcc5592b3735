"""The one-step A K G decomposition against real gradient steps and autodiff, the
preference-optimisation gradients against jax.grad, the toy's p* against scipy,
and the incremental kernel-inverse / look-ahead algebra against fresh solves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ntkbook import dynamics, kernels, models

KEY = jax.random.PRNGKey(0)


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _case(k=4, hidden=(32, 32), activation="tanh"):
    net = models.mlp(list(hidden), k, activation=activation)
    params = _f64(models.init_params(net, KEY, (-1, 5)))
    x_train = jax.random.normal(jax.random.PRNGKey(1), (3, 5), jnp.float64)
    x_probe = jax.random.normal(jax.random.PRNGKey(2), (6, 5), jnp.float64)
    return net, params, x_train, x_probe


# ----------------------------------------------------------------- factors vs autodiff
@pytest.mark.parametrize("output", dynamics.OUTPUTS)
def test_output_jacobian_matches_autodiff(x64, output):
    z = jax.random.normal(KEY, (5, 4), jnp.float64)
    got = dynamics.output_jacobian(z, output)
    want = jax.vmap(jax.jacobian(lambda row: dynamics.apply_output(row[None], output)[0]))(z)
    np.testing.assert_allclose(got, want, atol=1e-14)


@pytest.mark.parametrize("loss,targets", [
    ("mse", np.random.default_rng(0).normal(size=(5, 4))),
    ("cross_entropy", np.array([0, 3, 1, 1, 2])),
    ("cross_entropy", np.random.default_rng(1).dirichlet(np.ones(4), size=5)),
])
def test_loss_gradient_matches_autodiff(x64, loss, targets):
    z = jax.random.normal(KEY, (5, 4), jnp.float64)
    got = dynamics.loss_gradient(z, targets, loss)
    want = jax.grad(lambda zz: jnp.sum(dynamics.per_example_loss(zz, targets, loss)))(z)
    np.testing.assert_allclose(got, want, atol=1e-14)


def test_cross_entropy_matches_optax(x64):
    import optax

    z = jax.random.normal(KEY, (5, 4), jnp.float64)
    y = jnp.array([0, 3, 1, 1, 2])
    np.testing.assert_allclose(dynamics.per_example_loss(z, y),
                               optax.softmax_cross_entropy_with_integer_labels(z, y), rtol=1e-13)


# ------------------------------------------------------ decomposition vs a real SGD step
@pytest.mark.parametrize("loss,output", [("cross_entropy", "log_softmax"), ("cross_entropy", "softmax"),
                                         ("mse", "logits")])
def test_decomposition_matches_a_tiny_sgd_step(x64, loss, output):
    net, params, x_train, x_probe = _case()
    targets = jnp.array([0, 2, 3]) if loss == "cross_entropy" else jax.random.normal(KEY, (3, 4), jnp.float64)
    errors = []
    for eta in (1e-3, 1e-4):
        dec = dynamics.one_step_decomposition(net.apply_fn, params, x_probe, x_train, targets,
                                              learning_rate=eta, loss=loss, output=output)
        new = dynamics.sgd_step(net.apply_fn, params, x_train, targets, learning_rate=eta, loss=loss)
        actual = dynamics.output_change(net.apply_fn, params, new, x_probe, output)
        errors.append(float(jnp.linalg.norm(actual - dec.predicted)))
        # first order: the remainder is a small fraction of the change itself
        assert errors[-1] < 1e-2 * float(jnp.linalg.norm(actual))
    # the remainder is O(eta^2): a 10x smaller step leaves a ~100x smaller error
    # (between 50x and 200x allows for the O(eta^3) term at eta = 1e-3).
    assert 50 < errors[0] / errors[1] < 200, errors


def test_decomposition_factors_have_documented_shapes_and_kernel(x64):
    net, params, x_train, x_probe = _case()
    dec = dynamics.one_step_decomposition(net.apply_fn, params, x_probe, x_train, jnp.array([0, 1, 2]),
                                          learning_rate=0.1)
    assert dec.A.shape == (6, 4, 4) and dec.K.shape == (6, 3, 4, 4) and dec.G.shape == (3, 4)
    np.testing.assert_allclose(dec.K, kernels.ntk_reference(net.apply_fn, params, x_probe, x_train), atol=1e-10)
    # rows of G for cross-entropy sum to zero (softmax minus a distribution)
    np.testing.assert_allclose(dec.G.sum(axis=1), 0.0, atol=1e-14)


def test_predicted_change_with_a_scalar_kernel_equals_kernel_times_identity(x64):
    rng = np.random.default_rng(0)
    A, G = rng.normal(size=(5, 3, 3)), rng.normal(size=(4, 3))
    P = rng.normal(size=(5, 4))
    full = P[:, :, None, None] * np.eye(3)
    np.testing.assert_allclose(dynamics.predicted_change(A, P, G, 0.3), dynamics.predicted_change(A, full, G, 0.3),
                               atol=1e-14)
    # explicit loop as the oracle
    want = np.zeros((5, 3))
    for m in range(5):
        for i in range(4):
            want[m] -= 0.3 / 4 * A[m] @ full[m, i] @ G[i]
    np.testing.assert_allclose(dynamics.predicted_change(A, full, G, 0.3), want, atol=1e-13)


# ----------------------------------------------------------------------- preferences
def test_dpo_gradients_match_autodiff(x64):
    rng = np.random.default_rng(3)
    zp, zm, rp, rm = (jnp.asarray(rng.normal(size=(4, 5))) for _ in range(4))
    yp, ym = jnp.array([0, 1, 2, 3]), jnp.array([4, 4, 0, 1])
    beta = 0.7

    def loss(zp, zm):
        lp = jax.nn.log_softmax(zp)[jnp.arange(4), yp] - jax.nn.log_softmax(rp)[jnp.arange(4), yp]
        lm = jax.nn.log_softmax(zm)[jnp.arange(4), ym] - jax.nn.log_softmax(rm)[jnp.arange(4), ym]
        return -jnp.sum(jax.nn.log_sigmoid(beta * (lp - lm)))

    gp, gm = jax.grad(loss, argnums=(0, 1))(zp, zm)
    got_p, got_m = dynamics.dpo_logit_gradients(zp, zm, rp, rm, yp, ym, beta)
    np.testing.assert_allclose(got_p, gp, atol=1e-14)
    np.testing.assert_allclose(got_m, gm, atol=1e-14)


def test_dpo_loss_is_log2_at_the_reference_and_falls_after_a_step(x64):
    net, params, x_train, _ = _case()
    batch = (x_train, jnp.array([0, 1, 2]), x_train[::-1], jnp.array([3, 3, 3]))
    loss_fn = dynamics.dpo_loss(net.apply_fn, params, beta=0.5)
    np.testing.assert_allclose(loss_fn(params, batch), np.log(2.0), rtol=1e-14)
    g = jax.grad(loss_fn)(params, batch)
    stepped = jax.tree_util.tree_map(lambda w, d: w - 1e-2 * d, params, g)
    assert loss_fn(stepped, batch) < np.log(2.0)


def test_negative_gradient_lowers_the_rejected_log_probability(x64):
    net, params, x_train, _ = _case()
    rejected = jnp.array([1, 2, 3])
    loss_fn = dynamics.negative_gradient_loss(net.apply_fn)
    before = loss_fn(params, (x_train, rejected))
    np.testing.assert_allclose(before, jnp.mean(jax.nn.log_softmax(net.apply_fn(params, x_train))[jnp.arange(3), rejected]))
    g = jax.grad(loss_fn)(params, (x_train, rejected))
    after = loss_fn(jax.tree_util.tree_map(lambda w, d: w - 1e-2 * d, params, g), (x_train, rejected))
    assert after < before


# ---------------------------------------------------------------------- the 3-class toy
def test_three_class_toy_posterior_matches_bayes_rule():
    toy = dynamics.three_class_toy(50, KEY, dim=6, separation=1.3)
    assert toy.x.shape == (50, 6) and toy.y.shape == (50,) and toy.p_star.shape == (50, 3)
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    means = 1.3 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    x2 = np.asarray(toy.x[:, :2], np.float64)
    dens = np.stack([stats.multivariate_normal(m, np.eye(2)).pdf(x2) for m in means], axis=1)
    np.testing.assert_allclose(toy.p_star, dens / dens.sum(1, keepdims=True), atol=1e-5)


def test_three_class_toy_labels_are_samples_from_p_star():
    # Mean of p*(y_i | x_i) over the sample vs the empirical frequency of each class:
    # a sum of n independent indicators, so a 5-sigma binomial bound.
    toy = dynamics.three_class_toy(4000, jax.random.PRNGKey(5), dim=3)
    p = np.asarray(toy.p_star, np.float64)
    for c in range(3):
        var = np.sum(p[:, c] * (1 - p[:, c]))
        assert abs(np.sum(np.asarray(toy.y) == c) - p[:, c].sum()) < 5 * np.sqrt(var)


# --------------------------------------------------------------- inverse updates, lookahead
def _spd(n, seed):
    a = np.random.default_rng(seed).normal(size=(n, n + 3))
    return a @ a.T


@pytest.mark.parametrize("m", [1, 3])
def test_block_inverse_update_matches_solve(x64, m):
    full = _spd(9, 0)
    n = 9 - m
    got = dynamics.block_inverse_update(np.linalg.inv(full[:n, :n]), full[:n, n:], full[n:, n:])
    rhs = np.random.default_rng(1).normal(size=(9, 2))
    np.testing.assert_allclose(got @ rhs, jnp.linalg.solve(jnp.asarray(full), jnp.asarray(rhs)), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got @ full, np.eye(9), atol=1e-9)


def test_rank_one_update_accepts_vectors_and_scalars():
    full = _spd(5, 2)
    got = dynamics.block_inverse_update(np.linalg.inv(full[:4, :4]), full[:4, 4], full[4, 4])
    np.testing.assert_allclose(got, np.linalg.inv(full), rtol=1e-8, atol=1e-10)


def _kernel_case(full: bool, n=6, c=4, m=5, k=3, seed=0):
    """A valid (PSD) kernel on n + c + m inputs from random features."""
    rng = np.random.default_rng(seed)
    total = n + c + m
    if full:
        feats = rng.normal(size=(total, k, 40))
        kern = np.einsum("iap,jbp->ijab", feats, feats)
    else:
        feats = rng.normal(size=(total, 40))
        kern = feats @ feats.T
    L, C, M = np.arange(n), np.arange(n, n + c), np.arange(n + c, total)
    r_l, r_c = rng.normal(size=(n, k)), rng.normal(size=(c, k))
    return kern, L, C, M, r_l, r_c


@pytest.mark.parametrize("full", [False, True], ids=["pntk-shaped", "entk-shaped"])
def test_lookahead_equals_a_fresh_solve_per_candidate(x64, full):
    kern, L, C, M, r_l, r_c = _kernel_case(full)
    pick = lambda a, b: kern[np.ix_(a, b)]  # noqa: E731
    got = dynamics.lookahead_changes(pick(L, L), pick(C, L), kern[C, C], pick(M, L), pick(M, C), r_l, r_c)
    for j, cand in enumerate(C):
        lc = np.append(L, cand)
        want = kernels.kernel_regression(pick(lc, lc), np.vstack([r_l, r_c[j]]), pick(M, lc))
        np.testing.assert_allclose(got[j], want, rtol=1e-8, atol=1e-9)
    # without the base term: the change relative to the kernel model fitted on L alone
    base = kernels.kernel_regression(pick(L, L), r_l, pick(M, L))
    rel = dynamics.lookahead_changes(pick(L, L), pick(C, L), kern[C, C], pick(M, L), pick(M, C), r_l, r_c,
                                     include_base=False)
    np.testing.assert_allclose(rel + np.asarray(base)[None], got, rtol=1e-8, atol=1e-9)


def test_one_step_lookahead_is_the_decomposition_with_identity_output(x64):
    kern, L, C, M, _, r_c = _kernel_case(True)
    k_mc = kern[np.ix_(M, C)]
    got = dynamics.one_step_lookahead(k_mc, r_c, 0.2)
    A = np.broadcast_to(np.eye(3), (len(M), 3, 3))
    for j in range(len(C)):
        # one step on candidate j alone (N = 1) with G = -r_c
        want = dynamics.predicted_change(A, k_mc[:, j:j + 1], -r_c[j:j + 1], 0.2)
        np.testing.assert_allclose(got[j], want, atol=1e-12)


def test_scores():
    changes = np.zeros((2, 3, 2))
    changes[0, :, 0] = 3.0
    changes[1, 0] = (3.0, 4.0)
    np.testing.assert_allclose(dynamics.output_change_score(changes), [9.0, 5.0])
    np.testing.assert_allclose(dynamics.entropy([[0.5, 0.5], [1.0, 0.0]]), [np.log(2.0), 0.0])
    np.testing.assert_allclose(dynamics.softmax_np([[0.0, np.log(3.0)]]), [[0.25, 0.75]])


def test_acquire_returns_distinct_unlabelled_indices():
    net = models.mlp([16], 3)
    params = models.init_params(net, KEY, (-1, 4))
    x = jax.random.normal(KEY, (20, 4))
    y = np.arange(20) % 3
    lab = np.array([0, 1, 2, 3])
    for strategy in dynamics.ACQUISITIONS:
        for kern in ("pntk", "entk"):
            got = dynamics.acquire(strategy, net.apply_fn, params, x, y, lab, 3, key=KEY, kernel=kern)
            assert len(set(got.tolist())) == 3 and not set(got.tolist()) & set(lab.tolist()), (strategy, got)


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_raise():
    z = jnp.zeros((3, 4))
    with pytest.raises(ValueError, match="output must be one of"):
        dynamics.output_jacobian(z, "probit")
    with pytest.raises(ValueError, match="logits must have shape"):
        dynamics.output_jacobian(jnp.zeros(4))
    with pytest.raises(ValueError, match="loss must be one of"):
        dynamics.loss_gradient(z, jnp.zeros((3, 4)), "hinge")
    with pytest.raises(ValueError, match=r"targets must have shape \(3, 4\)"):
        dynamics.loss_gradient(z, jnp.zeros((3, 2)), "mse")
    with pytest.raises(ValueError, match="class labels must lie"):
        dynamics.loss_gradient(z, jnp.array([0, 1, 4]))
    with pytest.raises(TypeError, match="integer class labels"):
        dynamics.loss_gradient(z, jnp.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        dynamics.predicted_change(jnp.zeros((2, 4, 4)), jnp.zeros((2, 3)), z, 0.0)
    with pytest.raises(TypeError, match="learning_rate must be a number"):
        dynamics.predicted_change(jnp.zeros((2, 4, 4)), jnp.zeros((2, 3)), z, "fast")
    with pytest.raises(ValueError, match=r"K must have shape \(2, 3, 4, 4\) or \(2, 3\)"):
        dynamics.predicted_change(jnp.zeros((2, 4, 4)), jnp.zeros((2, 2)), z, 0.1)
    with pytest.raises(ValueError, match="A must have shape"):
        dynamics.predicted_change(jnp.zeros((2, 3, 3)), jnp.zeros((2, 3)), z, 0.1)
    with pytest.raises(ValueError, match="beta must be positive"):
        dynamics.dpo_loss(lambda p, x: x, None, beta=0.0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        dynamics.three_class_toy(0, KEY)
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        dynamics.three_class_toy(5, KEY, dim=1)
    with pytest.raises(TypeError, match="key must be a jax.random key"):
        dynamics.three_class_toy(5, 0)
    with pytest.raises(ValueError, match="k_inv must be a square matrix"):
        dynamics.block_inverse_update(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"c must have shape \(1, 1\)"):
        dynamics.block_inverse_update(np.eye(2), np.zeros((2, 1)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"b must have shape \(2, m\)"):
        dynamics.block_inverse_update(np.eye(2), np.zeros((3, 1)), np.zeros((1, 1)))
    # a new input equal to a current one: the RBF kernel's row and diagonal repeat, S = 0 (closed form)
    pts = np.array([0.0, 1.0, 2.5])
    kern = np.exp(-(pts[:, None] - pts[None, :]) ** 2)
    with pytest.raises(ValueError, match="duplicate"):
        dynamics.block_inverse_update(np.linalg.inv(kern), kern[:, 1], 1.0)
    for args, name in (((np.eye(2), np.array([np.nan, 0.0]), 1.0), "b"), ((np.eye(2), np.zeros(2), np.inf), "c"),
                       ((np.full((2, 2), np.nan), np.zeros(2), 1.0), "k_inv")):
        with pytest.raises(ValueError, match=f"{name} contains NaN"):
            dynamics.block_inverse_update(*args)
    # a near-duplicate that leaves the matrix well conditioned is accepted, and exact (oracle: numpy's inverse)
    pts2 = np.array([0.0, 1.0, 2.5, 1.05])
    kern2 = np.exp(-(pts2[:, None] - pts2[None, :]) ** 2)
    got = dynamics.block_inverse_update(np.linalg.inv(kern2[:3, :3]), kern2[:3, 3], kern2[3, 3])
    np.testing.assert_allclose(got, np.linalg.inv(kern2), rtol=1e-8, atol=1e-8)


def test_lookahead_shape_errors():
    kern, L, C, M, r_l, r_c = _kernel_case(False)
    pick = lambda a, b: kern[np.ix_(a, b)]  # noqa: E731
    args = [pick(L, L), pick(C, L), kern[C, C], pick(M, L), pick(M, C), r_l, r_c]
    bad = list(args)
    bad[1] = pick(C, L)[:, :-1]
    with pytest.raises(ValueError, match="k_cl must have shape"):
        dynamics.lookahead_changes(*bad)
    bad = list(args)
    bad[2] = np.zeros((len(C), 3, 3))
    with pytest.raises(ValueError, match="k_cc must have shape"):
        dynamics.lookahead_changes(*bad)
    bad = list(args)
    bad[5] = r_l[:-1]
    with pytest.raises(ValueError, match="k_ll covers 6 inputs but residual_l has 5"):
        dynamics.lookahead_changes(*bad)
    with pytest.raises(ValueError, match="k_ll_inv must have shape"):
        dynamics.lookahead_changes(*args, k_ll_inv=np.eye(2))
    with pytest.raises(ValueError, match="residual_c must have shape"):
        dynamics.one_step_lookahead(pick(M, C), r_c[:, 0], 0.1)
    with pytest.raises(ValueError, match="changes must have shape"):
        dynamics.output_change_score(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rows summing to one"):
        dynamics.entropy([[0.5, 0.6]])


def test_active_learning_checks_its_budget_before_training():
    net = models.mlp([8], 3)
    params = models.init_params(net, KEY, (-1, 4))
    x, y = np.zeros((10, 4), np.float32), np.arange(10) % 3
    common = dict(rounds=3, per_round=3, train_steps=5, learning_rate=0.1, key=KEY)
    with pytest.raises(ValueError, match="fewer than the budget"):
        dynamics.active_learning(net.apply_fn, params, x, y, x, y, [0, 1, 2], strategy="random", **common)
    with pytest.raises(ValueError, match="strategy must be one of"):
        dynamics.active_learning(net.apply_fn, params, x, y, x, y, [0], strategy="bald", **common)
    with pytest.raises(ValueError, match="distinct indices"):
        dynamics.active_learning(net.apply_fn, params, x, y, x, y, [0, 0], strategy="random", **common)
    with pytest.raises(ValueError, match="n must be an integer in"):
        dynamics.acquire("random", net.apply_fn, params, x, y, [0], 20, key=KEY)


def test_active_learning_run_records_every_round():
    net = models.mlp([16], 3)
    params = models.init_params(net, KEY, (-1, 4))
    x = jax.random.normal(KEY, (30, 4))
    y = np.asarray(jnp.argmax(x[:, :3], axis=1))
    run = dynamics.active_learning(net.apply_fn, params, x, y, x, y, [0, 1, 2], strategy="lookahead", rounds=2,
                                   per_round=2, train_steps=10, learning_rate=0.5, key=KEY)
    np.testing.assert_array_equal(run.n_labelled, [3, 5, 7])
    assert run.test_accuracy.shape == (3,) and len(set(run.acquired.tolist())) == 4


def test_repeats_follow_the_single_runs():
    # Training R networks side by side must reproduce R separate runs (same keys).
    net = models.mlp([16], 3)
    x = jax.random.normal(KEY, (30, 4))
    y = np.asarray(jnp.argmax(x[:, :3], axis=1))
    stacked = models.init_ensemble(net, KEY, (-1, 4), 2)
    init = np.array([[0, 1, 2], [5, 6, 7]])
    common = dict(rounds=2, per_round=2, train_steps=10, learning_rate=0.5)
    for strategy in ("random", "lookahead"):
        both = dynamics.active_learning_repeats(net.apply_fn, stacked, x, y, x, y, init, strategy=strategy, key=KEY,
                                                **common)
        assert both.test_accuracy.shape == (2, 3) and both.acquired.shape == (2, 4)
        for r in range(2):
            p_r = jax.tree_util.tree_map(lambda a, r=r: a[r], stacked)
            one = dynamics.active_learning(net.apply_fn, p_r, x, y, x, y, init[r], strategy=strategy,
                                           key=jax.random.fold_in(KEY, r), **common)
            np.testing.assert_array_equal(both.acquired[r], one.acquired)
            np.testing.assert_allclose(both.test_accuracy[r], one.test_accuracy, atol=1e-6)


def test_repeats_check_their_inputs_before_training():
    net = models.mlp([8], 3)
    stacked = models.init_ensemble(net, KEY, (-1, 4), 2)
    x, y = np.zeros((10, 4), np.float32), np.arange(10) % 3
    common = dict(strategy="random", rounds=1, per_round=1, train_steps=5, learning_rate=0.1, key=KEY)
    with pytest.raises(ValueError, match=r"initial must be an \(R, n0\) integer array"):
        dynamics.active_learning_repeats(net.apply_fn, stacked, x, y, x, y, [0, 1], **common)
    with pytest.raises(ValueError, match="stacked on a leading axis of size R = 3"):
        dynamics.active_learning_repeats(net.apply_fn, stacked, x, y, x, y, np.zeros((3, 1), int), **common)
    with pytest.raises(ValueError, match="distinct indices"):
        dynamics.active_learning_repeats(net.apply_fn, stacked, x, y, x, y, np.array([[0, 0], [1, 2]]), **common)
