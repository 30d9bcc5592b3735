"""Weak and strong data augmentation for the 8x8 digits, as pure functions of a key.

FixMatch ([fixmatch]; [trace] Sect. 5.3, eqs. 5-6) trains on two views of each
unlabelled image: a *weak* view ``omega(x)`` from which it reads a pseudo-label,
and a *strong* view ``Omega(x)`` on which it fits that label. On CIFAR the weak
view is a flip and a small translation and the strong one is RandAugment plus
Cutout. For 8x8 digits (no flips: a mirrored 2 is not a 2) this module uses

- weak: a random integer translation by at most ``max_shift`` pixels per axis;
- strong: a random translation (up to ``max_shift`` pixels), a rotation by a
  random angle in ``[-max_angle, max_angle]`` degrees, additive Gaussian noise of
  standard deviation ``noise_std`` and a Cutout square of side ``cutout_size``
  at a random centre, every magnitude multiplied by ``strength`` in ``[0, 1]``.

Both are the identity at strength 0 (``max_shift=0`` for the weak one). Geometric
transforms resample the image with bilinear interpolation
(``jax.scipy.ndimage.map_coordinates``) and fill what comes in from outside the
frame with ``fill`` (0, the background of ``data.digits(normalize="pixels")``);
an integer translation is therefore an exact pixel shift.

The single-image functions (:func:`translate`, :func:`rotate`, :func:`cutout`,
:func:`weak_one`, :func:`strong_one`) are jittable and ``vmap``-able;
:func:`weak` and :func:`strong` apply them to a batch with one key per image,
for images stored flat ``(N, 64)``, as ``(N, 8, 8)`` or NHWC ``(N, 8, 8, 1)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

SIDE = 8  # the digits are 8x8


# --------------------------------------------------------------------------- checks
def _check_nonneg(value: Any, name: str, *, integer: bool = False, upper: float | None = None) -> Any:
    """A non-negative integer (``integer=True``) or finite real, at most ``upper`` where given."""
    if integer:
        value = _checks.nonneg_int(value, name)
        if upper is not None and value > upper:
            raise ValueError(f"{name} must lie in [0, {upper}], got {value!r}")
        return value
    return _checks.finite(value, name, low=0.0, high=upper)


def _check_image(image: Any) -> jax.Array:
    image = jnp.asarray(image)
    if image.shape != (SIDE, SIDE):
        raise ValueError(f"image must have shape ({SIDE}, {SIDE}), got {image.shape}")
    if not jnp.issubdtype(image.dtype, jnp.floating):
        raise TypeError(f"image must be floating point, got {image.dtype}")
    return _checks.finite_array(image, "image")


def _as_images(images: Any) -> tuple[jax.Array, tuple[int, ...]]:
    """``(N, 8, 8)`` view of a batch stored as ``(N, 64)``, ``(N, 8, 8)`` or ``(N, 8, 8, 1)``."""
    images = jnp.asarray(images)
    shape = images.shape
    if not (len(shape) >= 2 and shape[0] >= 1 and int(np.prod(shape[1:])) == SIDE * SIDE
            and shape[1:] in ((SIDE * SIDE,), (SIDE, SIDE), (SIDE, SIDE, 1))):
        raise ValueError(f"images must have shape (N, 64), (N, 8, 8) or (N, 8, 8, 1) with N >= 1, got {shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"images must be floating point, got {images.dtype}")
    _checks.finite_array(images, "images")
    return images.reshape(shape[0], SIDE, SIDE), shape


# ----------------------------------------------------------------- single-image ops
def _warp(image: jax.Array, angle_deg: jax.Array, dx: jax.Array, dy: jax.Array, fill: float) -> jax.Array:
    """Rotate by ``angle_deg`` about the centre, then translate by ``(dx, dy)`` (bilinear)."""
    c = (SIDE - 1) / 2.0
    rows, cols = jnp.meshgrid(jnp.arange(SIDE, dtype=image.dtype), jnp.arange(SIDE, dtype=image.dtype),
                              indexing="ij")
    # output pixel (r, c) reads the input at the inverse transform of (r, c)
    r0, c0 = rows - dy - c, cols - dx - c
    theta = jnp.deg2rad(jnp.asarray(angle_deg, image.dtype))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    src_r = cos * r0 - sin * c0 + c
    src_c = sin * r0 + cos * c0 + c
    return jax.scipy.ndimage.map_coordinates(image, [src_r, src_c], order=1, mode="constant", cval=fill)


def translate(image: Any, dx: Any, dy: Any, *, fill: float = 0.0) -> jax.Array:
    """Shift an 8x8 image ``dx`` pixels right and ``dy`` pixels down, filling with ``fill``.

    ``out[r, c] = image[r - dy, c - dx]`` where that pixel exists; integer shifts are
    exact, fractional ones bilinear. Jittable in ``dx`` and ``dy``.
    """
    image = _check_image(image)
    return _warp(image, jnp.zeros((), image.dtype), jnp.asarray(dx, image.dtype), jnp.asarray(dy, image.dtype),
                 fill)


def rotate(image: Any, angle_deg: Any, *, fill: float = 0.0) -> jax.Array:
    """Rotate an 8x8 image by ``angle_deg`` degrees about its centre (bilinear, ``fill`` outside).

    The angle is measured from the column axis towards the row axis, so
    ``angle_deg=90`` equals ``numpy.rot90(image, k=-1)`` (a clockwise quarter turn
    on screen) up to rounding.
    """
    image = _check_image(image)
    if not isinstance(angle_deg, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(jnp.asarray(angle_deg)))):
        raise ValueError(f"angle_deg must be finite, got {angle_deg!r}")
    zero = jnp.zeros((), image.dtype)
    return _warp(image, jnp.asarray(angle_deg, image.dtype), zero, zero, fill)


def cutout(image: Any, row: Any, col: Any, size: int, *, fill: float = 0.0) -> jax.Array:
    """Set a ``size`` x ``size`` square of an 8x8 image to ``fill`` (Cutout, DeVries & Taylor 2017).

    The square covers rows ``row - size // 2 ... row - size // 2 + size - 1`` (and the
    same for columns), clipped to the image; ``size=0`` is the identity. ``row`` and
    ``col`` may be traced; ``size`` is a static integer.
    """
    image = _check_image(image)
    size = _check_nonneg(size, "size", integer=True)
    idx = jnp.arange(SIDE)
    lo_r, lo_c = jnp.asarray(row) - size // 2, jnp.asarray(col) - size // 2
    in_r = (idx >= lo_r) & (idx < lo_r + size)
    in_c = (idx >= lo_c) & (idx < lo_c + size)
    mask = in_r[:, None] & in_c[None, :]
    return jnp.where(mask, jnp.asarray(fill, image.dtype), image)


def _random_shift(key: jax.Array, max_shift: int, dtype) -> tuple[jax.Array, jax.Array]:
    d = jax.random.randint(key, (2,), -max_shift, max_shift + 1)
    return d[0].astype(dtype), d[1].astype(dtype)


def weak_one(key: jax.Array, image: Any, *, max_shift: int = 1, fill: float = 0.0) -> jax.Array:
    """The weak view ``omega(x)`` of one 8x8 image: an integer shift, uniform in
    ``{-max_shift, ..., max_shift}`` on each axis. ``max_shift=0`` is the identity."""
    image = _check_image(image)
    max_shift = _check_nonneg(max_shift, "max_shift", integer=True)
    if max_shift == 0:
        return image
    dx, dy = _random_shift(key, max_shift, image.dtype)
    return _warp(image, jnp.zeros((), image.dtype), dx, dy, fill)


def strong_one(
    key: jax.Array,
    image: Any,
    *,
    strength: float = 1.0,
    max_shift: int = 2,
    max_angle: float = 20.0,
    noise_std: float = 0.1,
    cutout_size: int = 3,
    fill: float = 0.0,
) -> jax.Array:
    """The strong view ``Omega(x)`` of one 8x8 image (module docstring).

    Magnitudes at ``strength`` ``s``: shift up to ``round(s * max_shift)`` pixels,
    angle up to ``s * max_angle`` degrees, noise ``s * noise_std``, Cutout side
    ``round(s * cutout_size)``. ``strength=0`` is the identity.
    """
    image = _check_image(image)
    strength = _check_nonneg(strength, "strength", upper=1.0)
    max_shift = _check_nonneg(max_shift, "max_shift", integer=True)
    max_angle = _check_nonneg(max_angle, "max_angle")
    noise_std = _check_nonneg(noise_std, "noise_std")
    cutout_size = _check_nonneg(cutout_size, "cutout_size", integer=True)
    if strength == 0:
        return image
    k_shift, k_angle, k_noise, k_cut = jax.random.split(key, 4)
    shift = int(round(strength * max_shift))
    dx, dy = _random_shift(k_shift, shift, image.dtype)
    angle = strength * max_angle * jax.random.uniform(k_angle, (), image.dtype, -1.0, 1.0)
    out = _warp(image, angle, dx, dy, fill)
    out = out + strength * noise_std * jax.random.normal(k_noise, out.shape, out.dtype)
    size = int(round(strength * cutout_size))
    if size > 0:
        rc = jax.random.randint(k_cut, (2,), 0, SIDE)
        out = cutout(out, rc[0], rc[1], size, fill=fill)
    return out


# -------------------------------------------------------------------------- batches
def strong_settings(*, strength: float = 1.0, max_shift: int = 2, max_angle: float = 20.0, noise_std: float = 0.1,
                    cutout_size: int = 3, fill: float = 0.0) -> dict:
    """The keyword arguments of :func:`strong` checked (and converted), without augmenting anything.

    Raises:
        ValueError: ``strength`` outside ``[0, 1]``, a negative or non-finite magnitude, a
            non-integer shift or Cutout size, a non-finite ``fill``.
        TypeError: an unknown keyword.
    """
    _checks.finite(fill, "fill")
    return dict(strength=_check_nonneg(strength, "strength", upper=1.0),
                max_shift=_check_nonneg(max_shift, "max_shift", integer=True),
                max_angle=_check_nonneg(max_angle, "max_angle"),
                noise_std=_check_nonneg(noise_std, "noise_std"),
                cutout_size=_check_nonneg(cutout_size, "cutout_size", integer=True), fill=fill)


def weak(key: jax.Array, images: Any, *, max_shift: int = 1, fill: float = 0.0) -> jax.Array:
    """:func:`weak_one` on every image of a batch (key ``i`` of ``split(key, N)`` for image ``i``).

    Args:
        key: PRNG key.
        images: ``(N, 64)``, ``(N, 8, 8)`` or ``(N, 8, 8, 1)``, floating point.
        max_shift: largest shift in pixels (>= 0); 0 is the identity.
        fill: value for pixels shifted in from outside the frame.

    Returns:
        Augmented images, same shape and dtype as ``images``.

    Raises:
        TypeError: ``key`` is not a PRNG key, or integer images.
        ValueError: a bad shape or a negative / non-integer ``max_shift``.
    """
    key = _checks.key(key)
    imgs, shape = _as_images(images)
    max_shift = _check_nonneg(max_shift, "max_shift", integer=True)
    keys = jax.random.split(key, imgs.shape[0])
    out = jax.vmap(lambda k, im: weak_one(k, im, max_shift=max_shift, fill=fill))(keys, imgs)
    return out.reshape(shape)


def strong(
    key: jax.Array,
    images: Any,
    *,
    strength: float = 1.0,
    max_shift: int = 2,
    max_angle: float = 20.0,
    noise_std: float = 0.1,
    cutout_size: int = 3,
    fill: float = 0.0,
) -> jax.Array:
    """:func:`strong_one` on every image of a batch (one key per image, as in :func:`weak`).

    Args:
        key: PRNG key.
        images: ``(N, 64)``, ``(N, 8, 8)`` or ``(N, 8, 8, 1)``, floating point.
        strength: in ``[0, 1]``, scales every magnitude; 0 is the identity.
        max_shift, max_angle, noise_std, cutout_size: magnitudes at strength 1
            (pixels, degrees, standard deviation, pixels; all >= 0).
        fill: value for pixels from outside the frame and inside the Cutout square.

    Returns:
        Augmented images, same shape and dtype as ``images``.

    Raises:
        TypeError: ``key`` is not a PRNG key, or integer images.
        ValueError: a bad shape, ``strength`` outside ``[0, 1]``, a negative magnitude.
    """
    key = _checks.key(key)
    imgs, shape = _as_images(images)
    kwargs = strong_settings(strength=strength, max_shift=max_shift, max_angle=max_angle, noise_std=noise_std,
                             cutout_size=cutout_size, fill=fill)
    keys = jax.random.split(key, imgs.shape[0])
    out = jax.vmap(lambda k, im: strong_one(k, im, **kwargs))(keys, imgs)
    return out.reshape(shape)


def match_norms(images: Any, reference: Any) -> jax.Array:
    """Rescale each image to the Euclidean norm of its reference image.

    The control of the "input norm" explanation of [trace] Sect. 5.3.1 in chapter 9:
    a strong view rescaled to the norm of the weak view of the same image keeps
    the strong view's shape (rotation, noise, Cutout) and takes the weak view's
    ``||x||^2``, so a trace gap that survives the rescaling is not a norm effect.

    Args:
        images: ``(N, ...)`` floating-point images (e.g. strong views).
        reference: same shape; image ``i`` gets the norm of ``reference[i]``.

    Returns:
        ``images[i] * ||reference[i]|| / ||images[i]||``, same shape and dtype as ``images``.

    Raises:
        ValueError: mismatched shapes, non-finite values, or an image of norm 0
            whose reference has a non-zero norm (no rescaling reaches it).
    """
    x = _checks.finite_array(images, "images")
    r = _checks.finite_array(reference, "reference")
    if x.shape != r.shape or x.ndim < 1:
        raise ValueError(f"images and reference must have the same shape (N, ...), got {x.shape} and {r.shape}")
    axes = tuple(range(1, x.ndim))
    nx = np.sqrt(np.sum(np.asarray(x, np.float64) ** 2, axis=axes))
    nr = np.sqrt(np.sum(np.asarray(r, np.float64) ** 2, axis=axes))
    if np.any((nx == 0) & (nr > 0)):
        raise ValueError("an image of norm 0 cannot be rescaled to a non-zero reference norm")
    scale = np.where(nx > 0, nr / np.where(nx > 0, nx, 1.0), 1.0)
    return (x * jnp.asarray(scale, x.dtype).reshape((-1,) + (1,) * len(axes))).astype(x.dtype)
