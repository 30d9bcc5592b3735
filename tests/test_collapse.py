"""The block-structured kernel model of thesis 3.3 (ntkbook.collapse) against independent oracles:
numpy's eigh, autodiff of the square loss, scipy's matrix exponential, and the thesis's
closed-form limits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from ntkbook import collapse, metrics, models

KAPPAS = (1.0, 0.6, 0.1)


def _random_values(rng):
    """Block values with diag > within > between >= 0."""
    between = rng.uniform(0.0, 1.0)
    within = between + rng.uniform(0.05, 1.0)
    return within + rng.uniform(0.05, 1.0), within, between


def _random_full_state(key, c, m, n, bias=0.0):
    k1, k2, k3 = jax.random.split(key, 3)
    H = jax.random.normal(k1, (n, c * m), jnp.float64) / np.sqrt(n)
    W = jax.random.normal(k2, (c, n), jnp.float64) / np.sqrt(n)
    b = bias + 0.1 * jax.random.normal(k3, (c,), jnp.float64)
    return collapse.FullState(H, W, b)


# ------------------------------------------------------------ Table 1
@pytest.mark.parametrize("c, m", [(2, 2), (3, 4), (10, 5), (4, 12)])
def test_eigendecomposition_matches_numpy(c, m):
    rng = np.random.default_rng(c * 100 + m)
    for _ in range(3):
        values = _random_values(rng)
        k = collapse.block_kernel(values, c, m)
        spec = collapse.block_eigendecomposition(values, c, m)
        assert spec.multiplicities == (c * (m - 1), c - 1, 1)
        predicted = np.sort(np.repeat(spec.eigenvalues, spec.multiplicities))
        np.testing.assert_allclose(predicted, np.linalg.eigvalsh(k), rtol=1e-12, atol=1e-12)
        basis = np.hstack(spec.bases)
        np.testing.assert_allclose(basis.T @ basis, np.eye(c * m), atol=1e-12)  # orthonormal, complete
        for lam, vecs in zip(spec.eigenvalues, spec.bases):
            np.testing.assert_allclose(k @ vecs, lam * vecs, atol=1e-12)
        # the thesis's own (non-orthogonal) eigenvectors of Table 1
        for lam, vecs in zip(spec.eigenvalues, collapse.table1_eigenvectors(c, m)):
            np.testing.assert_allclose(k @ vecs, lam * vecs, atol=1e-12)
        single, klass, glob = spec.eigenvalues
        assert single < klass <= glob


def test_table1_eigenvectors_have_the_stated_ranks():
    c, m = 3, 5
    single, klass, glob = collapse.table1_eigenvectors(c, m)
    assert np.linalg.matrix_rank(single) == c * (m - 1)
    assert np.linalg.matrix_rank(klass) == c - 1
    assert glob.shape == (c * m, 1)


def test_block_projection_is_the_frobenius_projection():
    # Averages per block = least squares onto span{I, Y^T Y - I, 1 1^T - Y^T Y}.
    c, m = 3, 4
    rng = np.random.default_rng(0)
    a = rng.standard_normal((c * m, c * m))
    k = a @ a.T
    proj = collapse.block_projection(k, c, m)
    y = collapse.label_matrix(c, m)
    same = y.T @ y
    basis = np.stack([np.eye(c * m), same - np.eye(c * m), 1.0 - same]).reshape(3, -1).T
    coef, *_ = np.linalg.lstsq(basis, k.ravel(), rcond=None)
    np.testing.assert_allclose(proj.ravel(), basis @ coef, atol=1e-10)
    stats = metrics.block_statistics(k, np.repeat(np.arange(c), m))
    np.testing.assert_allclose(coef, stats, rtol=1e-12)


@pytest.mark.parametrize(
    "values, match",
    [((1.0, 1.0, 0.5), "Def. 3.1"), ((1.0, 0.5, 0.6), "Def. 3.1"), ((1.0, 0.5, -0.1), "Def. 3.1"),
     ((0.5, 1.0, 0.1), "Def. 3.1"), ((1.0, 0.5), "three numbers"), ((1.0, np.nan, 0.0), "finite")],
)
def test_kernels_violating_the_ordering_raise(values, match):
    with pytest.raises(ValueError, match=match):
        collapse.block_kernel(values, 3, 4)
    with pytest.raises(ValueError, match=match):
        collapse.flow_constants(values, 3, 4)


def test_bad_layouts_raise():
    with pytest.raises(ValueError, match="num_classes"):
        collapse.block_kernel(KAPPAS, 1, 4)
    with pytest.raises(ValueError, match="per_class"):
        collapse.block_eigendecomposition(KAPPAS, 3, 1)
    with pytest.raises(ValueError, match="balanced"):
        collapse.balanced_layout(np.array([0, 0, 0, 1, 1]))
    with pytest.raises(ValueError, match="sorted"):
        collapse.balanced_layout(np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="0..C-1"):
        collapse.balanced_layout(np.array([1, 1, 2, 2]))
    assert collapse.balanced_layout(np.repeat(np.arange(4), 3)) == (4, 3)
    # unbalanced N for the dynamics: 7 samples cannot be 2 classes of m
    with pytest.raises(ValueError, match="balanced"):
        collapse.residuals(jnp.ones((2, 3)), jnp.ones((3, 7)), jnp.ones(2))


# ------------------------------------------------------ eqs. 16-18, 21-24
def test_feature_split_is_class_means_and_within_class_scatter(x64):
    c, m, n = 3, 5, 4
    H = jax.random.normal(jax.random.PRNGKey(0), (n, c * m), jnp.float64)
    H1, H2 = collapse.split_features(H, c, m)
    blocks = np.asarray(H).reshape(n, c, m)
    np.testing.assert_allclose(H1, blocks.mean(axis=2), atol=1e-12)
    dev = blocks - blocks.mean(axis=2, keepdims=True)
    scatter = np.einsum("icm,jcm->ij", dev, dev) / m
    np.testing.assert_allclose(H2 @ H2.T, scatter, atol=1e-12)
    np.testing.assert_allclose(collapse.merge_features(H1, H2), H, atol=1e-12)
    q1, q2 = collapse.label_basis(c, m)
    q = np.hstack([q1, q2])
    np.testing.assert_allclose(q.T @ q, np.eye(c * m), atol=1e-12)
    # eq. 21 with P = I: Y Q = [sqrt(m) I, 0]
    y = collapse.label_matrix(c, m)
    np.testing.assert_allclose(y @ q, np.hstack([np.sqrt(m) * np.eye(c), np.zeros((c, c * (m - 1)))]), atol=1e-12)


def test_residual_parts(x64):
    c, m, n = 3, 4, 5
    H, W, b = _random_full_state(jax.random.PRNGKey(1), c, m, n)
    r, r_class, r_global = collapse.residuals(W, H, b)
    y = collapse.label_matrix(c, m)
    np.testing.assert_allclose(r, W @ H + b[:, None] - y, atol=1e-12)
    np.testing.assert_allclose(r_class, r @ y.T @ y / m, atol=1e-12)        # eq. 17
    np.testing.assert_allclose(r_global, r @ np.ones((c * m, c * m)) / (c * m), atol=1e-12)  # eq. 18
    parts = collapse.residual_components(r, c, m)
    np.testing.assert_allclose(sum(parts), r, atol=1e-12)
    for i in range(3):
        for j in range(i):
            assert abs(float(jnp.sum(parts[i] * parts[j]))) < 1e-12


# --------------------------------------------------------- eqs. 13-15
def test_residual_components_decay_at_the_three_rates_in_linear_dynamics(x64):
    c, m = 4, 5
    values = (2.0, 1.2, 0.3)
    k = collapse.block_kernel(values, c, m)
    single, klass, glob = collapse.block_eigenvalues(values, c, m)
    r0 = np.random.default_rng(0).standard_normal((2, c * m))   # two output neurons
    parts0 = [np.linalg.norm(p) for p in collapse.residual_components(r0, c, m)]
    for t in (0.1, 0.5, 1.3):
        rt = r0 @ scipy.linalg.expm(-k * t)                      # gradient flow dr/dt = -K r (eq. 9)
        parts = [np.linalg.norm(p) for p in collapse.residual_components(rt, c, m)]
        for p, p0, lam in zip(parts, parts0, (glob, klass, single)):
            assert p == pytest.approx(p0 * np.exp(-lam * t), rel=1e-10)
    eta = 0.05                                                   # gradient descent, eqs. 13-15
    rt = r0.copy()
    for step in range(1, 31):
        rt = rt - eta * rt @ k
        parts = [np.linalg.norm(p) for p in collapse.residual_components(rt, c, m)]
        for p, p0, lam in zip(parts, parts0, (glob, klass, single)):
            assert p == pytest.approx(p0 * abs(1 - eta * lam) ** step, rel=1e-9)


# ---------------------------------------------------- eqs. 19 and 25
def test_full_rhs_is_kernel_gradient_flow_of_the_square_loss(x64):
    c, m, n = 3, 4, 6
    state = _random_full_state(jax.random.PRNGKey(2), c, m, n)
    y = jnp.asarray(collapse.label_matrix(c, m))
    loss = lambda H, W, b: 0.5 * jnp.sum((W @ H + b[:, None] - y) ** 2)  # eq. 4  # noqa: E731
    gH, gW, gb = jax.grad(loss, argnums=(0, 1, 2))(*state)
    theta_h = jnp.asarray(collapse.block_kernel(KAPPAS, c, m))
    dot = collapse.rhs_full(state, KAPPAS)
    np.testing.assert_allclose(dot.H, -gH @ theta_h, atol=1e-12)  # dh(x_i) = -sum_j Theta^h(x_i, x_j) dL/dh(x_j)
    np.testing.assert_allclose(dot.W, -gW, atol=1e-12)
    np.testing.assert_allclose(dot.b, -gb, atol=1e-12)
    frozen = collapse.rhs_full(state, KAPPAS, train_bias=False)
    np.testing.assert_allclose(frozen.b, 0.0)


def test_reduced_rhs_is_the_projection_of_the_full_rhs(x64):
    # Checks eq. 25, including the + sign in dW/dt (the proof's eq. 40 prints a minus).
    c, m, n = 3, 5, 7
    state = _random_full_state(jax.random.PRNGKey(3), c, m, n)
    dot = collapse.rhs_full(state, KAPPAS)
    dH1, dH2 = collapse.split_features(dot.H, c, m)
    red = collapse.rhs_reduced(collapse.reduce_state(state), KAPPAS)
    for got, want in zip(red, (dH1, dH2, dot.W, dot.b)):
        np.testing.assert_allclose(got, want, atol=1e-12)
    # and the minus sign of eq. 40 would give a different dW/dt
    H1, H2, W, b = collapse.reduce_state(state)
    r1 = W @ H1 + b[:, None] - jnp.eye(c)
    assert float(jnp.abs(-m * (r1 @ H1.T - W @ H2 @ H2.T) - red.W).max()) > 1e-3


def test_invariant_has_zero_time_derivative(x64):
    c, m, n = 4, 3, 6
    for seed in range(3):
        state = collapse.reduce_state(_random_full_state(jax.random.PRNGKey(seed), c, m, n))
        dot = collapse.rhs_reduced(state, KAPPAS)
        _, dE = jax.jvp(lambda H1, H2, W: collapse.invariant(W, H1, H2, KAPPAS),
                        (state.H1, state.H2, state.W), (dot.H1, dot.H2, dot.W))
        E = collapse.invariant(state.W, state.H1, state.H2, KAPPAS)
        assert float(jnp.abs(dE).max()) < 1e-12 * max(1.0, float(jnp.abs(E).max()))


def test_invariant_matches_the_class_statistics_implementation(x64):
    # Second implementation (metrics, via class means and within-class scatter).
    c, m, n = 3, 4, 5
    H, W, b = _random_full_state(jax.random.PRNGKey(4), c, m, n)
    H1, H2 = collapse.split_features(H, c, m)
    ww, s = metrics.invariant_terms(np.asarray(H).T, np.repeat(np.arange(c), m), W, KAPPAS)
    np.testing.assert_allclose(collapse.invariant(W, H1, H2, KAPPAS), ww - s, atol=1e-12)


def test_invariant_drift_scales_with_solver_tolerance(x64):
    c, m, n = 4, 5, 8
    state = collapse.reduce_state(_random_full_state(jax.random.PRNGKey(5), c, m, n))
    ts = np.linspace(0.0, 20.0, 11)
    drift = {}
    for tol in (1e-5, 1e-7, 1e-9):
        traj = collapse.integrate(state, KAPPAS, ts, rtol=tol, atol=tol)
        E = collapse.invariant(traj.states.W, traj.states.H1, traj.states.H2, KAPPAS)
        drift[tol] = float(jnp.abs(E - E[0]).max())
        # local error per step <= tol (relative to O(1) entries); over ~200-300 steps the
        # accumulated drift stays within 100 x tol (measured 0.2-6 x tol)
        assert drift[tol] < 100 * tol, (tol, drift[tol])
    # and it shrinks with the tolerance: a factor 100 in tol gives at least 20 in drift
    assert drift[1e-5] > 20 * drift[1e-7] > 400 * drift[1e-9]


def test_full_and_reduced_systems_give_the_same_trajectory(x64):
    c, m, n = 3, 4, 6
    full = _random_full_state(jax.random.PRNGKey(6), c, m, n)
    ts = np.linspace(0.0, 5.0, 6)
    a = collapse.integrate(full, KAPPAS, ts, rtol=1e-10, atol=1e-12)
    b = collapse.integrate(collapse.reduce_state(full), KAPPAS, ts, rtol=1e-10, atol=1e-12)
    assert isinstance(a.states, collapse.FullState) and isinstance(b.states, collapse.ReducedState)
    H1, H2 = collapse.split_features(a.states.H[-1], c, m)
    for got, want in ((H1, b.states.H1[-1]), (H2, b.states.H2[-1]), (a.states.W[-1], b.states.W[-1])):
        np.testing.assert_allclose(got, want, atol=1e-8)


def test_balanced_state_has_zero_invariant_and_centred_features(x64):
    c, m, n = 4, 5, 9
    s = collapse.balanced_state(jax.random.PRNGKey(7), KAPPAS, num_classes=c, per_class=m, feature_dim=n)
    E = collapse.invariant(s.W, s.H1, s.H2, KAPPAS)
    assert float(jnp.abs(E).max()) < 1e-12
    np.testing.assert_allclose(s.H1.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(s.b, 1.0 / c)
    with pytest.raises(ValueError, match="rank"):
        collapse.balanced_state(jax.random.PRNGKey(7), KAPPAS, num_classes=c, per_class=m, feature_dim=n, rank=c + 1)


def test_equal_biases_limit_matches_the_closed_form(x64):
    # Thesis 3.3, Remark 4 and App. B.4: with E = 0 and equal biases b = beta 1 (here held
    # fixed), W W^T -> sqrt(m / mu_class) (I - gamma 1 1^T) with
    # gamma = (1 - |1 - beta C| sqrt(1 - alpha C)) / C (eq. 68), NC2 -> 0, and NC3 tends to
    # sqrt(2 - 2 sqrt((C - 1) / (C (1 - gamma)))) (our consequence of eqs. 62 and 67).
    c, m, n, beta = 4, 4, 7, 0.0
    s0 = collapse.balanced_state(jax.random.PRNGKey(8), KAPPAS, num_classes=c, per_class=m, feature_dim=n,
                                 feature_scale=0.3, bias=beta)
    traj = collapse.integrate(s0, KAPPAS, np.array([0.0, 150.0]), rtol=1e-9, atol=1e-11, train_bias=False)
    H1, H2, W, b = (a[-1] for a in traj.states)
    mu_s, mu_c, alpha = collapse.flow_constants(KAPPAS, c, m)
    gamma = (1 - abs(1 - beta * c) * np.sqrt(1 - alpha * c)) / c
    np.testing.assert_allclose(W @ W.T, np.sqrt(m / mu_c) * (np.eye(c) - gamma * np.ones((c, c))), atol=1e-6)
    h = np.asarray(collapse.merge_features(H1, H2)).T
    y = np.repeat(np.arange(c), m)
    assert metrics.nc2(h, y) < 1e-6
    nc3 = np.sqrt(2 - 2 * np.sqrt((c - 1) / (c * (1 - gamma))))
    assert metrics.nc3(h, y, W) == pytest.approx(nc3, abs=1e-6)
    assert nc3 > 0.3  # so NC3 really fails


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(state0=(1, 2, 3)), TypeError, "FullState"),
        (dict(ts=[0.0]), ValueError, "increasing"),
        (dict(ts=[0.0, 2.0, 1.0]), ValueError, "increasing"),
        (dict(rtol=0.0), ValueError, "rtol"),
        (dict(kappas=(1.0, 0.2, 0.5)), ValueError, "Def. 3.1"),
    ],
)
def test_integrate_rejects_bad_input(x64, kwargs, err, match):
    state = collapse.reduce_state(_random_full_state(jax.random.PRNGKey(0), 2, 3, 4))
    args = dict(state0=state, kappas=KAPPAS, ts=[0.0, 1.0]) | kwargs
    with pytest.raises(err, match=match):
        collapse.integrate(args.pop("state0"), args.pop("kappas"), args.pop("ts"), **args)


# ----------------------------------------------- models.split_mlp (read-out)
@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_split_mlp_reassembles_the_network(parameterization):
    net = models.split_mlp([16, 12], 5, parameterization=parameterization, activation="tanh")
    params = models.init_params(net.model, jax.random.PRNGKey(0), (-1, 7))
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 7))
    W, b = net.readout(params)
    h = net.features(params, x)
    assert h.shape == (6, 12) and W.shape == (5, 12) and b.shape == (5,)
    np.testing.assert_allclose(net.model.apply_fn(params, x), h @ W.T + b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------- metrics: NC1-NC4 and block statistics
def _collapsed(c=4, m=5, n=7, scale=2.0, seed=0):
    """Features equal to their class means, which form a simplex ETF; W = M^T (self-dual); b = 0."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, c)))
    means = scale * u @ (np.eye(c) - 1.0 / c)   # (n, C): centred, equal norms, equal angles
    y = np.repeat(np.arange(c), m)
    return means[:, y].T, y, 0.7 * means.T, np.zeros(c)


