import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import models

KEY = jax.random.PRNGKey(0)


def test_mlp_shapes_and_named_layers():
    net = models.mlp([16, 8], 3)
    params = models.init_params(net, KEY, (-1, 5))
    named = models.named_layers(params)
    assert {k: v.shape for k, v in named.items()} == {
        "W1": (5, 16), "b1": (1, 16), "W2": (16, 8), "b2": (1, 8), "W3": (8, 3), "b3": (1, 3)}
    assert net.apply_fn(params, jnp.ones((4, 5))).shape == (4, 3)
    ens = models.init_ensemble(net, KEY, (-1, 5), 6)
    assert models.named_layers(ens)["W2"].shape == (6, 16, 8)
    no_bias = models.init_params(models.mlp([4], 1, b_std=None), KEY, (-1, 2))
    assert set(models.named_layers(no_bias)) == {"W1", "W2"}


def test_parameterisations_agree_in_distribution_but_not_in_gradients():
    # Same forward pass in distribution; the NTK parameterisation stores N(0,1)
    # entries while the standard one stores N(0, sigma^2 / fan_in) entries.
    width = 4096
    ntk = models.init_params(models.mlp([width], 1, parameterization="ntk", W_std=1.0), KEY, (-1, width))
    std = models.init_params(models.mlp([width], 1, parameterization="standard", W_std=1.0), KEY, (-1, width))
    np.testing.assert_allclose(np.std(models.named_layers(ntk)["W2"]), 1.0, rtol=0.1)
    np.testing.assert_allclose(np.std(models.named_layers(std)["W2"]), 1 / np.sqrt(width), rtol=0.1)


def test_relu_output_variance_matches_nngp_exactly_in_expectation():
    # For ReLU, E[f(x)^2] equals the NNGP diagonal at any width (symmetry argument);
    # check with 4000 draws of a width-8 network: 5 standard errors.
    net = models.mlp([8, 8], 1, b_std=0.5)
    x = jnp.array([[0.7]])
    ens = models.init_ensemble(net, KEY, (-1, 1), 4000)
    f = jax.vmap(net.apply_fn, in_axes=(0, None))(ens, x)[:, 0, 0]
    target = float(net.kernel_fn(x, None, "nngp")[0, 0])
    se = np.std(np.asarray(f) ** 2) / np.sqrt(f.size)
    assert abs(float(np.mean(f**2)) - target) < 5 * se


def test_cnn_runs_on_digit_images():
    net = models.cnn([4, 4], 10)
    params = models.init_params(net, KEY, (-1, 8, 8, 1))
    assert net.apply_fn(params, jnp.ones((2, 8, 8, 1))).shape == (2, 10)


def test_centered_scaled_is_zero_at_init_and_scales_linearly():
    net = models.mlp([32], 1)
    p0 = models.init_params(net, KEY, (-1, 1))
    p1 = models.init_params(net, jax.random.PRNGKey(1), (-1, 1))
    x = jnp.linspace(-1, 1, 5)[:, None]
    f3 = models.centered_scaled(net.apply_fn, p0, 3.0)
    np.testing.assert_allclose(f3(p0, x), 0.0, atol=1e-6)
    np.testing.assert_allclose(f3(p1, x), 3.0 * (net.apply_fn(p1, x) - net.apply_fn(p0, x)), rtol=1e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: models.mlp([], 3), "hidden"),
        (lambda: models.mlp([0], 3), "hidden"),
        (lambda: models.mlp([4], 0), "out_dim"),
        (lambda: models.mlp([4], 2, activation="swish"), "activation"),
        (lambda: models.mlp([4], 2, parameterization="mup"), "parameterization"),
        (lambda: models.mlp([4], 2, W_std=-1.0), "W_std"),
        (lambda: models.mlp([4], 2, b_std=-0.1), "b_std"),
        (lambda: models.centered_scaled(lambda p, x: x, None, 0.0), "alpha"),
        (lambda: models.named_layers({"W": 1}), "stax.serial"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_token_mlp_is_the_one_hot_mlp(parameterization):
    """Oracle: the plain mlp applied to the concatenated one-hot codes (data.one_hot_pairs). Two tokens:
    the same outputs bit for bit (the product adds the two selected rows and exact zeros); the gradients
    sum the same terms in another order, so they agree to float32 rounding."""
    from ntkbook import data

    vocab, width = 11, 32
    plain = models.mlp([width, width], vocab, parameterization=parameterization)
    tok = models.token_mlp(vocab, 2, [width, width], vocab, parameterization=parameterization)
    _, params = plain.init_fn(jax.random.PRNGKey(3), (-1, 2 * vocab))
    pairs = np.array([[a, b] for a in range(vocab) for b in range(vocab)], np.int32)
    one_hot = jnp.asarray(data.one_hot_pairs(pairs, vocab))
    out_plain = plain.apply_fn(params, one_hot)
    np.testing.assert_array_equal(np.asarray(tok.apply_fn(params, pairs)), np.asarray(out_plain))
    np.testing.assert_array_equal(np.asarray(tok.apply_fn(params, one_hot)), np.asarray(out_plain))
    np.testing.assert_array_equal(np.asarray(jax.jit(tok.apply_fn)(params, pairs)), np.asarray(jax.jit(plain.apply_fn)(params, one_hot)))

    def loss(apply, x):
        return lambda p: jnp.sum(jnp.sin(apply(p, x)))

    g_tok = jax.grad(loss(tok.apply_fn, pairs))(params)
    g_plain = jax.grad(loss(plain.apply_fn, one_hot))(params)
    for a, b in zip(jax.tree_util.tree_leaves(g_tok), jax.tree_util.tree_leaves(g_plain)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(b_std=None), dict(W_std=0.7, b_std=0.3), dict(activation="erf")])
