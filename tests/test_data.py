import jax
import numpy as np
import pytest

from ntkbook import data

KEY = jax.random.PRNGKey(0)


def test_digits_shapes_and_normalisation():
    x, y = data.digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 8.0, rtol=1e-5)
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-5)
    xp, _ = data.digits(normalize="pixels", flatten=False)
    assert xp.shape == (1797, 8, 8, 1) and xp.min() == 0.0 and xp.max() == 1.0


def test_balanced_subset_counts_order_and_determinism():
    _, y = data.digits()
    idx = data.balanced_indices(y, 7, KEY)
    assert len(idx) == 70 and len(set(idx)) == 70
    np.testing.assert_array_equal(np.bincount(y[idx]), np.full(10, 7))
    assert np.all(np.diff(y[idx]) >= 0), "subset must be ordered by class"
    np.testing.assert_array_equal(idx, data.balanced_indices(y, 7, KEY))
    assert not np.array_equal(idx, data.balanced_indices(y, 7, jax.random.PRNGKey(1)))


def test_split_is_disjoint_balanced_and_relabelled():
    split = data.digits_split(5, 3, KEY, classes=[3, 8])
    assert split.x_train.shape == (10, 64) and split.x_test.shape == (6, 64)
    np.testing.assert_array_equal(np.bincount(split.y_train), [5, 5])
    np.testing.assert_array_equal(np.bincount(split.y_test), [3, 3])
    train_rows = {r.tobytes() for r in split.x_train}
    assert not any(r.tobytes() in train_rows for r in split.x_test)


def test_one_hot():
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels"):
        data.one_hot(np.array([3]), 3)


def test_regression_1d():
    x, y = data.regression_1d(20, KEY, target="sine")
    assert x.shape == (20, 1) and y.shape == (20, 1)
    assert np.all(np.diff(np.asarray(x[:, 0])) >= 0)
    np.testing.assert_allclose(y, np.sin(np.pi * x), atol=1e-6)
    xg, _ = data.regression_1d(5, KEY, spacing="grid", x_range=(-2, 2))
    np.testing.assert_allclose(xg[:, 0], np.linspace(-2, 2, 5))


def test_modular_arithmetic_is_complete_and_correct():
    split = data.modular_arithmetic(7, 0.5, KEY)
    pairs = np.concatenate([split.x_train, split.x_test])
    labels = np.concatenate([split.y_train, split.y_test])
    assert len({tuple(p) for p in pairs}) == 49
    np.testing.assert_array_equal(labels, (pairs[:, 0] + pairs[:, 1]) % 7)
    assert len(split.x_train) == round(0.5 * 49)
    enc = data.one_hot_pairs(split.x_train, 7)
    assert enc.shape == (len(split.x_train), 14) and np.all(enc.sum(1) == 2)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: data.modular_arithmetic(1, 0.5, KEY), "modulus p"),
        (lambda: data.modular_arithmetic(7, 1.0, KEY), "train_fraction"),
        (lambda: data.modular_arithmetic(7, 0.0, KEY), "train_fraction"),
        (lambda: data.digits_split(0, 3, KEY), "n_train_per_class"),
        (lambda: data.digits_split(200, 3, KEY), r"n_train_per_class \+ n_test_per_class = 203 exceeds the 174"),
        (lambda: data.digits_split(5, 3, KEY, classes=[1, 1]), "distinct"),
        (lambda: data.regression_1d(0, KEY), "n must be"),
        (lambda: data.regression_1d(5, KEY, noise=-1.0), "noise"),
        (lambda: data.regression_1d(5, KEY, target="nope"), "unknown target"),
        (lambda: data.digits(normalize="zscore"), "normalize"),
        (lambda: data.regression_1d(5, 0), "key must be a single JAX PRNG key"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
