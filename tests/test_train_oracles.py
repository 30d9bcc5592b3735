"""ntkbook.train.fit with a minibatch sampler, against a hand-written optax loop.

The documented contract: step ``s`` draws its batch with ``sample_batch(fold_in(key, s),
data)``, whatever the record steps. Recording splits training into compiled segments;
these tests check that the segments continue the stream instead of restarting it:
- a "counting" loss whose gradient step adds the one-hot indicator of the batch to the
  parameters, so the change between two records is the histogram of the batches drawn
  in between, compared with the histogram of the batches the contract prescribes;
- regression with momentum: final and recorded parameters equal a plain optax loop,
  and runs with and without intermediate records end at the same parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import train

N, BATCH = 17, 4


def _sample(key, data):
    idx = jax.random.permutation(key, data[0].shape[0])[:BATCH]
    return jax.tree_util.tree_map(lambda a: a[idx], data)


def _counting_loss(params, batch):
    idx, _ = batch  # the batch carries the indices of its rows
    return -jnp.sum(params * jax.nn.one_hot(idx, N).sum(0))  # gradient: minus the histogram


def _hand_histograms(key, data, steps, record):
    """Histogram of the rows drawn between consecutive record steps, by the contract."""
    counts, out, last = np.zeros(N), [], 0
    for s in range(steps):
        if s in record and s > 0:
            out.append(counts.copy())
        idx = np.asarray(_sample(jax.random.fold_in(key, s), data)[0])
        counts += np.bincount(idx, minlength=N)
    out.append(counts.copy())
    return out


# the last case (one segment) is the control: it passes even if segments restart
@pytest.mark.parametrize("record", [[0, 1, 2, 3, 10, 25], [0, 7, 25], [25]])
def test_minibatches_continue_across_records(record):
    key = jax.random.PRNGKey(3)
    data = (jnp.arange(N), jnp.zeros(N))
    steps = 25
    _, hist = train.fit(_counting_loss, jnp.zeros(N), optax.sgd(1.0), steps, data=data, sample_batch=_sample, key=key,
                        record_steps=record, record_fn=lambda p, s: {"counts": p}, progress=False)
    got = hist.metrics["counts"]
    want = _hand_histograms(key, data, steps, record)
    if record[0] == 0:
        np.testing.assert_array_equal(got[0], np.zeros(N))
        got = got[1:]
    np.testing.assert_allclose(got, np.stack(want), atol=1e-6)
    assert got[-1].sum() == steps * BATCH


def test_regression_with_records_equals_a_plain_optax_loop(x64):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((N, 3)))
    y = x @ jnp.asarray([1.0, -2.0, 0.5]) + 0.1 * jnp.asarray(rng.standard_normal(N))
    loss = lambda w, batch: 0.5 * jnp.mean((batch[0] @ w - batch[1]) ** 2)  # noqa: E731
    opt = optax.sgd(0.1, momentum=0.9)
    key, steps, record = jax.random.PRNGKey(7), 30, [0, 1, 5, 6, 18, 30]
    w, hand = jnp.zeros(3), {}
    state = opt.init(w)
    for s in range(steps + 1):
        if s in record:
            hand[s] = np.asarray(w)
        if s == steps:
            break
        g = jax.grad(loss)(w, _sample(jax.random.fold_in(key, s), (x, y)))
        updates, state = opt.update(g, state, w)
        w = optax.apply_updates(w, updates)
    final, hist = train.fit(loss, jnp.zeros(3), opt, steps, data=(x, y), sample_batch=_sample, key=key,
                            record_steps=record, record_fn=lambda p, s: {"w": p}, progress=False)
    np.testing.assert_allclose(np.asarray(final), np.asarray(w), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hist.metrics["w"], np.stack([hand[s] for s in record]), rtol=1e-12, atol=1e-14)
    plain, _ = train.fit(loss, jnp.zeros(3), opt, steps, data=(x, y), sample_batch=_sample, key=key, progress=False)
    np.testing.assert_allclose(np.asarray(plain), np.asarray(final), rtol=1e-12, atol=1e-14)