def test_token_mlp_is_the_one_hot_mlp_without_bias_and_other_scales(kwargs):
    """The same oracle for a network without first-layer bias, a non-default W_std and another activation."""
    from ntkbook import data

    vocab = 7
    plain = models.mlp([16], 3, **kwargs)
    tok = models.token_mlp(vocab, 2, [16], 3, **kwargs)
    _, params = plain.init_fn(jax.random.PRNGKey(5), (-1, 2 * vocab))
    pairs = np.array([[a, b] for a in range(vocab) for b in range(vocab)], np.int32)
    np.testing.assert_array_equal(np.asarray(tok.apply_fn(params, pairs)),
                                  np.asarray(plain.apply_fn(params, jnp.asarray(data.one_hot_pairs(pairs, vocab)))))


def test_token_mlp_three_tokens_and_bad_inputs():
    vocab = 5
    plain = models.mlp([16], 3)
    tok = models.token_mlp(vocab, 3, [16], 3)
    _, params = plain.init_fn(jax.random.PRNGKey(0), (-1, 3 * vocab))
    tokens = np.array([[0, 4, 2], [3, 3, 1]])
    one_hot = np.concatenate([np.eye(vocab, dtype=np.float32)[tokens[:, t]] for t in range(3)], axis=1)
    np.testing.assert_allclose(tok.apply_fn(params, tokens), plain.apply_fn(params, one_hot), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 5\)"):
        tok.apply_fn(params, np.array([[0, 5, 1]]))
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 5\)"):
        tok.apply_fn(params, np.array([[0, -1, 1]]))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        tok.apply_fn(params, np.array([[0, 1]]))
    with pytest.raises(ValueError, match="layers"):
        tok.apply_fn(params[:-1], tokens)
    with pytest.raises(ValueError, match="vocab"):
        models.token_mlp(0, 2, [4], 2)
    with pytest.raises(ValueError, match="n_tokens"):
        models.token_mlp(5, 1.5, [4], 2)


def test_token_mlp_under_jit_with_closed_over_tokens():
    """Tokens closed over by a jitted function are concrete, but jnp reductions on them would be traced:
    the range check must run on the host, and an out-of-range token must still be refused there."""
    tok = models.token_mlp(4, 2, [8], 3)
    _, params = tok.init_fn(jax.random.PRNGKey(0), (-1, 8))
    good, bad = jnp.array([[0, 3], [2, 1]]), jnp.array([[0, 4]])
    np.testing.assert_array_equal(jax.jit(lambda p: tok.apply_fn(p, good))(params), tok.apply_fn(params, good))
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 4\)"):
        jax.jit(lambda p: tok.apply_fn(p, bad))(params)
