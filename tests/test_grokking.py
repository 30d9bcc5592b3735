"""fit_recorded (full-batch training with any optimiser) and the jump/settling helpers of chapter 08."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import data, metrics, models, train


@pytest.fixture(scope="module")
def tiny():
    split = data.modular_arithmetic(7, 0.6, jax.random.PRNGKey(0))
    x_tr, x_te = data.one_hot_pairs(split.x_train, 7), data.one_hot_pairs(split.x_test, 7)
    net = models.mlp([32], 7, parameterization="standard")
    _, params = net.init_fn(jax.random.PRNGKey(1), (-1, 14))
    return net, params, (x_tr, split.y_train, x_te, split.y_test)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_fit_recorded_records_what_an_independent_evaluation_gives(tiny, loss):
    net, params, split = tiny
    final, hist = train.fit_recorded(net.apply_fn, params, split, 200, optax.adamw(1e-2, weight_decay=0.1),
                                     loss=loss, record_steps=[0, 100, 200],
                                     recorders={"norm": lambda p: metrics.tree_norm(p)}, progress=False)
    np.testing.assert_array_equal(hist.steps, [0, 100, 200])
    x_tr, y_tr, x_te, y_te = split
    # Oracle: accuracies and losses recomputed here from the returned parameters with numpy / optax.
    out_tr, out_te = np.asarray(net.apply_fn(final, x_tr)), np.asarray(net.apply_fn(final, x_te))
    assert hist["train_acc"][-1] == pytest.approx(np.mean(out_tr.argmax(1) == y_tr))
    assert hist["test_acc"][-1] == pytest.approx(np.mean(out_te.argmax(1) == y_te))
    if loss == "mse":
        expect = 0.5 * np.mean((out_tr - np.eye(7)[y_tr]) ** 2)
    else:
        expect = float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out_tr, y_tr)))
    assert hist["train_loss"][-1] == pytest.approx(expect, rel=1e-5)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist["norm"][0] == pytest.approx(float(metrics.tree_norm(params)), rel=1e-6)


def test_fit_recorded_bad_input(tiny):
    net, params, split = tiny
    opt = optax.sgd(0.1)
    with pytest.raises(ValueError, match="loss"):
        train.fit_recorded(net.apply_fn, params, split, 1, opt, loss="hinge")
    with pytest.raises(ValueError, match="integers"):
        train.fit_recorded(net.apply_fn, params, (split[0], split[1].astype(float), split[2], split[3]), 1, opt)
    with pytest.raises(ValueError, match="lie in"):
        train.fit_recorded(net.apply_fn, params, (split[0], split[1] + 7, split[2], split[3]), 1, opt)
    with pytest.raises(ValueError, match="split"):
        train.fit_recorded(net.apply_fn, params, split[:3], 1, opt)


def test_first_reaching_and_settling_step():
    steps = np.array([0, 10, 20, 30, 40, 50])
    acc = np.array([0.0, 0.2, 0.95, 0.9, 0.99, 1.0])
    assert metrics.first_reaching(steps, acc, 0.9) == 20
    assert metrics.first_reaching(steps, acc, 1.01) is None
    tr = np.array([1.0, 5.0, 9.0, 10.5, 9.8, 10.0])
    assert metrics.settling_step(steps, tr, 0.1) == 20   # |9 - 10| <= 1 from step 20 on
    assert metrics.settling_step(steps, tr, 0.03) == 40  # 10.5 is outside 3 %
    assert metrics.settling_step(steps, tr, 1e-9) == 50  # only the last record is inside
    assert metrics.settling_step(steps, np.full(6, 2.0), 0.01) == 0


def test_curve_helpers_bad_input():
    with pytest.raises(ValueError, match="rtol"):
        metrics.settling_step([0, 1], [1.0, 1.0], 0)
    with pytest.raises(ValueError, match="increasing"):
        metrics.first_reaching([0, 0], [1.0, 1.0], 0.5)
    with pytest.raises(ValueError, match="same"):
        metrics.first_reaching([0, 1, 2], [1.0, 1.0], 0.5)


def test_modular_arithmetic_rejects_bad_modulus_and_fraction():
    with pytest.raises(ValueError, match="p must"):
        data.modular_arithmetic(1, 0.5, jax.random.PRNGKey(0))
    for frac in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="train_fraction"):
            data.modular_arithmetic(5, frac, jax.random.PRNGKey(0))
