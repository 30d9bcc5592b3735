"""eNTK implementations against our plain-JAX reference, batching, infinite kernels,
and the closed-form flow against neural-tangents.predict and scipy.linalg.expm."""

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
import pytest
import scipy.linalg

from ntkbook import kernels, models

KEY = jax.random.PRNGKey(0)
IMPLS = ("structured", "jacobian", "ntvp", "auto")


def _mlp_case():
    net = models.mlp([48, 32], 3)
    x1 = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (4, 5))
    return net, models.init_params(net, KEY, (-1, 5)), x1, x2


def _cnn_case():
    net = models.cnn([6, 5], 4)
    x1 = jax.random.normal(jax.random.PRNGKey(1), (5, 8, 8, 1))
    x2 = jax.random.normal(jax.random.PRNGKey(2), (3, 8, 8, 1))
    return net, models.init_params(net, KEY, (-1, 8, 8, 1)), x1, x2


def _explicit_jacobian_ntk(apply_fn, params, x1, x2):
    """Third oracle: materialise the Jacobians with jax.jacrev and multiply."""
    def jac(x):
        j = jax.jacrev(apply_fn)(params, x)
        leaves = [leaf.reshape(leaf.shape[:2] + (-1,)) for leaf in jax.tree_util.tree_leaves(j)]
        return jnp.concatenate(leaves, axis=-1)  # (N, k, P)
    return jnp.einsum("iap,jbp->ijab", jac(x1), jac(x2))


@pytest.mark.parametrize("case", [_mlp_case, _cnn_case], ids=["mlp", "cnn"])
@pytest.mark.parametrize("impl", IMPLS)
def test_neural_tangents_matches_reference_in_float64(x64, case, impl):
    net, params, x1, x2 = case()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
    ref = kernels.ntk_reference(net.apply_fn, params, x1, x2)
    got = kernels.empirical_ntk(net.apply_fn, params, x1, x2, implementation=impl)
    assert ref.dtype == got.dtype == jnp.float64
    assert got.shape == (x1.shape[0], x2.shape[0], ref.shape[2], ref.shape[2])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * float(jnp.abs(ref).max()))


def test_reference_matches_explicit_jacobians(x64):
    net, params, x1, x2 = _mlp_case()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
    np.testing.assert_allclose(kernels.ntk_reference(net.apply_fn, params, x1, x2),
                               _explicit_jacobian_ntk(net.apply_fn, params, x1, x2), rtol=1e-12, atol=1e-12)


def test_symmetric_psd_and_axes_conventions(x64):
    net, params, x1, _ = _mlp_case()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x1 = x1.astype(jnp.float64)
    full = kernels.empirical_ntk(net.apply_fn, params, x1)
    mat = full.transpose(0, 2, 1, 3).reshape(21, 21)
    np.testing.assert_allclose(mat, mat.T, atol=1e-12)
    assert np.linalg.eigvalsh(np.asarray(mat)).min() > -1e-10
    traced = kernels.empirical_ntk(net.apply_fn, params, x1, trace_axes=(-1,))
    np.testing.assert_allclose(traced, jnp.trace(full, axis1=2, axis2=3) / 3, atol=1e-12)
    diag = kernels.empirical_ntk(net.apply_fn, params, x1, trace_axes=(-1,), diagonal_axes=(0,))
    np.testing.assert_allclose(diag, jnp.diagonal(traced), atol=1e-12)
    ref_diag = kernels.ntk_reference(net.apply_fn, params, x1, trace_axes=(-1,), diagonal_axes=(0,))
    np.testing.assert_allclose(ref_diag, jnp.diagonal(traced), atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7, 50])
