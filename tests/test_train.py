import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import models, progress, train

KEY = jax.random.PRNGKey(0)


def _linear_problem():
    a = jax.random.normal(KEY, (12, 4))
    b = jax.random.normal(jax.random.PRNGKey(1), (12, 1))
    apply_fn = lambda w, x: x @ w  # noqa: E731
    return apply_fn, a, b


def test_full_batch_gd_matches_explicit_iteration(x64):
    apply_fn, a, b = _linear_problem()
    a, b = a.astype(jnp.float64), b.astype(jnp.float64)
    w0 = jnp.zeros((4, 1))
    lr, steps = 0.3, 57
    w, hist = train.fit(train.mse_loss(apply_fn), w0, optax.sgd(lr), steps, data=(a, b),
                        record_steps=[0, 10, steps], record_fn=lambda p, s: {"w": p}, progress=False)
    ref = np.zeros((4, 1))
    refs = {0: ref.copy()}
    for s in range(1, steps + 1):  # gradient of 1/(2n) ||A w - b||^2, n = b.size
        ref = ref - lr * (np.asarray(a).T @ (np.asarray(a) @ ref - np.asarray(b))) / b.size
        refs[s] = ref.copy()
    np.testing.assert_allclose(w, ref, rtol=1e-10)
    np.testing.assert_array_equal(hist.steps, [0, 10, steps])
    for i, s in enumerate(hist.steps):
        np.testing.assert_allclose(hist["w"][i], refs[s], rtol=1e-10, atol=1e-14)
    assert float(jnp.abs(w0).max()) == 0.0, "fit must not modify (or donate) the caller's parameters"


def test_ensemble_members_train_independently():
    net = models.mlp([16], 1)
    x = jnp.linspace(-1, 1, 6)[:, None]
    y = jnp.sin(3 * x)
    stacked = models.init_ensemble(net, KEY, (-1, 1), 3)
    opt = optax.sgd(0.1, momentum=0.9)
    together, _ = train.fit(train.ensemble_loss(train.mse_loss(net.apply_fn)), stacked, opt, 25,
                            data=(x, y), progress=False)
    for i in range(3):
        alone, _ = train.fit(train.mse_loss(net.apply_fn), jax.tree_util.tree_map(lambda a: a[i], stacked),
                             opt, 25, data=(x, y), progress=False)
        for u, v in zip(jax.tree_util.tree_leaves(alone), jax.tree_util.tree_leaves(together)):
            np.testing.assert_allclose(u, v[i], rtol=2e-5, atol=2e-6)


def test_minibatches_are_reproducible_and_key_dependent():
    apply_fn, a, b = _linear_problem()

    def sample(key, data):
        idx = jax.random.choice(key, data[0].shape[0], (4,), replace=False)
        return data[0][idx], data[1][idx]

    run = lambda key: train.fit(train.mse_loss(apply_fn), jnp.zeros((4, 1)), optax.sgd(0.1), 20,  # noqa: E731
                                data=(a, b), sample_batch=sample, key=key, progress=False)[0]
    np.testing.assert_array_equal(run(KEY), run(KEY))
    assert not np.allclose(run(KEY), run(jax.random.PRNGKey(5)))


def test_cross_entropy_and_accuracy():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    labels = jnp.array([0, 1, 1])
    assert float(train.accuracy(logits, labels)) == pytest.approx(2 / 3)
    loss = train.cross_entropy_loss(lambda p, x: x)(None, (logits, labels))
    manual = -np.mean([np.log(np.exp(2) / (np.exp(2) + 1)), np.log(np.e / (np.e + 1)), np.log(np.e / (np.exp(3) + np.e))])
    assert float(loss) == pytest.approx(manual, rel=1e-5)


def test_record_schedule():
    s = train.record_schedule(1000, 20, spacing="log")
    assert s[0] == 0 and s[-1] == 1000 and np.all(np.diff(s) > 0)
    np.testing.assert_array_equal(train.record_schedule(10, 3), [0, 5, 10])


