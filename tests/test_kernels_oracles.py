"""ntkbook.kernels against oracles that share no code with it.

- kernel ridge regression: scikit-learn's ``KernelRidge`` (precomputed kernel) and
  ``Ridge`` in an explicit feature space (the push-through identity
  ``Phi^T (Phi Phi^T + r I)^-1 = (Phi^T Phi + r I)^-1 Phi^T``);
- kernel gradient flow / descent with a singular kernel: the linear ODE solved by
  ``scipy.linalg.expm`` of the augmented system, and a hand-written loop for the
  discrete case;
- infinite-width NTK: the exact batched/unbatched identity, and the central limit
  theorem for the one-hidden-layer eNTK (an exact mean of i.i.d. per-neuron terms).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge

from ntkbook import kernels, models


# ------------------------------------------------------------ kernel ridge regression
def _features(seed, n, m, p):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p)) / np.sqrt(p), rng.standard_normal((m, p)) / np.sqrt(p), rng


@pytest.mark.parametrize("ridge", [0.05, 0.5, 3.0])
def test_kernel_ridge_matches_sklearn_on_the_residuals(x64, ridge):
    # Docstring: f(x) = f0(x) + K(x, X) (K + ridge I)^-1 (Y - f0(X)); the ridge is added
    # as is (not times n). Oracle: sklearn's KernelRidge (alpha = ridge) fitted to the
    # residuals Y - f0(X), plus f0 on the test inputs; and Ridge on the features.
    phi, phi_t, rng = _features(0, 12, 5, 8)  # p < n: K is singular, the ridge is needed
    k, kx = phi @ phi.T, phi_t @ phi.T
    y, f0, g0 = rng.standard_normal((12, 3)), rng.standard_normal((12, 3)), rng.standard_normal((5, 3))
    ours = np.asarray(kernels.kernel_regression(k, y, kx, f0_train=f0, f0_test=g0, ridge=ridge))
    krr = KernelRidge(alpha=ridge, kernel="precomputed").fit(k, y - f0)
    np.testing.assert_allclose(ours, g0 + krr.predict(kx), rtol=1e-10, atol=1e-12)
    primal = Ridge(alpha=ridge, fit_intercept=False, solver="cholesky").fit(phi, y - f0)
    np.testing.assert_allclose(ours, g0 + primal.predict(phi_t), rtol=1e-9, atol=1e-12)


def test_kernel_ridge_with_a_full_entk_matches_ridge_in_feature_space(x64):
    # A k-output linear model f_a(x) = phi_a(x) . w has the full eNTK
    # K[i, j, a, b] = phi_a(x_i) . phi_b(x_j). Ridge regression on the N k rows
    # (phi_a(x_i), y_ia - f0_ia) predicts phi_a(x) . w on a test input: the kernel form
    # with the N k x N k solve must give the same numbers.
    n, m, c, p = 7, 4, 3, 15
    rng = np.random.default_rng(1)
    phi = rng.standard_normal((n, c, p)) / np.sqrt(p)
    phi_t = rng.standard_normal((m, c, p)) / np.sqrt(p)
    k4 = np.einsum("iap,jbp->ijab", phi, phi)
    kx4 = np.einsum("iap,jbp->ijab", phi_t, phi)
    y, f0, g0 = rng.standard_normal((n, c)), rng.standard_normal((n, c)), rng.standard_normal((m, c))
    ridge = 0.7
    ours = np.asarray(kernels.kernel_regression(k4, y, kx4, f0_train=f0, f0_test=g0, ridge=ridge))
    w = Ridge(alpha=ridge, fit_intercept=False, solver="cholesky").fit(phi.reshape(n * c, p), (y - f0).ravel()).coef_
    np.testing.assert_allclose(ours, g0 + np.einsum("map,p->ma", phi_t, w), rtol=1e-9, atol=1e-12)


# --------------------------------------------------- gradient flow at a singular kernel
def _singular_case(n=6, m=4, c=2, null=2, seed=3):
    """A PSD kernel with ``null`` exactly-zero eigenvalues and a test-train matrix with a
    component along that null space.

    For a kernel given by a feature map, ``K(x, X) v = 0`` for every null vector ``v``
    of ``K(X, X)``, so the lambda = 0 branch of eq. (2.61) would be invisible; the ODE
    ``dg/dt = -(eta/n) K(x, X) (f(X) - Y)`` that (2.61) solves is defined for any
    ``(M, N)`` matrix, and a generic one exercises that branch.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([np.zeros(null), rng.uniform(0.5, 3.0, n - null)])
    k = (q * lam) @ q.T
    kx = rng.standard_normal((m, n))
    y, f0, g0 = rng.standard_normal((n, c)), rng.standard_normal((n, c)), rng.standard_normal((m, c))
    return k, kx, y, f0, g0, q, lam