@pytest.mark.parametrize("symmetric", [True, False])
def test_batched_kernel_equals_single_block(x64, batch_size, symmetric):
    net, params, x1, x2 = _mlp_case()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
    other = None if symmetric else x2
    for trace_axes in ((), (-1,)):
        one = kernels.empirical_ntk(net.apply_fn, params, x1, other, trace_axes=trace_axes)
        blocks = kernels.empirical_ntk(net.apply_fn, params, x1, other, trace_axes=trace_axes, batch_size=batch_size)
        np.testing.assert_allclose(blocks, one, rtol=0, atol=1e-12)
    one = kernels.empirical_ntk(net.apply_fn, params, x1, diagonal_axes=(0,))
    blocks = kernels.empirical_ntk(net.apply_fn, params, x1, diagonal_axes=(0,), batch_size=batch_size)
    np.testing.assert_allclose(blocks, one, rtol=0, atol=1e-12)


def test_auto_falls_back_when_structured_derivatives_fail(monkeypatch):
    net, params, x1, x2 = _mlp_case()
    real = kernels._nt_kernel_fn

    def broken(apply_fn, implementation, *args):
        if implementation == "structured":
            def fail(*a, **k):
                raise NotImplementedError("no structure rule for this primitive")
            return fail
        return real(apply_fn, implementation, *args)

    monkeypatch.setattr(kernels, "_nt_kernel_fn", broken)
    with pytest.warns(RuntimeWarning, match="falling back to NTK-vector products"):
        got = kernels.empirical_ntk(net.apply_fn, params, x1, x2)
    np.testing.assert_allclose(got, kernels.ntk_reference(net.apply_fn, params, x1, x2), rtol=1e-4, atol=1e-4)


def _flow_case(full: bool):
    with jax.experimental.enable_x64():
        net, params, x1, x2 = _mlp_case()
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        x1, x2 = x1.astype(jnp.float64), x2.astype(jnp.float64)
        axes = () if full else (-1,)
        k = kernels.empirical_ntk(net.apply_fn, params, x1, trace_axes=axes)
        kx = kernels.empirical_ntk(net.apply_fn, params, x2, x1, trace_axes=axes)
        y = jax.random.normal(jax.random.PRNGKey(3), (7, 3), dtype=jnp.float64)
        return k, kx, y, net.apply_fn(params, x1), net.apply_fn(params, x2)


@pytest.mark.parametrize("full", [False, True])
def test_gradient_flow_matches_neural_tangents_predict(x64, full):
    k, kx, y, f0, g0 = _flow_case(full)
    ts = jnp.array([0.0, 0.5, 3.0, 40.0, 1e4])
    ours = kernels.gradient_flow_mse(k, y, ts, f0_train=f0, k_test_train=kx, f0_test=g0, learning_rate=0.7)
    theirs = nt.predict.gradient_descent_mse(k, y, learning_rate=0.7, trace_axes=() if full else (-1,))
    tr, te = theirs(ts, f0, g0, kx)
    np.testing.assert_allclose(ours.train, tr, atol=1e-10)
    np.testing.assert_allclose(ours.test, te, atol=1e-10)


def test_gradient_flow_matches_matrix_exponential(x64):
    # Oracle: eq. 2.60/2.61 evaluated literally with scipy's expm and a linear solve.
    k, kx, y, f0, g0 = (np.asarray(a) for a in _flow_case(False))
    n, t, lr = y.size, 25.0, 0.3
    expo = scipy.linalg.expm(-lr * t * k / n)
    train = y + expo @ (f0 - y)
    test = g0 - kx @ np.linalg.solve(k, (np.eye(len(k)) - expo) @ (f0 - y))
    ours = kernels.gradient_flow_mse(k, y, t, f0_train=f0, k_test_train=kx, f0_test=g0, learning_rate=lr)
    np.testing.assert_allclose(ours.train, train, atol=1e-9)
    np.testing.assert_allclose(ours.test, test, atol=1e-8)


