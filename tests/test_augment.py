"""Augmentations of the 8x8 digits against hand-made arrays and numpy.

Oracles: shifts and Cutout written out by hand with numpy slicing, quarter turns
from ``numpy.rot90`` (on an 8x8 grid a rotation by 90 degrees about the centre
maps pixels onto pixels, so bilinear resampling must reproduce it exactly up to
float32 rounding of cos/sin).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import augment, data

KEY = jax.random.PRNGKey(0)
IMG = np.arange(64, dtype=np.float32).reshape(8, 8) + 1.0  # no zeros: fill is visible


def _hand_shift(x, dx, dy, fill=0.0):
    out = np.full_like(x, fill)
    h, w = x.shape
    src = x[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


@pytest.mark.parametrize("dx,dy", [(1, 0), (0, 1), (-2, 1), (3, -3), (0, 0)])
def test_translate_matches_hand_shifted_array(dx, dy):
    np.testing.assert_array_equal(np.asarray(augment.translate(IMG, dx, dy)), _hand_shift(IMG, dx, dy))
    np.testing.assert_array_equal(np.asarray(augment.translate(IMG, dx, dy, fill=-1.0)),
                                  _hand_shift(IMG, dx, dy, fill=-1.0))


def test_rotate_quarter_turn_matches_rot90_and_full_turn_is_identity():
    # 2e-5 * 64: float32 cos(pi/2) ~ -4e-8 moves a sample by < 1e-6 pixels, times values <= 64
    np.testing.assert_allclose(np.asarray(augment.rotate(IMG, 90.0)), np.rot90(IMG, k=-1), atol=2e-5 * 64)
    np.testing.assert_allclose(np.asarray(augment.rotate(IMG, -90.0)), np.rot90(IMG, k=1), atol=2e-5 * 64)
    np.testing.assert_allclose(np.asarray(augment.rotate(IMG, 0.0)), IMG, atol=0)
    # a small rotation moves mass: not the identity
    assert np.abs(np.asarray(augment.rotate(IMG, 10.0)) - IMG).max() > 1.0


def test_cutout_matches_hand_mask():
    expected = IMG.copy()
    expected[3:6, 1:4] = 0.0  # centre (4, 2), side 3: rows 3..5, columns 1..3
    np.testing.assert_array_equal(np.asarray(augment.cutout(IMG, 4, 2, 3)), expected)
    corner = IMG.copy()
    corner[0:1, 0:1] = 0.0  # side 2 at (0, 0) covers rows/columns -1..0, clipped to 0
    np.testing.assert_array_equal(np.asarray(augment.cutout(IMG, 0, 0, 2)), corner)
    np.testing.assert_array_equal(np.asarray(augment.cutout(IMG, 4, 4, 0)), IMG)


@pytest.mark.parametrize("shape", [(5, 64), (5, 8, 8), (5, 8, 8, 1)])
def test_batches_keep_shape_and_dtype(shape):
    x = jnp.asarray(np.random.default_rng(0).random(shape), jnp.float32)
    for out in (augment.weak(KEY, x), augment.strong(KEY, x)):
        assert out.shape == shape and out.dtype == x.dtype


def test_deterministic_given_key_and_different_across_keys():
    x, _ = data.digits(normalize="pixels")
    x = jnp.asarray(x[:32])
    for fn in (augment.weak, augment.strong):
        a, b = fn(KEY, x), fn(KEY, x)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        c = fn(jax.random.PRNGKey(1), x)
        assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_identity_at_strength_zero():
    x = jnp.asarray(np.random.default_rng(1).random((7, 64)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(augment.weak(KEY, x, max_shift=0)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(augment.strong(KEY, x, strength=0.0)), np.asarray(x))


def test_weak_view_is_one_of_the_allowed_shifts():
    # every weak view must equal the hand shift of its image by some (dx, dy) in {-1, 0, 1}^2
    x, _ = data.digits(normalize="pixels")
    imgs = x[:20].reshape(-1, 8, 8)
    out = np.asarray(augment.weak(KEY, jnp.asarray(imgs)))
    seen = set()
    for im, o in zip(imgs, out):
        hits = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if np.array_equal(o, _hand_shift(im, dx, dy))]
        assert hits, "weak view is not a shift by at most one pixel"
        seen.update(hits)
    assert len(seen) >= 3  # 20 draws from 9 shifts: P(<= 2 distinct) is below 1e-12


def test_strong_noise_level_matches_noise_std():
    # geometric parts and Cutout off: the difference is the noise, whose sample std over
    # 64 * 200 entries has relative standard error 1/sqrt(2 * 12800) ~ 0.6 %; allow 5 % (8 se)
    x = jnp.zeros((200, 64), jnp.float32)
    out = augment.strong(KEY, x, max_shift=0, max_angle=0.0, cutout_size=0, noise_std=0.3, strength=0.5)
    assert float(jnp.std(out)) == pytest.approx(0.15, rel=0.05)


@pytest.mark.parametrize("kwargs,name", [
    (dict(max_shift=-1), "max_shift"), (dict(max_shift=1.5), "max_shift"),
    (dict(strength=1.5), "strength"), (dict(strength=-0.1), "strength"),
    (dict(noise_std=-1.0), "noise_std"), (dict(cutout_size=-2), "cutout_size"), (dict(max_angle=float("nan")), "max_angle"),
])
def test_bad_magnitudes_raise_naming_the_argument(kwargs, name):
    x = jnp.zeros((2, 64))
    fn = augment.weak if set(kwargs) == {"max_shift"} else augment.strong
    with pytest.raises(ValueError, match=name):
        fn(KEY, x, **kwargs)


def test_bad_images_and_keys_raise():
    with pytest.raises(ValueError, match="images"):
        augment.weak(KEY, jnp.zeros((2, 63)))
    with pytest.raises(ValueError, match="images"):
        augment.strong(KEY, jnp.zeros((64,)))
    with pytest.raises(TypeError, match="images"):
        augment.weak(KEY, jnp.zeros((2, 64), jnp.int32))
    with pytest.raises(TypeError, match="key"):
        augment.weak(0, jnp.zeros((2, 64)))
    with pytest.raises(ValueError, match="image"):
        augment.translate(jnp.zeros((8, 7)), 1, 0)
    with pytest.raises(ValueError, match="size"):
        augment.cutout(IMG, 1, 1, -1)