def _expm_flow(k, kx, y, f0, g0, t, rate):
    """Exact solution of d r/dt = -rate K r, d g/dt = -rate K_x r (r = f(X) - Y) by expm."""
    n, m = k.shape[0], kx.shape[0]
    a = np.zeros((n + m, n + m))
    a[:n, :n] = -rate * k
    a[n:, :n] = -rate * kx
    z = scipy.linalg.expm(a * t) @ np.vstack([f0 - y, g0])
    return y + z[:n], z[n:]


def test_flow_with_a_zero_eigenvalue_matches_expm_of_the_ode(x64):
    k, kx, y, f0, g0, q, lam = _singular_case()
    eta, norm = 0.7, y.size  # default normalization: y_train.size
    ts = np.array([0.0, 0.3, 2.0, 15.0, 3000.0, 4000.0])  # exp(-eta lambda_min t / n) < 1e-37 at the end
    ours = kernels.gradient_flow_mse(k, y, ts, f0_train=f0, k_test_train=kx, f0_test=g0, learning_rate=eta)
    for i, t in enumerate(ts):
        tr, te = _expm_flow(k, kx, y, f0, g0, t, eta / norm)
        np.testing.assert_allclose(ours.train[i], tr, atol=1e-10)
        np.testing.assert_allclose(ours.test[i], te, atol=1e-10)
    # closed form along the eigenvectors: the null-space part of the residual stays,
    # the part along lambda decays as exp(-eta lambda t / n)
    r = np.einsum("pn,tnc->tpc", q.T, np.asarray(ours.train) - y)
    r0 = q.T @ (f0 - y)
    np.testing.assert_allclose(r, np.exp(-eta * lam[None, :, None] * ts[:, None, None] / norm) * r0[None], atol=1e-10)
    # the test output drifts linearly along the null space: at late times (every other
    # mode has decayed) the slope is
    # -(eta/n) K(x, X) P_0 (f0 - Y), P_0 the projector on the null space
    p0 = q[:, :2] @ q[:, :2].T
    slope = (np.asarray(ours.test[-1]) - np.asarray(ours.test[-2])) / (ts[-1] - ts[-2])
    np.testing.assert_allclose(slope, -(eta / norm) * kx @ p0 @ (f0 - y), rtol=1e-6)