def test_summary_progress_prints_one_line(monkeypatch, capsys):
    monkeypatch.setenv(progress.ENV_VAR, "summary")
    apply_fn, a, b = _linear_problem()
    train.fit(train.mse_loss(apply_fn), jnp.zeros((4, 1)), optax.sgd(0.1), 30, data=(a, b),
              record_steps=[0, 10, 20, 30], desc="linear")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("linear: 30/30 in ")
    assert list(progress.track(range(3), desc="loop")) == [0, 1, 2]
    assert capsys.readouterr().out.startswith("loop: 3/3 in ")
    monkeypatch.setenv(progress.ENV_VAR, "loud")
    with pytest.raises(ValueError, match="NTKBOOK_PROGRESS"):
        progress.mode()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(steps=5, record_steps=[6]), "record_steps"),
        (dict(steps=5, sample_batch=lambda k, d: d), "PRNG key"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    apply_fn, a, b = _linear_problem()
    with pytest.raises(ValueError, match=match):
        train.fit(train.mse_loss(apply_fn), jnp.zeros((4, 1)), optax.sgd(0.1), data=(a, b), progress=False, **kwargs)
    with pytest.raises(ValueError, match="n_records"):
        train.record_schedule(10, 1)


def test_stop_when_ends_at_the_event_and_matches_a_run_of_that_length():
    """Oracle: the closed-form GD iterate (as above) and a second run with steps = the stop step."""
    apply_fn, a, b = _linear_problem()
    loss_fn = train.mse_loss(apply_fn)
    w0 = jnp.zeros((4, 1))
    record_fn = lambda p, s: {"loss": loss_fn(p, (a, b))}  # noqa: E731
    seen = []

    def flat(loss):  # the loss moved by less than 1e-4 (relative) since the record before
        return len(loss) > 1 and abs(loss[-1] / loss[-2] - 1) < 1e-4

    def stop_when(step, records):
        seen.append((step, len(records["loss"])))
        return bool(flat(records["loss"]))

    schedule = train.record_schedule(200, 41)  # every 5 steps
    w, hist = train.fit(loss_fn, w0, optax.sgd(0.3), 200, data=(a, b), record_steps=schedule,
                        record_fn=record_fn, stop_when=stop_when, progress=False)
    _, full = train.fit(loss_fn, w0, optax.sgd(0.3), 200, data=(a, b), record_steps=schedule,
                        record_fn=record_fn, progress=False)
    first = next(int(full.steps[i]) for i in range(1, len(full.steps)) if flat(full["loss"][: i + 1]))
    assert 0 < first < 200, "the test needs an event inside the run"
    assert hist.stopped_at == first and hist.steps[-1] == first and full.stopped_at is None
    np.testing.assert_array_equal(hist.steps, full.steps[full.steps <= first])
    np.testing.assert_array_equal(hist["loss"], full["loss"][full.steps <= first])
    w_short, _ = train.fit(loss_fn, w0, optax.sgd(0.3), first, data=(a, b), progress=False)
    np.testing.assert_array_equal(w, w_short)  # bit for bit the run that was asked for exactly `first` steps
    # called after every record of an update (not the one at step 0), with everything recorded so far
    assert seen == [(int(s), i + 1) for i, s in enumerate(hist.steps) if s > 0]


def test_stop_when_refuses_bad_use():
    apply_fn, a, b = _linear_problem()
    loss_fn = train.mse_loss(apply_fn)
    with pytest.raises(TypeError, match="stop_when"):
        train.fit(loss_fn, jnp.zeros((4, 1)), optax.sgd(0.1), 5, data=(a, b), record_fn=lambda p, s: {},
                  stop_when=3, progress=False)
    with pytest.raises(ValueError, match="record_fn"):
        train.fit(loss_fn, jnp.zeros((4, 1)), optax.sgd(0.1), 5, data=(a, b), stop_when=lambda s, r: True,
                  progress=False)


def test_stop_when_edges(monkeypatch, capsys):
    """A stop at the first record, a rule that would only fire at the cap, divergence, and the progress line."""
    apply_fn, a, b = _linear_problem()
    loss_fn = train.mse_loss(apply_fn)
    w0 = jnp.zeros((4, 1))
    rec = lambda p, s: {"loss": loss_fn(p, (a, b))}  # noqa: E731
    monkeypatch.setenv(progress.ENV_VAR, "summary")
    w, hist = train.fit(loss_fn, w0, optax.sgd(0.3), 40, data=(a, b), record_steps=[0, 10, 20, 30, 40],
                        record_fn=rec, stop_when=lambda s, r: True, desc="early")
    w10, _ = train.fit(loss_fn, w0, optax.sgd(0.3), 10, data=(a, b), progress=False)
    assert hist.stopped_at == 10 and list(hist.steps) == [0, 10] and np.array_equal(w, w10)
    assert capsys.readouterr().out.strip().startswith("early: 10/10 in ")  # finished, not "10/40"
    # a rule that holds only at the last step changes nothing: the run ends there anyway, stopped_at stays None
    _, hist = train.fit(loss_fn, w0, optax.sgd(0.3), 40, data=(a, b), record_steps=[0, 20, 40], record_fn=rec,
                        stop_when=lambda s, r: s >= 40, progress=False)
    assert hist.stopped_at is None and list(hist.steps) == [0, 20, 40]
    # a diverging run is reported as diverged, not as stopped, whatever the rule
    seen = []
    _, hist = train.fit(loss_fn, w0, optax.sgd(1e3), 400, data=(a, b), record_steps=[0, 400], record_fn=rec,
                        stop_when=lambda s, r: seen.append(s) or False, on_nonfinite="stop", progress=False)
    assert hist.diverged_at is not None and hist.stopped_at is None and seen == []
