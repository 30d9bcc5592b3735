"""ntkbook.trace on a linear model whose NTK trace is known in closed form.

For ``f(x; W, b) = x W + b`` with ``W (d, k)``, ``b (k,)`` the Jacobian does not
depend on the parameters, ``A = J^T J`` is block diagonal over outputs, and

    A[(j, a), (j', a)] = sum_i x_ij x_ij',   A[(b_a), (b_a)] = N,   A[(j, a), (b_a)] = sum_i x_ij,

so ``Tr K = Tr A = k (||X||_F^2 + N)``. If the columns of ``X`` are orthogonal to each
other and to the all-ones vector, ``A`` is diagonal. A Hutchinson probe then gives
``v^T A v = sum_j A_jj v_j^2``: exactly ``Tr A`` for every Rademacher probe
(``v_j^2 = 1``; the per-probe variance ``2 (||A||_F^2 - sum_j A_jj^2)`` is zero),
and a chi-square-like spread for Gaussian probes (variance ``2 sum_j A_jj^2``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import trace


def _linear(params, x):
    return x @ params["w"] + params["b"]


def _orthogonal_inputs(n, d, seed=0):
    """``(N, d)`` inputs with mutually orthogonal columns, each orthogonal to ``1_N``, of
    unequal norms (so ``A`` is diagonal but not a multiple of the identity)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, d))]))
    return q[:, 1:] * rng.uniform(0.5, 3.0, d)


def _case(n=12, d=5, k=3, seed=0):
    x = jnp.asarray(_orthogonal_inputs(n, d, seed))
    rng = np.random.default_rng(seed + 1)
    params = {"w": jnp.asarray(rng.standard_normal((d, k))), "b": jnp.asarray(rng.standard_normal(k))}
    closed = k * (float(np.sum(np.asarray(x) ** 2)) + n)
    return x, params, closed, n, k


def test_exact_trace_of_a_linear_model_is_the_closed_form(x64):
    x, params, closed, n, k = _case()
    est = trace.ntk_trace(_linear, params, x)
    assert est.value == pytest.approx(closed, rel=1e-12)
    assert est.normalized == pytest.approx(closed / (n * k), rel=1e-12)
    # a generic X (A not diagonal): the trace does not change, k (||X||_F^2 + N)
    xg = jax.random.normal(jax.random.PRNGKey(3), (n, 5), jnp.float64)
    assert trace.ntk_trace(_linear, params, xg).value == pytest.approx(k * (float(jnp.sum(xg**2)) + n), rel=1e-12)


def test_every_rademacher_probe_returns_the_exact_trace_when_a_is_diagonal(x64):
    # Rademacher entries are +-1, so each probe returns sum_j A_jj = Tr A to rounding.
    # Gaussian probes (what a wrong draw would give) spread with standard deviation
    # sqrt(2 sum_j A_jj^2): here > 20 % of the trace, so no Gaussian probe lands within
    # 1e-9 of it (probability < 1e-8 per probe).
    x, params, closed, n, k = _case()
    est = trace.ntk_trace(_linear, params, x, method="jvp", probe="rademacher", key=jax.random.PRNGKey(0), probes=32)
    assert est.samples.shape == (32,)
    np.testing.assert_allclose(est.samples, closed, rtol=1e-9)
    assert est.value == pytest.approx(closed, rel=1e-9)
    # control: the same model with Gaussian probes has the predicted, non-zero spread
    a_diag = np.concatenate([np.tile(np.sum(np.asarray(x) ** 2, axis=0), k), np.full(k, n)])
    assert np.sum(a_diag) == pytest.approx(closed)
    sd = np.sqrt(2 * np.sum(a_diag**2))
    assert sd > 0.2 * closed
    m = 400
    g = trace.ntk_trace(_linear, params, x, method="jvp", probe="gaussian", key=jax.random.PRNGKey(1), probes=m)
    # sample variance of m draws of v^T A v: Var(s^2) ~ (kappa_4 + 2 var^2) / m with
    # kappa_4 = 48 sum A_jj^4; 4.5 standard errors (two-sided p ~ 7e-6)
    var = sd**2
    assert abs(g.samples.var(ddof=1) - var) < 4.5 * np.sqrt((48 * np.sum(a_diag**4) + 2 * var**2) / m)


def test_rademacher_per_probe_values_on_a_two_parameter_model(x64):
    # f(x; u) = u_0 x_0 + u_1 x_1 on inputs with x . x' structure: A = [[p, c], [c, q]]
    # with p = sum x_0^2, q = sum x_1^2, c = sum x_0 x_1. A Rademacher probe gives
    # p + q + 2 c s with s = v_0 v_1 = +-1: only two values, each with probability 1/2.
    # Of 64 probes both values must occur (P(all equal) = 2^-63) and nothing else.
    x = jnp.asarray([[1.0, 2.0], [0.5, -1.0], [2.0, 0.25]])
    p, q, c = float(jnp.sum(x[:, 0] ** 2)), float(jnp.sum(x[:, 1] ** 2)), float(jnp.sum(x[:, 0] * x[:, 1]))
    est = trace.ntk_trace(lambda u, z: z @ u[:, None], jnp.asarray([0.3, -0.7]), x, method="jvp",
                          probe="rademacher", key=jax.random.PRNGKey(2), probes=64)
    vals = np.array([p + q - 2 * c, p + q + 2 * c])
    nearest = np.abs(est.samples[:, None] - vals[None]).min(axis=1)
    np.testing.assert_allclose(nearest, 0.0, atol=1e-12)
    hits = np.abs(est.samples[:, None] - vals[None]).argmin(axis=1)
    assert set(hits.tolist()) == {0, 1}


def test_trace_recorder_returns_the_closed_form_normalised_trace(x64):
    # Replaces a test that compared the recorder with ntk_trace (code with itself):
    # the oracle is (||X||_F^2 + N) / N, i.e. Tr K / (N k) for the linear model.
    x, params, closed, n, k = _case(n=10, d=4, k=2, seed=5)
    want = closed / (n * k)
    assert want == pytest.approx((float(jnp.sum(x**2)) + n) / n)
    assert trace.trace_recorder(_linear, x)(params) == pytest.approx(want, rel=1e-12)
    # with Rademacher probes on this diagonal A the estimator is exact as well
    rec = trace.trace_recorder(_linear, x, method="jvp", key=jax.random.PRNGKey(0), probe="rademacher", probes=4)
    assert rec(params) == pytest.approx(want, rel=1e-9)
    # the trace of a linear model does not depend on the parameters: the recorder sees
    # the same value after a change of w and b
    moved = jax.tree_util.tree_map(lambda a: 3.0 * a + 1.0, params)
    assert trace.trace_recorder(_linear, x)(moved) == pytest.approx(want, rel=1e-12)
    # and it follows the inputs: doubling X quadruples ||X||_F^2
    assert trace.trace_recorder(_linear, 2 * x)(params) == pytest.approx((4 * float(jnp.sum(x**2)) + n) / n, rel=1e-12)
