"""The pseudo-NTK: exact identities with the eNTK, its expectation for a random
linear read-out (derived below), and kernel regression in both shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import kernels, models

KEY = jax.random.PRNGKey(0)


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _case(k=4):
    net = models.mlp([48, 32], k)
    params = _f64(models.init_params(net, KEY, (-1, 5)))
    x1 = jax.random.normal(jax.random.PRNGKey(1), (6, 5), jnp.float64)
    x2 = jax.random.normal(jax.random.PRNGKey(2), (3, 5), jnp.float64)
    return net, params, x1, x2


def test_first_logit_pntk_is_the_first_diagonal_entry_of_the_entk(x64):
    net, params, x1, x2 = _case()
    full = kernels.ntk_reference(net.apply_fn, params, x1, x2)
    np.testing.assert_allclose(kernels.pseudo_ntk(net.apply_fn, params, x1, x2), full[..., 0, 0], atol=1e-10)


def test_sum_of_logits_pntk_is_the_sum_over_all_output_pairs_divided_by_k(x64):
    # grad (1/sqrt k) sum_j f_j = (1/sqrt k) sum_j grad f_j, so the pNTK is (1/k) sum_{j,j'} K_jj'.
    net, params, x1, x2 = _case()
    full = kernels.ntk_reference(net.apply_fn, params, x1, x2)
    got = kernels.pseudo_ntk(net.apply_fn, params, x1, x2, variant="sum")
    np.testing.assert_allclose(got, full.sum(axis=(2, 3)) / 4, atol=1e-10)


def test_pntk_is_not_the_traced_kernel(x64):
    # trace_axes averages the diagonal K_jj only; the pNTK is one logit (or includes off-diagonals).
    net, params, x1, _ = _case()
    traced = kernels.empirical_ntk(net.apply_fn, params, x1, trace_axes=(-1,))
    for variant in ("first", "sum"):
        p = kernels.pseudo_ntk(net.apply_fn, params, x1, variant=variant)
        assert float(jnp.max(jnp.abs(p - traced))) > 1e-3 * float(jnp.max(jnp.abs(traced)))


def test_pntk_batching_and_symmetry(x64):
    net, params, x1, _ = _case()
    whole = kernels.pseudo_ntk(net.apply_fn, params, x1)
    np.testing.assert_allclose(kernels.pseudo_ntk(net.apply_fn, params, x1, batch_size=4), whole, atol=1e-12)
    np.testing.assert_allclose(whole, whole.T, atol=1e-12)


def _readout_model(h, k):
    """f(x) = V tanh(W x) / sqrt(h): hidden features phi(x) = tanh(W x) / sqrt(h), read-out V."""

    def apply_fn(params, x):
        W, V = params
        return jnp.tanh(x @ W.T) @ V.T / jnp.sqrt(h)

    return apply_fn


def test_pntk_matches_the_entk_block_structure_in_expectation(x64):
    """Derivation. With phi(x) = tanh(W x)/sqrt(h) and f_j(x) = v_j . phi(x),
    grad_V f_j(x) = e_j phi(x)^T and grad_W f_j(x) = J_phi(x)^T v_j, so

        K(x1, x2)_{jj'} = v_j^T Kphi(x1, x2) v_j' + 1[j = j'] phi(x1)^T phi(x2),
        Kphi(x1, x2) = J_phi(x1) J_phi(x2)^T  (h x h, depends on W only).

    For V with iid N(0, 1) entries, independent of W: E_V v_j^T A v_j' = 1[j = j'] Tr A, hence
    E_V K = (Tr Kphi + phi^T phi) I_k, and the first-logit pNTK has the same mean
    Tr Kphi + phi^T phi (v_1 is one of the v_j; the sum-of-logits vector
    (1/sqrt k) sum_j v_j is again N(0, I)). We check (i) the identity for K exactly,
    draw by draw, against Jacobians from jax.jacobian, and (ii) the Monte Carlo mean
    of K and of both pNTKs over draws of V against the closed-form mean, within
    5 standard errors of the mean (estimated from the draws).
    """
    h, k, d, draws = 24, 3, 4, 400
    apply_fn = _readout_model(h, k)
    W = jax.random.normal(KEY, (h, d), jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, d), jnp.float64)
    phi = lambda xx: jnp.tanh(W @ xx) / jnp.sqrt(h)  # noqa: E731
    jac = jax.vmap(jax.jacobian(lambda w, xx: jnp.tanh(w @ xx) / jnp.sqrt(h)), in_axes=(None, 0))(W, x)  # (2, h, h, d)
    jac = jac.reshape(2, h, h * d)
    k_phi = jnp.einsum("ap,bp->ab", jac[0], jac[1])  # Kphi(x1, x2)
    gram = phi(x[0]) @ phi(x[1])
    mean_closed = float(jnp.trace(k_phi) + gram)

    entk, p_first, p_sum = [], [], []
    for i in range(draws):
        V = jax.random.normal(jax.random.PRNGKey(100 + i), (k, h), jnp.float64)
        params = (W, V)
        K = kernels.ntk_reference(apply_fn, params, x[:1], x[1:])[0, 0]  # (k, k)
        if i < 5:  # (i) the identity, exactly
            np.testing.assert_allclose(K, V @ k_phi @ V.T + gram * jnp.eye(k), atol=1e-12)
        entk.append(np.asarray(K))
        p_first.append(float(kernels.pseudo_ntk(apply_fn, params, x[:1], x[1:], implementation="reference")[0, 0]))
        p_sum.append(float(kernels.pseudo_ntk(apply_fn, params, x[:1], x[1:], variant="sum",
                                              implementation="reference")[0, 0]))
    entk = np.stack(entk)
    se = lambda a: a.std(axis=0, ddof=1) / np.sqrt(draws)  # noqa: E731
    # (ii) diagonal blocks share the pNTK's mean; off-diagonal blocks average to zero
    want = mean_closed * np.eye(k)
    assert np.all(np.abs(entk.mean(0) - want) < 5 * se(entk)), (entk.mean(0), want, se(entk))
    for sample in (np.array(p_first), np.array(p_sum)):
        assert abs(sample.mean() - mean_closed) < 5 * se(sample), (sample.mean(), mean_closed, se(sample))
    # the closed form is not trivially satisfied: the read-out term alone is far off
    assert abs(gram - mean_closed) > 10 * se(np.array(p_first))


def test_kernel_regression_both_shapes_agree_when_the_kernel_is_diagonal(x64):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(9, 30))
    p = feats @ feats.T
    n, m, k = 6, 3, 4
    y = rng.normal(size=(n, k))
    f0_tr, f0_te = rng.normal(size=(n, k)), rng.normal(size=(m, k))
    full = p[:, :, None, None] * np.eye(k)
    a = kernels.kernel_regression(p[:n, :n], y, p[n:, :n], f0_train=f0_tr, f0_test=f0_te)
    b = kernels.kernel_regression(full[:n, :n], y, full[n:, :n], f0_train=f0_tr, f0_test=f0_te)
    np.testing.assert_allclose(a, b, rtol=1e-10)
    # oracle: numpy solve of the flattened system
    want = f0_te + p[n:, :n] @ np.linalg.solve(p[:n, :n], y - f0_tr)
    np.testing.assert_allclose(a, want, rtol=1e-10)
    # and the existing kernel_regression on the residuals
    np.testing.assert_allclose(a - f0_te, kernels.kernel_regression(p[:n, :n], y - f0_tr, p[n:, :n]), rtol=1e-10)


def test_kernel_regression_with_a_full_entk_interpolates(x64):
    net, params, x1, x2 = _case(k=3)
    y = jax.random.normal(KEY, (6, 3), jnp.float64)
    k11 = kernels.ntk_reference(net.apply_fn, params, x1)
    f0 = net.apply_fn(params, x1)
    pred = kernels.kernel_regression(k11, y, k11, f0_train=f0, f0_test=f0)
    np.testing.assert_allclose(pred, y, atol=1e-7)
    mat = np.asarray(k11).transpose(0, 2, 1, 3).reshape(18, 18)
    k21 = np.asarray(kernels.ntk_reference(net.apply_fn, params, x2, x1)).transpose(0, 2, 1, 3).reshape(9, 18)
    want = np.asarray(net.apply_fn(params, x2)) + (k21 @ np.linalg.solve(mat, np.asarray(y - f0).ravel())).reshape(3, 3)
    got = kernels.kernel_regression(k11, y, kernels.ntk_reference(net.apply_fn, params, x2, x1), f0_train=f0,
                                 f0_test=net.apply_fn(params, x2))
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_kernel_cost_reports_output_size():
    net = models.mlp([32], 5)
    params = models.init_params(net, KEY, (-1, 4))
    x = jax.random.normal(KEY, (7, 4))
    full = kernels.kernel_cost(net.apply_fn, params, x, kind="entk", repeats=1)
    pntk = kernels.kernel_cost(net.apply_fn, params, x, kind="pntk", repeats=1)
    assert full.output_bytes == 7 * 7 * 5 * 5 * 4 and pntk.output_bytes == 7 * 7 * 4
    assert full.seconds > 0 and pntk.seconds > 0
    assert full.flops > pntk.flops > 0


def test_pntk_bad_inputs_raise(x64):
    net, params, x1, x2 = _case()
    with pytest.raises(ValueError, match="variant must be one of"):
        kernels.pseudo_ntk(net.apply_fn, params, x1, variant="mean")
    with pytest.raises(ValueError, match="x2 must have shape"):
        kernels.pseudo_ntk(net.apply_fn, params, x1, jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="apply_fn must return shape"):
        kernels.pseudo_ntk(lambda p, x: jnp.sum(x, axis=1), params, x1)
    with pytest.raises(ValueError, match="both be 2-D"):
        kernels.kernel_regression(np.eye(3), np.zeros((3, 2)), np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="k_test_train must have shape"):
        kernels.kernel_regression(np.eye(3), np.zeros((3, 2)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="ridge must be non-negative"):
        kernels.kernel_regression(np.eye(3), np.zeros((3, 2)), np.zeros((1, 3)), ridge=-1.0)
    with pytest.raises(ValueError, match="f0_test must have shape"):
        kernels.kernel_regression(np.eye(3), np.zeros((3, 2)), np.zeros((1, 3)), f0_test=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="kind must be"):
        kernels.kernel_cost(net.apply_fn, params, x1, kind="nngp")
