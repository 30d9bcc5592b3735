"""The one-layer transformer: shapes, causality, its eNTK, and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import data, kernels, trace, transformer


@pytest.fixture(scope="module")
def small():
    net = transformer.transformer(8, 3, 7, d_model=16, heads=2, d_mlp=32)
    params = net.init_fn(jax.random.PRNGKey(0))
    pairs = np.array([[0, 1], [2, 3], [6, 6], [5, 0], [1, 4]])
    return net, params, transformer.sequences(pairs, 7), pairs


def test_shapes_and_token_inputs_agree(small):
    net, params, x, pairs = small
    assert x.shape == (5, 3, 8)
    out = net.apply_fn(params, x)
    assert out.shape == (5, 7)
    tokens = np.concatenate([pairs, np.full((5, 1), 7)], axis=1)
    np.testing.assert_allclose(net.apply_fn(params, tokens), out, rtol=1e-6, atol=1e-6)


def _full_causal_block(params, x, heads):
    """Second implementation: the textbook block on every position with a causal mask, then read the last."""
    h = x @ params["embed"] + params["pos"]
    t, d_head = h.shape[1], params["W_Q"].shape[-1]
    q, k, v = (jnp.einsum("ntd,hde->nhte", h, params[w]) for w in ("W_Q", "W_K", "W_V"))
    scores = jnp.einsum("nhte,nhse->nhts", q, k) / np.sqrt(d_head)
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
    z = jnp.einsum("nhts,nhse->nhte", jax.nn.softmax(scores, axis=-1), v)
    h = h + jnp.einsum("nhte,hed->ntd", z, params["W_O"])
    h = h + jax.nn.relu(h @ params["W_in"] + params["b_in"]) @ params["W_out"] + params["b_out"]
    return h[:, -1] @ params["unembed"]


def test_matches_the_full_causal_block(small):
    net, params, x, _ = small
    np.testing.assert_allclose(net.apply_fn(params, x), _full_causal_block(params, jnp.asarray(x), 2),
                               rtol=1e-5, atol=1e-5)


def test_the_last_position_sees_every_token(small):
    # Changing the first token changes the logits (attention mixes it into the '=' position).
    net, params, x, _ = small
    x2 = x.copy()
    x2[:, 0] = np.roll(x[:, 0], 1, axis=-1)
    assert np.max(np.abs(np.asarray(net.apply_fn(params, x2) - net.apply_fn(params, x)))) > 1e-3


def test_entk_is_symmetric_psd_and_its_trace_matches_the_gradients(small):
    net, params, x, _ = small
    k = np.asarray(kernels.empirical_ntk(net.apply_fn, params, x, trace_axes=(), implementation="jacobian"),
                   dtype=np.float64)
    n, _, c, _ = k.shape
    mat = k.transpose(0, 2, 1, 3).reshape(n * c, n * c)
    np.testing.assert_allclose(mat, mat.T, rtol=1e-5, atol=1e-5 * np.abs(mat).max())
    assert np.linalg.eigvalsh(mat).min() > -1e-5 * np.abs(mat).max()
    # Oracle: the trace is the squared Frobenius norm of the Jacobian, computed with jax.jacrev.
    jac = jax.jacrev(net.apply_fn)(params, jnp.asarray(x))
    frob = sum(float(jnp.sum(j ** 2)) for j in jax.tree_util.tree_leaves(jac))
    np.testing.assert_allclose(np.trace(mat), frob, rtol=1e-4)
    est = trace.ntk_trace(net.apply_fn, params, x, method="exact", vmap_axes=None)
    np.testing.assert_allclose(est.value, frob, rtol=1e-4)


def test_sequences_from_modular_pairs():
    split = data.modular_arithmetic(5, 0.5, jax.random.PRNGKey(0))
    seq = transformer.sequences(split.x_train, 5)
    assert seq.shape == (len(split.x_train), 3, 6)
    np.testing.assert_array_equal(seq.sum(-1), 1.0)
    np.testing.assert_array_equal(seq[:, :2].argmax(-1), split.x_train)
    np.testing.assert_array_equal(seq[:, 2].argmax(-1), 5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(vocab=0, seq_len=3, out_dim=2), "vocab"),
    (dict(vocab=5, seq_len=3, out_dim=2, d_model=10, heads=4), "divisible"),
    (dict(vocab=5, seq_len=3.0, out_dim=2), "seq_len"),
    (dict(vocab=5, seq_len=3, out_dim=2, heads=True), "heads"),
])
def test_bad_sizes_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        transformer.transformer(**kwargs)


def test_bad_inputs_raise(small):
    net, params, x, _ = small
    with pytest.raises(ValueError, match="shape"):
        net.apply_fn(params, x[:, :2])
    with pytest.raises(ValueError, match="p must"):
        transformer.sequences(np.zeros((2, 2), int), 1)
    with pytest.raises(ValueError, match="tokens"):
        transformer.sequences(np.array([[0, 5]]), 5)
    with pytest.raises(ValueError, match="shape"):
        transformer.sequences(np.zeros((2, 3), int), 5)