def test_nc_metrics_vanish_on_a_collapsed_configuration():
    h, y, w, b = _collapsed()
    got = metrics.neural_collapse(h, y, w, b)
    for value in got:
        assert abs(value) < 1e-12, got
    # the ETF Gram matrix is what nc2 compares with: unit diagonal, -1/(C-1) off it
    etf = metrics.simplex_etf(4)
    np.testing.assert_allclose(np.diag(etf), 1.0)
    np.testing.assert_allclose(etf[0, 1], -1.0 / 3)


def test_nc_metrics_are_positive_on_perturbed_configurations():
    h, y, w, b = _collapsed()
    rng = np.random.default_rng(1)
    noisy = h + 0.3 * rng.standard_normal(h.shape)
    assert metrics.nc1(noisy, y) > 1e-3
    stretched = h.copy()
    stretched[y == 0] *= 2.0                       # class 0 further out: unequal norms, no ETF
    assert metrics.nc2(stretched, y) > 1e-2
    assert metrics.nc3(h, y, w + 0.5 * rng.standard_normal(w.shape)) > 1e-2
    # biases that favour class 0 by more than the margin flip every other class's decision
    assert metrics.nc4(h, y, w, np.array([100.0, 0, 0, 0])) == pytest.approx(0.75)
    # orthogonal W^T and M give NC3 = sqrt(2)
    hh, yy, _, _ = _collapsed(c=3, m=2, n=8)
    m_cols = np.stack([hh[yy == k].mean(0) for k in range(3)], 1)
    q, _ = np.linalg.qr(np.hstack([m_cols, rng.standard_normal((8, 3))]))
    assert metrics.nc3(hh, yy, q[:, 3:].T) == pytest.approx(np.sqrt(2), abs=1e-12)


