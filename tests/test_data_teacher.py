"""Single-index teacher tasks and digits parity (chapter 10 data)."""

import jax
import numpy as np
import pytest
from scipy import stats

from ntkbook import data

KEY = jax.random.PRNGKey(0)


def test_random_direction_is_a_deterministic_unit_vector():
    w = data.random_direction(16, KEY)
    assert w.shape == (16,) and w.dtype == np.float32
    assert np.linalg.norm(w) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(w, data.random_direction(16, KEY))
    assert not np.allclose(w, data.random_direction(16, jax.random.PRNGKey(1)))


@pytest.mark.parametrize("link", data.LINKS)
def test_single_index_labels_follow_the_link_and_are_balanced(link):
    w = data.random_direction(12, KEY)
    n = 20_000
    x, y = data.single_index(n, jax.random.PRNGKey(3), w, link=link)
    assert x.shape == (n, 12) and y.shape == (n,) and x.dtype == y.dtype == np.float32
    z = x.astype(np.float64) @ w
    expected = {"even": np.abs(z) > stats.norm.ppf(0.75), "sign": z > 0, "cubic": z**3 - 3 * z > 0}[link]
    np.testing.assert_array_equal(y, np.where(expected, 1.0, -1.0))
    # All three links put probability exactly 1/2 on +1 (for "cubic":
    # P(z > sqrt 3) + P(-sqrt 3 < z < 0) = 0.0416 + 0.4584). Binomial sd at
    # n = 20000 is 0.0035; 4 sd is 0.014.
    assert abs(np.mean(y > 0) - 0.5) < 0.014
    # The projection on w is standard normal: its variance within 4 sd (sd of a
    # sample variance is sqrt(2/n) = 0.01).
    assert abs(np.var(z) - 1.0) < 0.04


def test_single_index_is_deterministic_per_key():
    w = data.random_direction(8, KEY)
    a = data.single_index(50, jax.random.PRNGKey(5), w)
    b = data.single_index(50, jax.random.PRNGKey(5), w)
    c = data.single_index(50, jax.random.PRNGKey(6), w)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


def test_single_index_split_shares_held_out_sets_across_sizes():
    w = data.random_direction(8, KEY)
    small = data.single_index_split(10, 30, 40, KEY, w)
    large = data.single_index_split(25, 30, 40, KEY, w)
    assert small.x_train.shape == (10, 8) and large.x_train.shape == (25, 8)
    assert small.x_val.shape == (30, 8) and small.x_test.shape == (40, 8)
    np.testing.assert_array_equal(small.x_val, large.x_val)
    np.testing.assert_array_equal(small.x_test, large.x_test)
    assert not np.allclose(small.x_val[:10], small.x_train)  # independent draws


def test_digits_parity_split_is_disjoint_balanced_and_nested():
    x_all, digit = data.digits()
    even_rows = {r.tobytes() for r in x_all[digit % 2 == 0]}
    odd_rows = {r.tobytes() for r in x_all[digit % 2 == 1]}
    split = data.digits_parity_split(101, 40, 61, KEY)
    assert split.x_train.shape == (101, 64) and split.x_val.shape == (40, 64) and split.x_test.shape == (61, 64)
    for x, y in ((split.x_train, split.y_train), (split.x_val, split.y_val), (split.x_test, split.y_test)):
        assert set(np.unique(y)) == {-1.0, 1.0}
        assert abs(int(np.sum(y))) <= 1, "parity must be balanced within one"
        for row, label in zip(x, y):
            assert row.tobytes() in (even_rows if label > 0 else odd_rows)
    sets = [{r.tobytes() for r in part} for part in (split.x_train, split.x_val, split.x_test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    bigger = data.digits_parity_split(300, 40, 61, KEY)
    np.testing.assert_array_equal(bigger.x_train[:101], split.x_train)
    np.testing.assert_array_equal(bigger.x_val, split.x_val)
    np.testing.assert_array_equal(bigger.x_test, split.x_test)
    assert abs(int(np.sum(bigger.y_train[:37]))) <= 1, "prefixes are balanced too"
    other = data.digits_parity_split(101, 40, 61, jax.random.PRNGKey(9))
    assert not np.array_equal(other.x_test, split.x_test)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda w: data.random_direction(0, KEY), "dim"),
        (lambda w: data.single_index(0, KEY, w), "n must be"),
        (lambda w: data.single_index(5, KEY, 2 * w), "unit vector"),
        (lambda w: data.single_index(5, KEY, w[None]), "unit vector"),
        (lambda w: data.single_index(5, KEY, w, link="square"), "link"),
        (lambda w: data.single_index(5, 3, w), "key must be a single JAX PRNG key"),
        (lambda w: data.single_index_split(5, 0, 5, KEY, w), "n_val"),
        (lambda w: data.digits_parity_split(5, 5, 0, KEY), "n_test"),
        (lambda w: data.digits_parity_split(1700, 50, 50, KEY), "needs .* digits"),
    ],
)
def test_bad_inputs_raise(call, match):
    w = data.random_direction(6, KEY)
    with pytest.raises((ValueError, TypeError), match=match):
        call(w)