def _edge_case(edge, n=5, seed=7):
    """A kernel whose top eigenvalue puts ``eta lambda_max / n`` at ``edge`` for ``eta = 1``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.array([edge, 1.2, 0.7, 0.3, 0.05]) * n  # normalization n = y.size
    return (q * lam) @ q.T, rng.standard_normal(n), q


@pytest.mark.parametrize("edge", [1.9, 2.05, 2.6])
def test_discrete_descent_at_the_stability_edge(x64, edge):
    # Oracle: a hand loop of f <- f - (eta / n) K (f - y) and, along the top eigenvector,
    # the factor (1 - edge)^t. Below 2 it converges silently; at or past 2 the default
    # warns (and returns the exact, non-converging trajectory), "raise" refuses, "ignore" is silent.
    import warnings

    k, y, q = _edge_case(edge)
    steps = np.array([0, 1, 5, 30])
    f = np.zeros_like(y)
    loop = []
    for s in range(steps[-1] + 1):
        if s in steps:
            loop.append(f.copy())
        f = f - k @ (f - y) / y.size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = kernels.gradient_flow_mse(k, y, steps, discrete=True)
    unstable = [w for w in caught if issubclass(w.category, RuntimeWarning) and "does not converge" in str(w.message)]
    assert len(unstable) == (edge >= 2)
    if edge >= 2:
        assert f"= {edge:.3f}" in str(unstable[0].message)
    np.testing.assert_allclose(np.asarray(ours.train)[:, :, 0], np.array(loop), rtol=1e-9, atol=1e-9)
    top = (np.asarray(ours.train)[:, :, 0] - y) @ q[:, 0]
    np.testing.assert_allclose(top, (1 - edge) ** steps * (-y @ q[:, 0]), rtol=1e-9, atol=1e-12)
    if edge >= 2:
        with pytest.raises(ValueError, match="learning_rate"):
            kernels.gradient_flow_mse(k, y, steps, discrete=True, on_unstable="raise")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kernels.gradient_flow_mse(k, y, steps, discrete=True, on_unstable="ignore")
            kernels.gradient_flow_mse(k, y, steps)  # gradient flow: stable for every eta, never checked


def test_discrete_descent_edge_check_is_skipped_under_tracing(x64):
    k, y, _ = _edge_case(2.6)
    batch = jnp.stack([jnp.asarray(k), jnp.asarray(k) / 4])  # past the edge, and 0.65
    out = jax.vmap(lambda kk: kernels.gradient_flow_mse(kk, y, 3.0, discrete=True, on_unstable="raise").train)(batch)
    assert out.shape == (2, y.size, 1)


def test_discrete_descent_with_a_zero_eigenvalue_matches_a_hand_loop(x64):
    k, kx, y, f0, g0, _, _ = _singular_case(seed=4)
    eta, norm = 1.3, 5.0
    steps = np.array([0, 1, 2, 7, 40])
    ours = kernels.gradient_flow_mse(k, y, steps, f0_train=f0, k_test_train=kx, f0_test=g0, learning_rate=eta,
                                     normalization=norm, discrete=True)
    f, g = f0.copy(), g0.copy()
    for s in range(steps[-1] + 1):
        if s in steps:
            i = int(np.searchsorted(steps, s))
            np.testing.assert_allclose(ours.train[i], f, atol=1e-10)
            np.testing.assert_allclose(ours.test[i], g, atol=1e-10)
        r = f - y
        f, g = f - eta / norm * k @ r, g - eta / norm * kx @ r


@pytest.mark.parametrize("seed", range(6))
def test_flow_in_float32_keeps_the_null_space_drift(seed):
    # In float32 the zero eigenvalues of K come out of eigh as +-1e-8 noise. A noise
    # value above the cut-off (1e-12 lambda_max) must still give (decay - 1) / lambda
    # ~ -eta t / n: computed as (exp(-eta lambda t / n) - 1) / lambda, the subtraction
    # cancels (exp(-1e-9 t) rounds to 1 - a few ulp) and the drift along the null space
    # was off by up to 10 % (seed 0). Oracle: the float64 expm solution. Tolerance:
    # eigh in float32 perturbs the kernel by ~eps32 ||K|| = 4e-7 relative, which the
    # linear flow carries to the outputs for a time eta t / n = 58 (t = 1000): ~2.5e-5 of
    # the largest output; we allow 1e-4 (the bug gave 1e-3 to 0.4).
    k, kx, y, f0, g0, _, _ = _singular_case(seed=seed)
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    for discrete in (False, True):
        ours = kernels.gradient_flow_mse(f(k), f(y), 1000.0, f0_train=f(f0), k_test_train=f(kx), f0_test=f(g0),
                                         learning_rate=0.7, discrete=discrete)
        if discrete:
            fx, g = f0.copy(), g0.copy()
            for _ in range(1000):
                r = fx - y
                fx, g = fx - 0.7 / y.size * k @ r, g - 0.7 / y.size * kx @ r
            tr, te = fx, g
        else:
            tr, te = _expm_flow(k, kx, y, f0, g0, 1000.0, 0.7 / y.size)
        scale = np.abs(te).max()
        np.testing.assert_allclose(np.asarray(ours.test, np.float64), te, atol=1e-4 * scale)
        np.testing.assert_allclose(np.asarray(ours.train, np.float64), tr, atol=1e-4 * np.abs(tr).max())


# ----------------------------------------------------------------- infinite kernels
def test_infinite_kernel_batched_equals_unbatched(x64):
    # Blocks of 4 rows/columns over 6 (and 5) inputs, with padding; the oracle is
    # neural-tangents' kernel_fn called directly, unjitted. In float64 the only
    # difference is rounding in arccos near cos = 1 (the diagonal), where an error eps
    # in the cosine moves the angle by sqrt(2 eps) ~ 2e-8: rtol 1e-7. (In float32 that
    # is ~5e-4 in the angle: jitted and unjitted calls then differ by ~4e-5 on the
    # diagonal, which is why this check runs in float64.)
    net = models.mlp([64, 64], 1, b_std=0.1)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 3), jnp.float64)
    x2 = jax.random.normal(jax.random.PRNGKey(1), (5, 3), jnp.float64)
    for get in ("ntk", "nngp"):
        direct = net.kernel_fn(x, x2, get)
        np.testing.assert_allclose(kernels.infinite_kernel(net.kernel_fn, x, x2, get=get), direct, rtol=1e-7)
        np.testing.assert_allclose(kernels.infinite_kernel(net.kernel_fn, x, x2, get=get, batch_size=4), direct,
                                   rtol=1e-7)
        sym = net.kernel_fn(x, None, get)
        np.testing.assert_allclose(kernels.infinite_kernel(net.kernel_fn, x, get=get, batch_size=4), sym, rtol=1e-7)
        np.testing.assert_allclose(kernels.infinite_kernel(net.kernel_fn, x, get=get, batch_size=4),
                                   kernels.infinite_kernel(net.kernel_fn, x, get=get), rtol=1e-12)


Z = 5.0  # standard errors allowed per statistical check (two-sided normal p ~ 6e-7)


def _entk_draws(width, seeds, x):
    net = models.mlp([width], 1, W_std=np.sqrt(2.0), b_std=0.1)
    fn = jax.jit(lambda p: kernels.empirical_ntk(net.apply_fn, p, x, trace_axes=(-1,)))
    draws = np.stack([np.asarray(fn(models.init_params(net, jax.random.PRNGKey(s), (-1, x.shape[1])))) for s in seeds])
    return draws, np.asarray(kernels.infinite_kernel(net.kernel_fn, x), np.float64)


def test_one_hidden_layer_entk_is_an_unbiased_clt_draw_of_the_infinite_ntk(x64):
    # With one hidden layer in the NTK parameterisation the eNTK is an exact average of
    # `width` i.i.d. per-neuron terms (plus the read-out bias, sigma_b^2), whose mean is
    # the infinite NTK. So (i) over S independent draws each entry's mean is within Z
    # standard errors of the infinite kernel (15 distinct entries: family-wise false alarm
    # < 15 * 6e-7 under the normal approximation of a mean of 100 draws), and
    # (ii) E ||K_w - K_inf||_F^2 = c / width exactly: width * (mean squared error) is the
    # same at widths 64 and 512, checked as a difference of two independent means within
    # Z combined standard errors. A kernel off by a constant factor, or fluctuations
    # that do not shrink like 1/sqrt(width), fail (i) or (ii).
    x = jax.random.normal(jax.random.PRNGKey(7), (5, 3), jnp.float64)
    s = 100
    iu = np.triu_indices(5)
    scaled = []
    for width, offset in ((64, 0), (512, 1000)):
        draws, inf = _entk_draws(width, range(offset, offset + s), x)
        mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(s)
        z = (mean - inf)[iu] / se[iu]
        assert np.max(np.abs(z)) < Z, (width, z)
        err = width * np.sum((draws - inf) ** 2, axis=(1, 2))
        scaled.append((err.mean(), err.std(ddof=1) / np.sqrt(s)))
    (m1, s1), (m2, s2) = scaled
    assert abs(m1 - m2) < Z * np.hypot(s1, s2), scaled
    # the check has power: fluctuations that did not shrink with width (or shrank like
    # 1/width) would make width * MSE differ by a factor 8 between the two widths, a
    # difference of at least 7 min(m1, m2), far outside the band
    assert 7 * min(m1, m2) > 2 * Z * np.hypot(s1, s2), scaled


def test_gradient_flow_mse_keeps_a_singular_float32_gram_matrix():
    """A rank-deficient Gram matrix in float32 (N = 40 points in 3 dimensions, so 37
    zero eigenvalues that rounding scatters around 0) is accepted, and its flow is the
    float64 closed form to float32 accuracy; a clearly indefinite kernel is refused."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    gram = x @ x.T
    y = rng.standard_normal(40)
    lam64 = np.linalg.eigvalsh(gram.astype(np.float32).astype(np.float64))
    assert np.sum(np.abs(lam64) < 1e-6 * lam64.max()) >= 37  # singular up to rounding
    out = kernels.gradient_flow_mse(jnp.asarray(gram, jnp.float32), jnp.asarray(y, jnp.float32), 3.0).train.ravel()
    lam, vec = np.linalg.eigh(gram)
    lam = np.clip(lam, 0.0, None)
    oracle = y + vec @ (np.exp(-3.0 * lam / 40) * (vec.T @ (0.0 - y)))
    np.testing.assert_allclose(np.asarray(out, np.float64), oracle, rtol=0, atol=1e-4 * np.abs(y).max())
    bad = gram - 0.1 * lam.max() * np.outer(x[:, 0], x[:, 0]) / (x[:, 0] @ x[:, 0])
    bad = bad - 0.2 * lam.max() * np.eye(40)
    with pytest.raises(ValueError, match="k_train_train is not positive semi-definite"):
        kernels.gradient_flow_mse(jnp.asarray(bad, jnp.float32), jnp.asarray(y, jnp.float32), 3.0)