def test_nc1_closed_form_two_classes_on_a_line():
    # means +-1, within-class values +-s: Sigma_W = s^2, Sigma_B = 1, NC1 = s^2 / C
    s = 0.3
    h = np.array([[-1 - s], [-1 + s], [1 - s], [1 + s]])
    y = np.array([0, 0, 1, 1])
    assert metrics.nc1(h, y) == pytest.approx(s**2 / 2, rel=1e-12)
    assert metrics.within_class_std(h, y) == pytest.approx(s, rel=1e-12)


def test_block_statistics_of_a_block_kernel_are_its_values():
    values = (2.0, 0.7, 0.2)
    k = collapse.block_kernel(values, 3, 4)
    np.testing.assert_allclose(metrics.block_statistics(k, np.repeat(np.arange(3), 4)), values, rtol=1e-12)
    # label order does not matter: permute samples and labels together
    perm = np.random.default_rng(0).permutation(12)
    np.testing.assert_allclose(metrics.block_statistics(k[np.ix_(perm, perm)], np.repeat(np.arange(3), 4)[perm]),
                               values, rtol=1e-12)


def test_nc_metrics_reject_bad_input():
    h, y, w, b = _collapsed()
    with pytest.raises(ValueError, match="labels"):
        metrics.nc1(h, y.astype(float))
    with pytest.raises(ValueError, match="labels"):
        metrics.nc2(h, y + 1)
    with pytest.raises(ValueError, match="weights"):
        metrics.nc3(h, y, w.T)
    with pytest.raises(ValueError, match="bias"):
        metrics.nc4(h, y, w, np.zeros(3))
    with pytest.raises(ValueError, match="features"):
        metrics.nc1(h[0], y)
    with pytest.raises(ValueError, match="balanced"):
        metrics.invariant_norm(h[1:], y[1:], w, KAPPAS)
    with pytest.raises(ValueError, match="Def. 3.1"):
        metrics.invariant_alignment(h, y, w, (1.0, 0.2, 0.5))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.block_statistics(np.eye(5), np.array([0, 0, 1, 1, 2]))


