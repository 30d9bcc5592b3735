"""neural-tangents' own behaviour, on the pinned and patched stack, against our own oracles.

Every neural-tangents function the library or a chapter calls is checked here
against an independent computation (a hand Jacobian contraction, closed-form
kernels, Gauss-Hermite quadrature, scipy's matrix exponential, a Monte Carlo
average with its standard error), so a change of pin that breaks one fails
``make test``. Functions: ``nt.empirical_ntk_fn`` (three implementations),
``nt.batch``, ``nt.linearize``, the ``stax`` layers the book builds (Dense, Conv,
Flatten, Relu, Erf, ElementwiseNumerical, Identity, serial) and their analytic
``kernel_fn``, ``nt.monte_carlo_kernel_fn``, ``nt.predict.gradient_descent_mse``,
``nt.predict.gradient_descent_mse_ensemble`` and ``nt.predict.max_learning_rate``
(patched in :mod:`ntkbook._compat`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ntkbook  # noqa: F401  (patches neural-tangents before it is imported)
from ntkbook import kernels, models

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

KEY = jax.random.PRNGKey(0)
Z = 5.0  # standard errors allowed in a statistical check


def _hand_ntk(apply_fn, params, x1, x2):
    """Theta = J1 J2^T from full Jacobians (jacrev), flattened over parameters: (N1, N2, k, k)."""
    def jac(x):
        j = jax.jacrev(apply_fn)(params, x)
        leaves = [leaf.reshape(leaf.shape[0], leaf.shape[1], -1) for leaf in jax.tree_util.tree_leaves(j)]
        return jnp.concatenate(leaves, axis=-1)  # (N, k, P)

    j1, j2 = jac(x1), jac(x2)
    return jnp.einsum("ikp,jlp->ijkl", j1, j2)


@pytest.mark.parametrize("impl", ["jacobian", "ntvp", "structured"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_empirical_ntk_fn_equals_a_hand_jacobian_contraction(x64, impl, arch):
    if arch == "mlp":
        net = models.mlp([7, 5], 3, activation="erf", b_std=0.3)
        x1, x2 = jax.random.normal(KEY, (4, 6)), jax.random.normal(jax.random.PRNGKey(1), (3, 6))
        shape = (-1, 6)
    else:
        net = models.cnn([3], 2, activation="relu", b_std=0.2)
        x1, x2 = jax.random.normal(KEY, (3, 4, 4, 2)), jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 2))
        shape = (-1, 4, 4, 2)
    params = models.init_params(net, KEY, shape)
    code = {"jacobian": nt.NtkImplementation.JACOBIAN_CONTRACTION, "ntvp": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
            "structured": nt.NtkImplementation.STRUCTURED_DERIVATIVES}[impl]
    want = np.asarray(_hand_ntk(net.apply_fn, params, x1, x2))
    full = nt.empirical_ntk_fn(net.apply_fn, trace_axes=(), implementation=code, vmap_axes=0)(x1, x2, params)
    np.testing.assert_allclose(np.asarray(full), want, rtol=1e-10, atol=1e-12)
    traced = nt.empirical_ntk_fn(net.apply_fn, trace_axes=(-1,), implementation=code)(x1, x2, params)
    # trace_axes=(-1,) is the mean over the k diagonal output pairs (trace / k).
    k = want.shape[-1]
    np.testing.assert_allclose(np.asarray(traced), np.trace(want, axis1=2, axis2=3) / k, rtol=1e-10, atol=1e-12)


def test_batch_equals_the_unbatched_kernels(x64):
    net = models.mlp([16], 2, activation="relu")
    params = models.init_params(net, KEY, (-1, 5))
    x = jax.random.normal(KEY, (12, 5))
    entk = nt.empirical_ntk_fn(net.apply_fn, trace_axes=(-1,))
    np.testing.assert_allclose(np.asarray(nt.batch(entk, batch_size=4)(x, x, params)),
                               np.asarray(entk(x, x, params)), rtol=1e-12, atol=1e-12)
    for get in ("ntk", "nngp"):
        # ReLU's arc-cosine kernel goes through arccos(cos), which amplifies rounding near
        # cos = 1: a diagonal entry computed in another block differs by ~1e-9 (relative).
        np.testing.assert_allclose(np.asarray(nt.batch(net.kernel_fn, batch_size=3)(x, x, get)),
                                   np.asarray(net.kernel_fn(x, x, get)), rtol=1e-7, atol=1e-12)


def _relu_one_layer(x1, x2, w_var, b_var):
    """NNGP and NTK of Dense -> Relu -> Dense (NTK parameterisation) by the arc-cosine closed form."""
    n0 = x1.shape[1]
    s12 = w_var * x1 @ x2.T / n0 + b_var
    s11 = w_var * np.sum(x1**2, 1) / n0 + b_var
    s22 = w_var * np.sum(x2**2, 1) / n0 + b_var
    norm = np.sqrt(np.outer(s11, s22))
    cos = np.clip(s12 / norm, -1, 1)
    th = np.arccos(cos)
    e_relu = norm * (np.sin(th) + (np.pi - th) * cos) / (2 * np.pi)  # E[relu(u) relu(v)]
    e_step = (np.pi - th) / (2 * np.pi)  # E[relu'(u) relu'(v)]
    nngp = w_var * e_relu + b_var
    ntk = nngp + w_var * e_step * s12
    return nngp, ntk


def test_stax_relu_kernels_equal_the_arc_cosine_closed_form(x64):
    w_std, b_std = 1.3, 0.4
    _, _, kernel_fn = stax.serial(stax.Dense(8, W_std=w_std, b_std=b_std), stax.Relu(),
                                  stax.Dense(1, W_std=w_std, b_std=b_std))
    x1 = np.asarray(jax.random.normal(KEY, (5, 3)))
    x2 = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (4, 3)))
    nngp, ntk = _relu_one_layer(x1, x2, w_std**2, b_std**2)
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    np.testing.assert_allclose(np.asarray(k.nngp), nngp, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(k.ntk), ntk, rtol=1e-10)


def test_stax_erf_nngp_equals_its_closed_form(x64):
    _, _, kernel_fn = stax.serial(stax.Dense(8, W_std=1.5, b_std=0.0), stax.Erf(), stax.Dense(1, W_std=1.0, b_std=0.0))
    x = np.asarray(jax.random.normal(KEY, (5, 4)))
    s = 2.25 * x @ x.T / 4
    d = np.diag(s)
    want = 2 / np.pi * np.arcsin(2 * s / np.sqrt(np.outer(1 + 2 * d, 1 + 2 * d)))
    np.testing.assert_allclose(np.asarray(kernel_fn(x, x, "nngp")), want, rtol=1e-10)


def test_elementwise_numerical_tanh_equals_gauss_hermite_quadrature(x64):
    # models.mlp(activation="tanh") uses stax.ElementwiseNumerical(tanh, deg=32).
    net = models.mlp([8], 1, activation="tanh", W_std=1.2, b_std=0.0)
    x = np.array([[1.0, 0.0], [0.6, 0.8]])
    q = 1.44 * x @ x.T / 2
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # probabilists' Hermite: E over N(0, 1)
    weights = weights / weights.sum()

    def expect(f, a, b, c):  # E[f(u) f(v)] for (u, v) ~ N(0, [[a, c], [c, b]])
        u = np.sqrt(a) * nodes[:, None]
        rho = c / np.sqrt(a * b)
        v = np.sqrt(b) * (rho * nodes[:, None] + np.sqrt(1 - rho**2) * nodes[None, :])
        return np.sum(weights[:, None] * weights[None, :] * f(u) * f(v))

    want = np.array([[expect(np.tanh, q[i, i], q[j, j], q[i, j]) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(np.asarray(net.kernel_fn(x, x, "nngp")), 1.44 * want, rtol=1e-6)


def test_monte_carlo_kernel_agrees_with_the_analytic_kernel_within_its_standard_error(x64):
    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512, W_std=1.5, b_std=0.1), stax.Erf(),
                                               stax.Dense(1, W_std=1.5, b_std=0.1))
    x = np.asarray(jax.random.normal(KEY, (3, 4)))
    draws = np.stack([np.asarray(nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(s), n_samples=1,
                                                          trace_axes=(-1,))(x, x, "ntk")) for s in range(30)])
    exact = np.asarray(kernel_fn(x, x, "ntk"))
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(mean - exact) <= Z * se + 1e-12), (mean, exact, se)
    # and it is not trivially close: the draws do vary.
    assert np.all(se > 0)


def test_linearize_is_the_first_order_taylor_model(x64):
    net = models.mlp([6], 2, activation="tanh")
    p0 = models.init_params(net, KEY, (-1, 3))
    x = jax.random.normal(KEY, (4, 3))
    f_lin = nt.linearize(net.apply_fn, p0)
    dp = jax.tree_util.tree_map(lambda a: 0.01 * jnp.ones_like(a), p0)
    shifted = jax.tree_util.tree_map(jnp.add, p0, dp)
    np.testing.assert_allclose(np.asarray(f_lin(p0, x)), np.asarray(net.apply_fn(p0, x)), rtol=1e-12)
    jvp = jax.jvp(lambda p: net.apply_fn(p, x), (p0,), (dp,))[1]
    np.testing.assert_allclose(np.asarray(f_lin(shifted, x)), np.asarray(net.apply_fn(p0, x) + jvp), rtol=1e-10)


def _kernel_problem():
    net = models.mlp([32], 1, activation="erf", b_std=0.1)
    xtr = np.asarray(jax.random.normal(KEY, (6, 3)))
    xte = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, 3)))
    ytr = np.sin(xtr[:, :1])
    return net, xtr, xte, ytr


def test_predict_gradient_descent_mse_equals_the_matrix_exponential(x64):
    net, xtr, xte, ytr = _kernel_problem()
    k = np.asarray(net.kernel_fn(xtr, xtr, "ntk"))
    kx = np.asarray(net.kernel_fn(xte, xtr, "ntk"))
    f0, g0 = 0.3 * np.ones_like(ytr), -0.2 * np.ones((2, 1))
    lr, t, n = 0.7, 5.0, ytr.size
    pred = nt.predict.gradient_descent_mse(k, ytr, learning_rate=lr)
    train, test = pred(t, f0, g0, kx)
    decay = scipy.linalg.expm(-lr * t * k / n)  # d f/dt = -(lr / n) K (f - y), n = y_train.size
    np.testing.assert_allclose(np.asarray(train), ytr + decay @ (f0 - ytr), rtol=1e-9)
    want_test = g0 + kx @ np.linalg.solve(k, (np.eye(len(k)) - decay) @ (ytr - f0))
    np.testing.assert_allclose(np.asarray(test), want_test, rtol=1e-8)
    # our closed form (kernels.gradient_flow_mse) is the same solution
    ours = kernels.gradient_flow_mse(k, ytr, t, f0_train=f0, k_test_train=kx, f0_test=g0, learning_rate=lr)
    np.testing.assert_allclose(np.asarray(ours.train), np.asarray(train), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(ours.test), np.asarray(test), rtol=1e-8)


def test_predict_ensemble_mean_is_kernel_regression_in_the_limit(x64):
    net, xtr, xte, ytr = _kernel_problem()
    predict = nt.predict.gradient_descent_mse_ensemble(net.kernel_fn, xtr, ytr, learning_rate=1.0)
    mean = predict(None, xte, "ntk", compute_cov=False)
    k = np.asarray(net.kernel_fn(xtr, xtr, "ntk"))
    kx = np.asarray(net.kernel_fn(xte, xtr, "ntk"))
    np.testing.assert_allclose(np.asarray(mean), kx @ np.linalg.solve(k, ytr), rtol=1e-8)
    # at a finite time the mean follows the same exponential as gradient_descent_mse from f0 = 0
    t = 3.0
    decay = scipy.linalg.expm(-t * k / ytr.size)
    np.testing.assert_allclose(np.asarray(predict(t, xte, "ntk", compute_cov=False)),
                               kx @ np.linalg.solve(k, (np.eye(len(k)) - decay) @ ytr), rtol=1e-8)


def test_max_learning_rate_is_two_n_over_the_largest_eigenvalue(x64):
    _, xtr, _, _ = _kernel_problem()
    k = np.asarray(models.mlp([32], 1).kernel_fn(xtr, xtr, "ntk"))
    lam = np.linalg.eigvalsh(k)[-1]
    assert float(nt.predict.max_learning_rate(k)) == pytest.approx(2 * len(k) / lam, rel=1e-10)
    assert float(nt.predict.max_learning_rate(k, y_train_size=12, momentum=0.5)) == pytest.approx(
        2 * 1.5 * 12 / lam, rel=1e-10)


def test_vmapped_gradient_descent_mse_over_initialisations_is_a_known_limitation():
    """Building ``nt.predict.gradient_descent_mse`` from a kernel traced inside ``jax.vmap``
    (one eNTK per initialisation) leaks a tracer on the pinned neural-tangents
    (upstream ``testNTKMeanCovPrediction0``). The book never does this; the working
    form is :func:`ntkbook.kernels.gradient_flow_mse`, which vmaps. If a new pin makes
    the first form work, this test fails: update ``_compat.patch_predict``'s docstring."""
    net, xtr, _, ytr = _kernel_problem()
    ps = models.init_ensemble(net, KEY, (-1, 3), 3)
    entk = nt.empirical_ntk_fn(net.apply_fn, trace_axes=(-1,), vmap_axes=0)

    def with_nt(p):
        return nt.predict.gradient_descent_mse(entk(xtr, None, p), ytr, learning_rate=1.0)(2.0, net.apply_fn(p, xtr))

    with pytest.raises(jax.errors.UnexpectedTracerError):
        jax.vmap(with_nt)(ps)

    def with_ours(p):
        return kernels.gradient_flow_mse(entk(xtr, None, p), ytr, 2.0, f0_train=net.apply_fn(p, xtr)).train

    batched = jax.vmap(with_ours)(ps)
    for i in range(3):
        p = jax.tree_util.tree_map(lambda a: a[i], ps)
        loop = nt.predict.gradient_descent_mse(entk(xtr, None, p), ytr, learning_rate=1.0)(2.0, net.apply_fn(p, xtr))
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(loop), rtol=2e-4, atol=1e-5)
