"""Learning-curve machinery: kernel gradient descent against independent oracles
(closed form, training nt.linearize, nt.predict), early stopping, ensembles, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import data, kernels, metrics, models, scaling, train  # patches neural-tangents first

import neural_tangents as nt  # noqa: E402  (after ntkbook: it needs the compat patches)

KEY = jax.random.PRNGKey(0)


def _psd_case(n=9, m=5, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n + m, 30))
    k_all = feats @ feats.T / 30
    y = rng.standard_normal((n, 1))
    return k_all[:n, :n], k_all[n:, :n], y


def test_plain_descent_matches_the_discrete_closed_form(x64):
    # Oracle: thesis eqs. (2.60)-(2.61) in discrete time, by eigendecomposition.
    k, kx, y = _psd_case()
    steps = np.array([0, 1, 2, 5, 17, 60])
    lr = 0.8 * 2 * y.size / np.linalg.eigvalsh(k).max()
    ours_train, (ours_test,) = scaling.kernel_descent(k, y, [kx], steps, learning_rate=lr, momentum=0.0)
    closed = kernels.gradient_flow_mse(k, y, steps, k_test_train=kx, learning_rate=lr, discrete=True)
    np.testing.assert_allclose(ours_train, closed.train, atol=1e-10)
    np.testing.assert_allclose(ours_test, closed.test, atol=1e-10)


def test_momentum_descent_equals_training_the_linearised_network(x64):
    # Oracle: optax.sgd with momentum applied to the weights of nt.linearize (minus
    # f(w0, x): the paper's eNTK model), the kernel built from the same network.
    net = models.mlp([24], 1, b_std=0.1)
    p0 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), models.init_params(net, KEY, (-1, 4)))
    x = jax.random.normal(jax.random.PRNGKey(1), (12, 4), dtype=jnp.float64)
    xe = jax.random.normal(jax.random.PRNGKey(2), (7, 4), dtype=jnp.float64)
    y = jnp.sign(x[:, :1])
    lin = kernels.linearize(net.apply_fn, p0)
    model = lambda p, z: lin(p, z) - net.apply_fn(p0, z)  # noqa: E731
    rec = np.array([0, 1, 3, 10, 40])
    _, hist = train.fit(train.mse_loss(model), p0, optax.sgd(0.7, momentum=0.9), int(rec[-1]), data=(x, y),
                        record_steps=rec, record_fn=lambda p, s: {"train": model(p, x), "eval": model(p, xe)},
                        progress=False)
    k = kernels.empirical_ntk(net.apply_fn, p0, x, trace_axes=(-1,))
    ke = kernels.empirical_ntk(net.apply_fn, p0, xe, x, trace_axes=(-1,))
    ours_train, (ours_eval,) = scaling.kernel_descent(k, y, [ke], rec, learning_rate=0.7, momentum=0.9)
    np.testing.assert_allclose(ours_train, hist["train"], atol=1e-9)
    np.testing.assert_allclose(ours_eval, hist["eval"], atol=1e-9)


def test_infinite_ntk_regression_equals_nt_predict_at_infinite_time(x64):
    net = models.mlp([8, 8], 1, b_std=0.1)
    x = jax.random.normal(jax.random.PRNGKey(1), (10, 5), dtype=jnp.float64)
    xt = jax.random.normal(jax.random.PRNGKey(2), (6, 5), dtype=jnp.float64)
    y = jnp.sign(jax.random.normal(jax.random.PRNGKey(3), (10, 1), dtype=jnp.float64))
    k = kernels.infinite_kernel(net.kernel_fn, x)
    kt = kernels.infinite_kernel(net.kernel_fn, xt, x)
    ours = kernels.kernel_regression(k, y, kt)
    predict = nt.predict.gradient_descent_mse(k, y)
    _, theirs = predict(None, jnp.zeros_like(y), jnp.zeros((6, 1)), kt)  # t=None: the t -> infinity limit
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)
    # Heavy-ball descent converges to the same limit (slowest mode: lr lambda_min / n
    # ~ 1e-2 per step with momentum 0.9; 20000 steps leave < e^-100 of it).
    lr = 0.5 * y.size / float(jnp.linalg.eigvalsh(k).max())
    _, (late,) = scaling.kernel_descent(k, y, [kt], [20_000], learning_rate=lr, momentum=0.9)
    np.testing.assert_allclose(late[0], ours, atol=1e-7)
    labels = np.where(np.asarray(jax.random.normal(jax.random.PRNGKey(4), (6,))) > 0, 1.0, -1.0)
    expected = np.mean(np.sign(np.asarray(ours)[:, 0]) != labels)
    assert scaling.kernel_limit_error(k, kt, y[:, 0], labels) == pytest.approx(expected)


def test_early_stopping_picks_the_true_minimum_of_a_known_curve():
    steps = train.record_schedule(1000, 30, spacing="log")
    val = (np.log(steps + 1.0) - np.log(37.0)) ** 2 + 0.1  # minimum at t = 36
    test = np.linspace(0.5, 0.2, steps.size)
    stop = scaling.early_stopping(steps, val, test)
    best = int(np.argmin(np.abs(np.log(steps + 1.0) - np.log(37.0))))
    assert stop.index == best and stop.step == steps[best]
    assert stop.val_error == pytest.approx(val[best]) and stop.test_error == pytest.approx(test[best])
    # The test curve plays no part: a lower test error elsewhere is not chosen.
    assert test.min() < stop.test_error
    # Ties go to the earliest step.
    assert scaling.early_stopping([1, 2, 3, 4], [0.3, 0.1, 0.1, 0.2], [0, 1, 2, 3]).step == 2


def test_classification_error_counts_zero_outputs_as_errors():
    assert scaling.classification_error(np.array([[0.3], [-2.0], [0.0]]), np.array([1.0, 1.0, -1.0])) == pytest.approx(2 / 3)
    batched = scaling.classification_error(np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([1.0, -1.0]))
    np.testing.assert_allclose(batched, [0.5, 0.0])


def _tiny_task(n=24, n_val=20, n_test=30, d=5, seed=0):
    w = data.random_direction(d, jax.random.PRNGKey(99))
    return data.single_index_split(n, n_val, n_test, jax.random.PRNGKey(seed), w, link="sign")


def test_ensemble_members_train_independently_and_start_centred():
    net = models.mlp([16], 1, b_std=0.1)
    proto = scaling.Protocol(0.5, 0.9, 30, 6)
    splits = [_tiny_task(seed=1), _tiny_task(seed=2)]
    p0 = models.init_ensemble(net, KEY, (-1, 5), 2)
    runs, p_final, _ = scaling.fit_network(net.apply_fn, p0, scaling.stack_splits(splits), proto)
    for i in range(2):
        single, p_single, _ = scaling.fit_network(net.apply_fn, jax.tree_util.tree_map(lambda a: a[i:i + 1], p0),
                                                  scaling.stack_splits([splits[i]]), proto)
        np.testing.assert_allclose(runs[i].test_error, single[0].test_error)
        np.testing.assert_allclose(metrics.tree_distance(scaling.unstack(p_final, i), scaling.unstack(p_single, 0)),
                                   0.0, atol=1e-5)
    # The centred network outputs exactly zero at step 0, which counts as 100 % error.
    assert runs[0].steps[0] == 0 and runs[0].test_error[0] == 1.0 and runs[0].train_error[0] == 1.0
    assert runs[0].train_error[-1] < 0.2  # and it learns the half-space


def test_learning_curves_shapes_and_determinism():
    net = models.mlp([16], 1, b_std=0.1)
    proto = scaling.Protocol(0.5, 0.9, 20, 5)
    w = data.random_direction(5, jax.random.PRNGKey(99))
    sample = lambda k, n: data.single_index_split(n, 16, 16, k, w, link="sign")  # noqa: E731
    kwargs = dict(input_shape=(-1, 5), batch_size=16)
    a = scaling.learning_curves(sample, [8, 16], 2, net, proto, KEY, **kwargs)
    b = scaling.learning_curves(sample, [8, 16], 2, net, proto, KEY, **kwargs)
    c = scaling.learning_curves(sample, [8, 16], 2, net, proto, jax.random.PRNGKey(5), **kwargs)
    for name in scaling.MODELS:
        assert a.errors[name].shape == (2, 2)
        np.testing.assert_array_equal(a.errors[name], b.errors[name])
    assert any(not np.array_equal(a.errors[m], c.errors[m]) for m in scaling.MODELS)
    # The eNTK run reproduces a direct fit of the initial kernel.
    split = sample(a.keys[1], 16)
    p0 = scaling.unstack(jax.vmap(lambda k: net.init_fn(k, (-1, 5))[1])(
        jax.random.split(jax.random.fold_in(KEY, 10**6), 2)), 1)
    direct = scaling.fit_kernel(*scaling.entk_blocks(net.apply_fn, p0, split, batch_size=16), split, proto)
    assert a.comparisons[1].runs["entk"][1].stop == direct.stop


def test_kernels_along_training_starts_from_the_initial_kernel():
    net = models.mlp([16], 1, b_std=0.1)
    proto = scaling.Protocol(0.5, 0.9, 30, 6)
    split = _tiny_task()
    p0 = models.init_params(net, KEY, (-1, 5))
    traj = scaling.kernels_along_training(net.apply_fn, p0, split, proto, [0, 10, 30])
    assert list(traj.steps) == [0, 10, 30] and len(traj.kernel_runs) == 3 and traj.network.test_error[0] == 1.0
    at_init = scaling.after_kernel_run(net.apply_fn, p0, split, proto)
    assert traj.kernel_runs[0].stop == at_init.stop
    assert metrics.tree_distance(traj.params[0], p0) == 0.0
    assert metrics.tree_distance(traj.params[-1], p0) > 0.0


def test_exponent_gap_combines_half_widths_in_quadrature():
    a = metrics.PowerLawFit(-0.5, 1.0, 0.02, -0.56, -0.44, 0.99)
    b = metrics.PowerLawFit(-0.2, 1.0, 0.01, -0.28, -0.12, 0.99)
    gap = scaling.exponent_gap(a, b)
    assert gap.difference == pytest.approx(0.3) and gap.combined_halfwidth == pytest.approx(0.1)
    assert gap.significant and not scaling.exponent_gap(b, a).significant


def test_direction_alignment():
    rng = np.random.default_rng(0)
    d, m = 16, 4000
    u = np.eye(d)[3]
    # Random weights: A = d ||W^T u||^2 / ||W||_F^2 has mean 1 and sd ~ sqrt(2/m) = 0.022.
    assert abs(scaling.direction_alignment(rng.standard_normal((d, m)), u) - 1.0) < 0.1
    aligned = np.outer(u, rng.standard_normal(m))
    assert scaling.direction_alignment(aligned, u) == pytest.approx(d)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: scaling.Protocol(0.0), "learning_rate"),
        (lambda: scaling.Protocol(1.0, momentum=1.0), "momentum"),
        (lambda: scaling.Protocol(1.0, steps=0), "steps"),
        (lambda: scaling.Protocol(1.0, n_records=1), "n_records"),
        (lambda: scaling.early_stopping([1, 2], [0.1], [0.1, 0.2]), "must match"),
        (lambda: scaling.early_stopping([2, 1], [0.1, 0.2], [0.1, 0.2]), "increasing"),
        (lambda: scaling.early_stopping([], [], []), "non-empty"),
        (lambda: scaling.kernel_descent(np.eye(3), np.ones(4), [], [1], learning_rate=1.0), "k_train"),
        (lambda: scaling.kernel_descent(np.eye(3), np.ones(3), [np.ones((2, 4))], [1], learning_rate=1.0), "k_evals"),
        (lambda: scaling.kernel_descent(np.eye(3), np.ones(3), [], [3, 1], learning_rate=1.0), "record_steps"),
        (lambda: scaling.kernel_descent(np.eye(3), np.ones(3), [], [1], learning_rate=-1.0), "learning_rate"),
        (lambda: scaling.fit_kernel(np.eye(3), np.ones((2, 3)), np.ones((2, 3)),
                                    _tiny_task(3, 2, 2)._replace(y_train=np.array([0.5, 1, 1])),
                                    scaling.Protocol(1.0)), r"y_train must hold labels"),
        (lambda: scaling.stack_splits([_tiny_task(4), _tiny_task(5)]), "same sizes"),
        (lambda: scaling.subset(_tiny_task(4), 5), "exceeds"),
        (lambda: scaling.compare(None, None, [_tiny_task()], scaling.Protocol(1.0), which=("gp",)), "models"),
        (lambda: scaling.learning_curves(None, [16, 8], 1, None, scaling.Protocol(1.0), KEY, input_shape=(-1, 5)),
         "increasing"),
        (lambda: scaling.fit_network(None, None, _tiny_task(), scaling.Protocol(1.0)), "stacked"),
        (lambda: scaling.classification_error(np.ones(3), np.ones(4)), "do not match"),
        (lambda: scaling.direction_alignment(np.ones((3, 2)), np.ones(2)), "direction"),
        (lambda: scaling.entk_blocks(None, None, (1, 2)), "HeldOutSplit"),
        (lambda: scaling.critical_learning_rate(np.ones((3, 2))), "square"),
        (lambda: scaling.critical_learning_rate(np.eye(3), momentum=1.0), "momentum"),
        (lambda: scaling.early_stopping([1, 2], [0.1, np.nan], [0.1, 0.2]), "finite"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_critical_learning_rate_and_the_cap_for_grown_kernels(x64):
    k, kx, y = _psd_case(n=12)
    lam = np.linalg.eigvalsh(k).max()
    crit = scaling.critical_learning_rate(k, momentum=0.9)
    assert crit == pytest.approx(2 * 1.9 * 12 / lam, rel=1e-6)
    # Just below the critical rate heavy ball converges; just above it diverges.
    _, (below,) = scaling.kernel_descent(k, y, [kx], [3000], learning_rate=0.97 * crit, momentum=0.9)
    _, (above,) = scaling.kernel_descent(k, y, [kx], [3000], learning_rate=1.03 * crit, momentum=0.9)
    assert np.all(np.isfinite(below)) and not np.all(np.abs(above) < 1e6)
    # fit_kernel keeps the protocol's rate when it is stable and caps it otherwise;
    # a diverged model would count every output as an error rather than crash.
    labels = np.where(y[:, 0] > 0, 1.0, -1.0)
    split = data.HeldOutSplit(np.zeros((12, 1)), labels, np.zeros((5, 1)), np.ones(5), np.zeros((5, 1)), -np.ones(5))
    slow = scaling.fit_kernel(k, kx, kx, split, scaling.Protocol(0.5 * crit, 0.9, 50, 5))
    assert slow.learning_rate == pytest.approx(0.5 * crit)
    # Per-point correctness at the early-stopping step agrees with the recorded test error there.
    assert slow.test_correct.shape == (5,) and slow.test_correct.dtype == bool
    assert (~slow.test_correct).mean() == slow.stop.test_error
    fast = scaling.fit_kernel(k, kx, kx, split, scaling.Protocol(3.0 * crit, 0.9, 50, 5))
    assert fast.learning_rate == pytest.approx(scaling.SAFETY * crit, rel=1e-6)
    assert scaling.classification_error(np.array([np.nan, 1.0]), np.array([1.0, 1.0])) == 0.5


def test_fit_kernel_reports_per_point_correctness_at_the_early_stopping_step(x64):
    # Oracle: the closed form of plain descent (thesis eqs. 2.60-2.61, discrete) evaluated at
    # the chosen step, on its own; the validation set differs from the test set so that the
    # early-stopping step is not simply the last one.
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((40 + 15 + 25, 8))
    k_all = feats @ feats.T / 8
    w = rng.standard_normal(8)
    labels = np.where(feats @ w + 0.8 * rng.standard_normal(len(feats)) > 0, 1.0, -1.0)
    tr, va, te = slice(0, 40), slice(40, 55), slice(55, 80)
    split = data.HeldOutSplit(feats[tr], labels[tr], feats[va], labels[va], feats[te], labels[te])
    proto = scaling.Protocol(0.5 * scaling.critical_learning_rate(k_all[tr, tr]), 0.0, 400, 12)
    run = scaling.fit_kernel(k_all[tr, tr], k_all[va, tr], k_all[te, tr], split, proto)
    assert run.test_correct.shape == (25,) and run.test_correct.dtype == bool
    assert (~run.test_correct).mean() == run.stop.test_error
    out = kernels.gradient_flow_mse(k_all[tr, tr], labels[tr][:, None], [run.stop.step], k_test_train=k_all[te, tr],
                                    learning_rate=run.learning_rate, discrete=True)
    np.testing.assert_array_equal(run.test_correct, np.asarray(out.test).reshape(-1) * labels[te] > 0)
    assert 0 < run.stop.index < len(proto.record_steps) - 1, run.stop  # an interior stop: the index is exercised
