"""train.fit notices divergence: the first non-finite loss or parameter stops training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import data, models, train


def _problem():
    net = models.mlp([32, 32], 2, activation="tanh")
    params = models.init_params(net, jax.random.PRNGKey(0), (-1, 64))
    split = data.digits_split(6, 6, jax.random.PRNGKey(1))
    x, y = split.x_train, jax.nn.one_hot(split.y_train % 2, 2)
    return net, params, x, y, train.mse_loss(net.apply_fn)


def _hand_loop(loss_fn, params, lr, x, y, steps):
    """Oracle: plain gradient descent, step by step in Python; the first step whose loss or update is not finite."""
    opt = optax.sgd(lr)
    state = opt.init(params)
    grad = jax.jit(jax.value_and_grad(loss_fn))
    history = [params]
    for t in range(steps):
        loss, g = grad(params, (x, y))
        upd, state = opt.update(g, state, params)
        new = optax.apply_updates(params, upd)
        finite = bool(jnp.isfinite(loss)) and all(bool(jnp.all(jnp.isfinite(l))) for l in jax.tree_util.tree_leaves(new))
        if not finite:
            return t, history
        params = new
        history.append(params)
    return None, history


def test_a_diverging_run_raises_at_the_step_it_diverges():
    net, params, x, y, loss = _problem()
    t_bad, hist = _hand_loop(loss, params, 50.0, x, y, 200)
    assert t_bad is not None and t_bad > 1  # the oracle diverges, after some finite steps
    with pytest.raises(train.DivergenceError, match=rf"diverged at step {t_bad} at learning rate 50") as err:
        train.fit(loss, params, optax.sgd(50.0), 200, data=(x, y), progress=False, learning_rate=50.0,
                  record_steps=[0, 50, 100, 200], record_fn=lambda p, s: {"loss": loss(p, (x, y))})
    last = float(loss(hist[-2], (x, y)))  # the training loss of the last finite step
    assert err.value.step == t_bad
    # float32 rounding differs between the fused loop and the step-by-step oracle, and the
    # run grows by ~30 orders of magnitude before it overflows, which amplifies it (measured
    # 2e-4); consecutive losses differ by large factors, so 1 % still pins the step.
    before = float(loss(hist[-3], (x, y)))
    assert last / before > 2
    np.testing.assert_allclose(err.value.last_finite_loss, last, rtol=1e-2)
    assert "last finite loss" in str(err.value)


def test_stop_returns_the_history_up_to_the_divergence_and_the_last_finite_parameters():
    net, params, x, y, loss = _problem()
    t_bad, hist = _hand_loop(loss, params, 50.0, x, y, 200)
    p, h = train.fit(loss, params, optax.sgd(50.0), 200, data=(x, y), progress=False, on_nonfinite="stop",
                     record_steps=[0, 5, 100, 200], record_fn=lambda p, s: {"loss": loss(p, (x, y))})
    assert h.diverged_at == t_bad
    assert list(h.steps) == [0, 5, t_bad] if t_bad > 5 else [0, t_bad]
    # The returned parameters are the oracle's after t_bad updates, not one step earlier:
    # near overflow float32 drift is amplified (single entries differ), so compare whole
    # parameter vectors, relative to how far one step moves them.
    flat = lambda q: np.concatenate([np.ravel(np.asarray(l, np.float64)) for l in jax.tree_util.tree_leaves(q)])
    got, want, prev = flat(p), flat(hist[t_bad]), flat(hist[t_bad - 1])
    assert np.linalg.norm(got - want) < 0.1 * np.linalg.norm(want - prev)
    assert all(bool(jnp.all(jnp.isfinite(l))) for l in jax.tree_util.tree_leaves(p))


def test_ignore_keeps_the_plain_loop_and_checking_does_not_change_a_finite_run():
    net, params, x, y, loss = _problem()
    _, h = train.fit(loss, params, optax.sgd(50.0), 60, data=(x, y), progress=False, on_nonfinite="ignore",
                     record_steps=[60], record_fn=lambda p, s: {"loss": loss(p, (x, y))})
    assert not np.isfinite(h["loss"][-1]) and h.diverged_at is None
    # a run that stays finite gives the same bits with and without the check
    runs = [train.fit(loss, params, optax.sgd(0.1), 40, data=(x, y), progress=False, on_nonfinite=mode)[0]
            for mode in ("raise", "ignore")]
    for a, b in zip(*(jax.tree_util.tree_leaves(r) for r in runs)):
        np.testing.assert_array_equal(a, b)


def test_bad_on_nonfinite_is_refused():
    net, params, x, y, loss = _problem()
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        train.fit(loss, params, optax.sgd(0.1), 5, data=(x, y), progress=False, on_nonfinite="warn")


@pytest.mark.parametrize("bad_label", [2, -1])
def test_fit_classifier_refuses_labels_outside_the_classes_before_training(bad_label):
    net = models.mlp([16], 2)
    params = models.init_params(net, jax.random.PRNGKey(0), (-1, 64))
    split = data.digits_split(4, 4, jax.random.PRNGKey(1))
    y_tr = np.array(split.y_train % 2)
    y_tr[3] = bad_label
    called = []
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\).*2 outputs"):
        train.fit_classifier(net.apply_fn, params, (split.x_train, y_tr, split.x_test, split.y_test % 2), 10,
                             batch_size=None, progress=False, recorders={"spy": lambda p: called.append(1)})
    assert not called  # refused before any step or record
