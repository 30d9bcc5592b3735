"""Batched augmentations against numpy-made views.

Replaces a test that compared ``weak``/``strong`` with ``vmap`` of ``weak_one``/``strong_one``
(the code with itself). Oracles here: shifts and Cutout squares written with numpy
slicing; the shift drawn for batch position ``i`` is read off a marker image (one
bright pixel) augmented with the same key, so the check is that position ``i``'s view
is an exact hand shift of image ``i`` by the shift of key ``i``, whatever the images
and the batch layout; and views of one image do not depend on the other images.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import augment

KEY = jax.random.PRNGKey(11)
NB = 24


def _hand_shift(x, dx, dy, fill=0.0):
    out = np.full_like(x, fill)
    h, w = x.shape
    src = x[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def _hand_cutout(x, row, col, size, fill=0.0):
    out = x.copy()
    lo_r, lo_c = row - size // 2, col - size // 2
    out[max(lo_r, 0):max(lo_r + size, 0), max(lo_c, 0):max(lo_c + size, 0)] = fill
    return out


def _images(seed=0):
    return np.random.default_rng(seed).uniform(1.0, 2.0, (NB, 8, 8)).astype(np.float32)  # no zeros


def _shifts_from_markers(fn):
    """(dx, dy) drawn for each batch position, read off a marker pixel at (3, 4)."""
    markers = np.zeros((NB, 8, 8), np.float32)
    markers[:, 3, 4] = 1.0
    out = np.asarray(fn(jnp.asarray(markers)))
    shifts = []
    for o in out:
        (r,), (c,) = np.nonzero(o > 0.5)
        assert np.isclose(o.sum(), 1.0)  # an exact pixel shift: the marker is not smeared
        shifts.append((c - 4, r - 3))
    return shifts


@pytest.mark.parametrize("layout", [(NB, 64), (NB, 8, 8), (NB, 8, 8, 1)])
def test_weak_batch_views_are_hand_shifts_by_the_key_of_their_position(layout):
    weak = jax.jit(lambda k, im: augment.weak(k, im, max_shift=2))
    shifts = _shifts_from_markers(lambda m: weak(KEY, m))
    assert all(abs(dx) <= 2 and abs(dy) <= 2 for dx, dy in shifts)
    assert len(set(shifts)) >= 5  # 24 draws from 25 shifts: fewer than 5 distinct has p < 1e-9
    x = _images()
    out = np.asarray(weak(KEY, jnp.asarray(x.reshape(layout)))).reshape(NB, 8, 8)
    for i, (dx, dy) in enumerate(shifts):
        np.testing.assert_array_equal(out[i], _hand_shift(x[i], dx, dy), err_msg=f"image {i}")


def test_strong_geometric_part_alone_is_a_hand_shift():
    # rotation, noise and Cutout off: the strong view is an integer shift by <= max_shift
    kw = dict(max_shift=2, max_angle=0.0, noise_std=0.0, cutout_size=0)
    shifts = _shifts_from_markers(lambda m: augment.strong(KEY, m, **kw))
    assert all(abs(dx) <= 2 and abs(dy) <= 2 for dx, dy in shifts)
    x = _images(1)
    out = np.asarray(augment.strong(KEY, jnp.asarray(x), **kw))
    for i, (dx, dy) in enumerate(shifts):
        np.testing.assert_allclose(out[i], _hand_shift(x[i], dx, dy), atol=1e-6, err_msg=f"image {i}")


def test_strong_cutout_alone_zeroes_one_clipped_square():
    # shift, rotation and noise off: each view is the image with one size-3 square
    # (clipped at the border) set to the fill value, at a centre that varies by image
    kw = dict(max_shift=0, max_angle=0.0, noise_std=0.0, cutout_size=3)
    x = _images(2)
    out = np.asarray(augment.strong(KEY, jnp.asarray(x), **kw))
    centres = []
    for i in range(NB):
        hits = [(r, c) for r in range(8) for c in range(8) if np.array_equal(out[i], _hand_cutout(x[i], r, c, 3))]
        assert hits, f"image {i} is not a Cutout of side 3"
        centres.append(hits[0])
    assert len(set(centres)) >= 5  # 24 centres drawn from 64: p(< 5 distinct) < 1e-12


def test_a_view_depends_only_on_its_own_image_and_position():
    # full strong augmentation: replacing every other image leaves view 0 and view 5 as they were
    x = _images(3)
    a = np.asarray(augment.strong(KEY, jnp.asarray(x)))
    y = _images(4)
    y[[0, 5]] = x[[0, 5]]
    b = np.asarray(augment.strong(KEY, jnp.asarray(y)))
    np.testing.assert_array_equal(a[[0, 5]], b[[0, 5]])
    # but two positions holding the same image get different views (different keys)
    same = np.repeat(x[:1], NB, axis=0)
    views = np.asarray(augment.strong(KEY, jnp.asarray(same)))
    assert len({v.tobytes() for v in views}) == NB