def test_discrete_flow_equals_iterated_gradient_descent_on_linear_model(x64):
    k, kx, y, f0, g0 = (np.asarray(a) for a in _flow_case(False))
    n, lr, steps = y.size, 2.0, 37
    f, g = f0.copy(), g0.copy()
    for _ in range(steps):  # GD on the linearised model, in function space
        r = f - y
        f, g = f - lr / n * k @ r, g - lr / n * kx @ r
    # lr = 2 puts eta lambda_max / n at 2.67, past descent's stability edge: the closed
    # form must still be the exact (diverging) trajectory, and say that it diverges
    with pytest.warns(RuntimeWarning, match="does not converge"):
        ours = kernels.gradient_flow_mse(k, y, steps, f0_train=f0, k_test_train=kx, f0_test=g0,
                                         learning_rate=lr, discrete=True)
    np.testing.assert_allclose(ours.train, f, atol=1e-9)
    np.testing.assert_allclose(ours.test, g, atol=1e-9)


def test_kernel_regression_is_the_infinite_time_limit(x64):
    k, kx, y, _, _ = _flow_case(False)
    late = kernels.gradient_flow_mse(k, y, 1e9, k_test_train=kx)
    np.testing.assert_allclose(kernels.kernel_regression(k, y, kx), late.test, atol=1e-6)
    np.testing.assert_allclose(late.train, y, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a, p, x: kernels.empirical_ntk(a, p, x, implementation="fast"), "implementation"),
        (lambda a, p, x: kernels.empirical_ntk(a, p, x[0]), "x1 must have shape"),
        (lambda a, p, x: kernels.empirical_ntk(a, p, x, x[:, :2]), "x2 must have shape"),
        (lambda a, p, x: kernels.empirical_ntk(a, p, x, batch_size=0), "batch_size"),
        (lambda a, p, x: kernels.empirical_ntk(a, p, x, trace_axes=(0,)), "trace_axes"),
        (lambda a, p, x: kernels.empirical_ntk(a, p, x, x, diagonal_axes=(0,)), "x2=None"),
        (lambda a, p, x: kernels.infinite_kernel(lambda *z: None, x, get="cov"), "get"),
        (lambda a, p, x: kernels.gradient_flow_mse(jnp.eye(3), jnp.ones((4, 1)), 1.0), "k_train_train"),
        (lambda a, p, x: kernels.gradient_flow_mse(jnp.eye(4), jnp.ones((4, 1)), -1.0), "non-negative"),
        (lambda a, p, x: kernels.gradient_flow_mse(jnp.eye(4), jnp.ones((4, 1)), 1.0, learning_rate=0), "learning_rate"),
        (lambda a, p, x: kernels.kernel_regression(jnp.eye(4), jnp.ones(4), jnp.ones((2, 3))), "k_test_train"),
        (lambda a, p, x: kernels.kernel_regression(jnp.eye(4), jnp.ones(4), jnp.ones((2, 4)), ridge=-1), "ridge"),
    ],
)
def test_bad_inputs_raise(call, match):
    net, params, x1, _ = _mlp_case()
    with pytest.raises(ValueError, match=match):
        call(net.apply_fn, params, x1)


def test_symmetrized_gram_matrices():
    """Oracle: the definition (K + K^T) / 2, written out entry by entry for the eNTK's block layout."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5))
    s = kernels.symmetrized(a)
    assert np.array_equal(s, s.T) and s.dtype == np.float64
    np.testing.assert_allclose(s[1, 3], (a[1, 3] + a[3, 1]) / 2, rtol=1e-15)
    sym = a @ a.T
    assert np.array_equal(kernels.symmetrized(sym), sym)  # an exactly symmetric matrix is returned unchanged
    b = rng.standard_normal((4, 4, 3, 3))
    sb = kernels.symmetrized(b)
    for i, j, p, q in [(0, 2, 1, 0), (3, 1, 2, 2), (2, 2, 0, 1)]:
        assert sb[i, j, p, q] == pytest.approx((b[i, j, p, q] + b[j, i, q, p]) / 2, rel=1e-15)
        assert sb[i, j, p, q] == sb[j, i, q, p]
    flat = sb.transpose(0, 2, 1, 3).reshape(12, 12)  # the (N k, N k) layout chapter 15 solves with
    assert np.array_equal(flat, flat.T)
    with pytest.raises(ValueError, match=r"\(N, N\) or \(N, N, k, k\)"):
        kernels.symmetrized(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        kernels.symmetrized(np.full((2, 2), np.nan))