# ------------------------------------------------ misaligned read-out, metrics along a solution
def test_misalign_readout_adds_a_part_the_features_cannot_see(x64):
    c, m, n = 3, 4, 9
    s0 = collapse.balanced_state(jax.random.PRNGKey(0), KAPPAS, num_classes=c, per_class=m, feature_dim=n)
    s1 = collapse.misalign_readout(s0, jax.random.PRNGKey(1), 2.0)
    v = (s1.W - s0.W) / 2.0
    np.testing.assert_allclose(jnp.linalg.norm(v), np.sqrt(c), rtol=1e-12)
    np.testing.assert_allclose(v @ collapse.merge_features(s0.H1, s0.H2), 0.0, atol=1e-12)
    np.testing.assert_allclose(s0.W @ v.T, 0.0, atol=1e-12)
    for a, b in ((s1.H1, s0.H1), (s1.H2, s0.H2), (s1.b, s0.b)):
        np.testing.assert_array_equal(a, b)
    E0 = collapse.invariant(s0.W, s0.H1, s0.H2, KAPPAS)
    E1 = collapse.invariant(s1.W, s1.H1, s1.H2, KAPPAS)
    np.testing.assert_allclose(jnp.abs(E0).max(), 0.0, atol=1e-12)
    # on the directions outside the features and W, E1 is exactly strength^2 V^T V / m
    seen = np.hstack([s0.H1, s0.H2, s0.W.T])
    u, sv, _ = np.linalg.svd(seen)
    perp = u[:, int(np.sum(sv > 1e-10 * sv.max())):]
    proj = perp @ perp.T
    np.testing.assert_allclose(proj @ E1 @ proj, 4.0 * v.T @ v / m, atol=1e-12)
    assert float(jnp.linalg.norm(v.T @ v)) > 0.1
    assert metrics.invariant_alignment(np.asarray(collapse.merge_features(s1.H1, s1.H2)).T,
                                       np.repeat(np.arange(c), m), s1.W, KAPPAS) < 0.99
    with pytest.raises(ValueError, match="strength"):
        collapse.misalign_readout(s0, jax.random.PRNGKey(1), -1.0)
    with pytest.raises(ValueError, match="no direction"):
        tight = collapse.balanced_state(jax.random.PRNGKey(0), KAPPAS, num_classes=c, per_class=m, feature_dim=c + 1)
        collapse.misalign_readout(collapse.misalign_readout(tight, jax.random.PRNGKey(2), 1.0), jax.random.PRNGKey(3), 1.0)
