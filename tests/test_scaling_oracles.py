"""ntkbook.scaling.kernel_descent with several outputs, against weight-space training.

The kernel model ``g(x) = K(x, X) alpha`` with ``K = Phi Phi^T`` is the linear model
``f(x) = phi(x)^T W`` started from ``W = 0``: gradient descent on ``W`` for the loss
``(1 / 2n) sum_{i,a} (f_a(x_i) - y_ia)^2`` with ``n = y.size = N k`` (the
normalisation of :func:`ntkbook.train.mse_loss`) gives the same outputs step for
step. Oracles: ``optax.sgd`` (with momentum) on ``W``, and a hand-written numpy loop.
The existing tests all use one output, where ``N`` and ``N k`` coincide.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import scaling


def _case(n=10, m=6, p=25, k=4, seed=0):
    rng = np.random.default_rng(seed)
    phi, phi_e = rng.standard_normal((n, p)) / np.sqrt(p), rng.standard_normal((m, p)) / np.sqrt(p)
    return phi, phi_e, rng.standard_normal((n, k))


def _optax_outputs(phi, phi_e, y, lr, momentum, record):
    phi, phi_e, y = (jnp.asarray(a) for a in (phi, phi_e, y))
    loss = lambda w: 0.5 * jnp.mean((phi @ w - y) ** 2)  # noqa: E731  (1/2n) sum, n = y.size
    opt = optax.sgd(lr, momentum=momentum or None)
    w = jnp.zeros((phi.shape[1], y.shape[1]))
    state = opt.init(w)
    train, evals = [], []
    for step in range(int(record[-1]) + 1):
        if step in record:
            train.append(np.asarray(phi @ w))
            evals.append(np.asarray(phi_e @ w))
        updates, state = opt.update(jax.grad(loss)(w), state, w)
        w = optax.apply_updates(w, updates)
    return np.stack(train), np.stack(evals)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_multi_output_descent_equals_optax_on_the_weights(x64, momentum):
    phi, phi_e, y = _case()
    k, ke = phi @ phi.T, phi_e @ phi.T
    record = [0, 1, 2, 5, 30, 120]
    lr = 0.5 * y.size / np.linalg.eigvalsh(k).max()  # stable for both momenta
    ours_train, (ours_eval,) = scaling.kernel_descent(k, y, [ke], record, learning_rate=lr, momentum=momentum)
    want_train, want_eval = _optax_outputs(phi, phi_e, y, lr, momentum, record)
    assert ours_train.shape == (len(record),) + y.shape
    np.testing.assert_allclose(ours_train, want_train, atol=1e-10)
    np.testing.assert_allclose(ours_eval, want_eval, atol=1e-10)
    # the run moved: a normalisation off by the number of outputs would not match
    assert np.abs(want_train[-1] - want_train[1]).max() > 0.1


def test_multi_output_descent_equals_a_numpy_loop(x64):
    phi, phi_e, y = _case(seed=1, k=3)
    k, ke = phi @ phi.T, phi_e @ phi.T
    lr, mom = 2.0, 0.5
    n_entries = y.size
    w, v = np.zeros((phi.shape[1], y.shape[1])), np.zeros((phi.shape[1], y.shape[1]))
    for _ in range(25):
        grad = phi.T @ (phi @ w - y) / n_entries  # d/dW of (1 / 2n) ||Phi W - Y||_F^2
        v = mom * v + grad
        w = w - lr * v
    ours_train, (ours_eval,) = scaling.kernel_descent(k, y, [ke], [25], learning_rate=lr, momentum=mom)
    np.testing.assert_allclose(ours_train[0], phi @ w, atol=1e-10)
    np.testing.assert_allclose(ours_eval[0], phi_e @ w, atol=1e-10)
