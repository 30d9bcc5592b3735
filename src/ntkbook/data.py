"""Offline datasets for the book.

Nothing here touches the network. The book's stand-in for MNIST is scikit-learn's
bundled ``digits`` (1797 grey-scale 8x8 images, about 180 per class); the
synthetic sets are generated from an explicit ``jax.random`` key, so the same key
always gives the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

Normalize = Literal["pixels", "sphere"]

DIGITS_SIDE = 8
DIGITS_CLASSES = 10
#: Images in the smallest class of scikit-learn's digits (digit 8; the largest, digit 3, has 183).
DIGITS_MIN_PER_CLASS = 174


class Split(NamedTuple):
    """A train/test split. ``y`` are integer labels unless stated otherwise."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


NORMALIZE: tuple[str, ...] = ("pixels", "sphere")


@lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int32)


def _normalize(x: np.ndarray, how: Normalize) -> np.ndarray:
    x = x / 16.0
    if how == "pixels":
        return x
    if how == "sphere":
        # Centre each image and put it on the sphere of radius sqrt(d): then the
        # first pre-activation of an NTK-parameterised layer has variance
        # sigma_w^2 + sigma_b^2 for every input, as in the mean-field analysis.
        x = x - x.mean(axis=1, keepdims=True)
        return x * np.sqrt(x.shape[1]) / np.linalg.norm(x, axis=1, keepdims=True)
    raise ValueError(f"normalize must be 'pixels' or 'sphere', got {how!r}")


def digits(*, normalize: Normalize = "sphere", flatten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 scikit-learn digits.

    Args:
        normalize: ``"pixels"`` scales to [0, 1]; ``"sphere"`` (default) centres each
            image and scales it to Euclidean norm ``sqrt(64)``.
        flatten: ``True`` gives shape ``(1797, 64)``; ``False`` gives NHWC
            ``(1797, 8, 8, 1)`` for convolutional models.

    Returns:
        ``(x, y)`` with float32 images and int32 labels in ``0..9``.
    """
    _checks.choice(normalize, "normalize", NORMALIZE)
    _checks.boolean(flatten, "flatten")
    x, y = _digits_raw()
    x = _normalize(x, normalize).astype(np.float32)
    if not flatten:
        x = x.reshape(-1, DIGITS_SIDE, DIGITS_SIDE, 1)
    return x, y.copy()


def balanced_indices(
    labels: np.ndarray, n_per_class: int, key: jax.Array, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Indices of a class-balanced random subset: ``n_per_class`` of each class.

    The result is ordered by class (all of class ``classes[0]`` first, ...), which
    makes kernel heatmaps block-structured without further sorting.

    Raises:
        ValueError: a class has fewer than ``n_per_class`` examples, or is absent.
    """
    n_per_class = _checks.positive_int(n_per_class, "n_per_class")
    _checks.key(key)
    labels = _checks.labels(labels, "labels")
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    picked = []
    for c, k in zip(classes, jax.random.split(key, len(classes))):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {int(c)} has {len(idx)} examples, fewer than n_per_class={n_per_class}")
        perm = np.asarray(jax.random.permutation(k, len(idx)))
        picked.append(np.sort(idx[perm[:n_per_class]]))
    return np.concatenate(picked)


def digits_split(
    n_train_per_class: int,
    n_test_per_class: int,
    key: jax.Array,
    *,
    classes: Sequence[int] | None = None,
    normalize: Normalize = "sphere",
    flatten: bool = True,
    relabel: bool = True,
) -> Split:
    """Disjoint, class-balanced train and test subsets of the digits.

    Args:
        n_train_per_class: training images per class.
        n_test_per_class: test images per class (disjoint from the training ones).
        key: PRNG key choosing the subset.
        classes: which digits to keep (default all ten).
        normalize, flatten: as in :func:`digits`.
        relabel: map ``classes`` to ``0..len(classes)-1`` (default) so the labels
            can index one-hot targets directly.

    Returns:
        A :class:`Split`; both parts are sorted by class.
    """
    n_train_per_class = _checks.positive_int(n_train_per_class, "n_train_per_class")
    n_test_per_class = _checks.positive_int(n_test_per_class, "n_test_per_class")
    _checks.key(key)
    _checks.boolean(relabel, "relabel")
    if classes is not None:
        classes = _checks.positive_ints(classes, "classes", minimum=0)
    classes = list(range(DIGITS_CLASSES)) if classes is None else [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not set(classes) <= set(range(DIGITS_CLASSES)):
        raise ValueError(f"classes must be distinct digits in 0..9, got {classes}")
    x, y = digits(normalize=normalize, flatten=flatten)
    smallest = int(np.bincount(y, minlength=DIGITS_CLASSES)[classes].min())
    if n_train_per_class + n_test_per_class > smallest:
        raise ValueError(f"n_train_per_class + n_test_per_class = {n_train_per_class + n_test_per_class} exceeds "
                         f"the {smallest} images of the smallest requested class (the digits have "
                         f"{DIGITS_MIN_PER_CLASS} to 183 per class)")
    both = balanced_indices(y, n_train_per_class + n_test_per_class, key, classes)
    per = n_train_per_class + n_test_per_class
    blocks = both.reshape(len(classes), per)
    train_idx = blocks[:, :n_train_per_class].ravel()
    test_idx = blocks[:, n_train_per_class:].ravel()
    y_out = y
    if relabel:
        lut = np.full(DIGITS_CLASSES, -1, dtype=np.int32)
        lut[classes] = np.arange(len(classes), dtype=np.int32)
        y_out = lut[y]
    return Split(x[train_idx], y_out[train_idx], x[test_idx], y_out[test_idx])


def one_hot(labels: np.ndarray, num_classes: int, *, dtype=np.float32) -> np.ndarray:
    """One-hot encode integer ``labels`` into shape ``(n, num_classes)``."""
    num_classes = _checks.positive_int(num_classes, "num_classes")
    labels = _checks.labels(labels, "labels", num_classes)
    _checks.float_dtype(dtype, "dtype")
    return np.eye(num_classes, dtype=dtype)[labels]


_TARGETS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sine": lambda x: jnp.sin(np.pi * x),
    "cubic": lambda x: 1.5 * x**3 - x,
    "step": lambda x: jnp.tanh(8.0 * x),
}


def regression_1d(
    n: int,
    key: jax.Array,
    *,
    target: str | Callable[[jax.Array], jax.Array] = "sine",
    x_range: tuple[float, float] = (-1.0, 1.0),
    noise: float = 0.0,
    spacing: Literal["random", "grid"] = "random",
) -> tuple[jax.Array, jax.Array]:
    """A 1-D regression set ``y = target(x) + noise``.

    Args:
        n: number of points.
        key: PRNG key for the inputs (``spacing="random"``) and the noise.
        target: ``"sine"`` (sin(pi x)), ``"cubic"``, ``"step"`` (a smooth step) or a function.
        x_range: interval of the inputs.
        noise: standard deviation of additive Gaussian noise (>= 0).
        spacing: uniform random inputs, or an evenly spaced grid.

    Returns:
        ``(x, y)`` of shape ``(n, 1)`` each, sorted by ``x``.
    """
    n = _checks.positive_int(n, "n")
    _checks.key(key)
    noise = _checks.nonneg(noise, "noise")
    if isinstance(x_range, (str, bytes)) or not isinstance(x_range, Sequence) or len(x_range) != 2:
        raise ValueError(f"x_range must be (low, high), got {x_range!r}")
    lo, hi = x_range
    _checks.finite(lo, "x_range[0]"), _checks.finite(hi, "x_range[1]")
    if not lo < hi:
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range}")
    fn = _TARGETS.get(target) if isinstance(target, str) else target
    if fn is None or not callable(fn):
        raise ValueError(f"unknown target {target!r}; expected one of {sorted(_TARGETS)} or a callable")
    _checks.choice(spacing, "spacing", ("random", "grid"))
    kx, kn = jax.random.split(key)
    if spacing == "grid":
        x = jnp.linspace(lo, hi, n)
    elif spacing == "random":
        x = jnp.sort(jax.random.uniform(kx, (n,), minval=lo, maxval=hi))
    else:
        raise ValueError(f"spacing must be 'random' or 'grid', got {spacing!r}")
    y = fn(x) + noise * jax.random.normal(kn, (n,))
    return x[:, None], y[:, None]


def modular_arithmetic(p: int, train_fraction: float, key: jax.Array, *, op: str = "add") -> Split:
    """All pairs ``(a, b)`` with label ``(a op b) mod p``, split at random.

    Args:
        p: the modulus (>= 2).
        train_fraction: fraction of the ``p**2`` pairs used for training, in (0, 1).
        key: PRNG key for the split.
        op: ``"add"``, ``"sub"`` or ``"mul"``.

    Returns:
        A :class:`Split` whose ``x`` are int32 token pairs of shape ``(n, 2)``; use
        :func:`one_hot_pairs` for a fixed-size input to an MLP.
    """
    _checks.positive_int(p, "modulus p", minimum=2)
    _checks.probability(train_fraction, "train_fraction", open_low=True, open_high=True)
    _checks.key(key)
    ops = {"add": np.add, "sub": np.subtract, "mul": np.multiply}
    if op not in ops:
        raise ValueError(f"op must be one of {sorted(ops)}, got {op!r}")
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    pairs = np.stack([a.ravel(), b.ravel()], axis=1).astype(np.int32)
    labels = (ops[op](pairs[:, 0], pairs[:, 1]) % p).astype(np.int32)
    perm = np.asarray(jax.random.permutation(key, len(pairs)))
    n_train = int(round(train_fraction * len(pairs)))
    if n_train < 1 or n_train >= len(pairs):
        raise ValueError(f"train_fraction={train_fraction} leaves an empty train or test set for p={p}")
    tr, te = perm[:n_train], perm[n_train:]
    return Split(pairs[tr], labels[tr], pairs[te], labels[te])


def one_hot_pairs(pairs: np.ndarray, p: int) -> np.ndarray:
    """Concatenated one-hot codes of a token pair: shape ``(n, 2 p)``."""
    pairs = np.asarray(pairs)
    p = _checks.positive_int(p, "p")
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (n, 2), got {pairs.shape}")
    return np.concatenate([one_hot(pairs[:, 0], p), one_hot(pairs[:, 1], p)], axis=1)


# --- teacher and single-index tasks (chapter 10) ---
LINKS: tuple[str, ...] = ("even", "sign", "cubic")
# |z| exceeds this with probability 1/2 for z ~ N(0, 1): the median of |z|,
# Phi^{-1}(3/4) = 0.6744897501960817, makes the "even" task balanced.
_EVEN_THRESHOLD = 0.6744897501960817


class HeldOutSplit(NamedTuple):
    """Train, validation (for early stopping) and test sets; labels are +-1 floats."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def random_direction(dim: int, key: jax.Array) -> np.ndarray:
    """A unit vector drawn uniformly from the sphere in ``R^dim`` (float32)."""
    dim = _checks.positive_int(dim, "dim")
    _checks.key(key)
    v = np.asarray(jax.random.normal(key, (dim,)), dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _link(link: str, z: np.ndarray) -> np.ndarray:
    if link == "even":
        out = np.abs(z) > _EVEN_THRESHOLD
    elif link == "sign":
        out = z > 0
    elif link == "cubic":
        out = z**3 - 3.0 * z > 0  # sign of the Hermite polynomial He_3
    else:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    return np.where(out, 1.0, -1.0).astype(np.float32)


def single_index(n: int, key: jax.Array, direction: np.ndarray, *, link: str = "even") -> tuple[np.ndarray, np.ndarray]:
    """A binary single-index task: ``x ~ N(0, I_d)``, ``y = g(<w, x>)`` in {-1, +1}.

    The label depends on the input only through its projection ``z = <w, x>`` on
    one unit direction ``w``; the other ``d - 1`` directions are irrelevant. A
    network that learns ``w`` solves a one-dimensional problem, while a
    rotation-invariant kernel has to find ``w`` from ``d``-dimensional data
    (chapter 10). Links ``g``:

    - ``"even"``: ``+1`` if ``|z| > Phi^{-1}(3/4)`` (balanced; no linear part,
      so a kernel must learn a degree-2 function of ``x``);
    - ``"sign"``: ``sign(z)``, a half-space (the "stripe" of Paccolat et al. 2021);
    - ``"cubic"``: ``sign(z^3 - 3 z)``, the sign of the Hermite polynomial ``He_3``.

    Args:
        n: number of samples.
        key: PRNG key for the inputs.
        direction: the unit vector ``w`` of shape ``(d,)`` (e.g. :func:`random_direction`).
        link: ``"even"``, ``"sign"`` or ``"cubic"``.

    Returns:
        ``(x, y)``: float32 inputs ``(n, d)`` and float32 labels ``(n,)`` in {-1, +1}.

    Raises:
        ValueError: ``n`` not positive, ``direction`` not a unit vector, unknown link.
        TypeError: ``key`` is not a PRNG key.
    """
    n = _checks.positive_int(n, "n")
    _checks.key(key)
    w = np.asarray(direction, dtype=np.float32)
    if w.ndim != 1 or w.size < 1 or not np.all(np.isfinite(w)) or abs(float(np.linalg.norm(w)) - 1.0) > 1e-4:
        raise ValueError(f"direction must be a unit vector of shape (d,), got shape {w.shape} "
                         f"and norm {float(np.linalg.norm(w)) if w.size else 0.0:.4g}")
    _checks.choice(link, "link", LINKS)
    x = np.asarray(jax.random.normal(key, (n, w.size)), dtype=np.float32)
    return x, _link(link, x @ w)


def single_index_split(
    n_train: int, n_val: int, n_test: int, key: jax.Array, direction: np.ndarray, *, link: str = "even"
) -> HeldOutSplit:
    """Independent train / validation / test draws of :func:`single_index`.

    The three sets come from independent sub-keys of ``key``, so one key with
    several ``n_train`` gives the same validation and test sets.
    """
    for value, name in ((n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test")):
        _checks.positive_int(value, name)
    _checks.key(key)
    _checks.choice(link, "link", LINKS)
    k_train, k_val, k_test = (jax.random.fold_in(key, i) for i in range(3))
    return HeldOutSplit(*single_index(n_train, k_train, direction, link=link),
                        *single_index(n_val, k_val, direction, link=link),
                        *single_index(n_test, k_test, direction, link=link))


def digits_parity_split(
    n_train: int, n_val: int, n_test: int, key: jax.Array, *, normalize: Normalize = "sphere"
) -> HeldOutSplit:
    """Digits parity: even digits ``+1``, odd digits ``-1``; disjoint, parity-balanced sets.

    The real-data companion of the single-index task (the paper's SVHN-parity
    task, at the size of scikit-learn's digits). Each set holds (within one) as
    many even as odd digits. For a fixed ``key`` the validation and test sets do
    not depend on ``n_train`` and the training sets are nested (the first
    ``n_train`` of one shuffled pool), so a learning curve adds data to one set.

    Args:
        n_train, n_val, n_test: sizes of the three sets.
        key: PRNG key of the partition.
        normalize: as in :func:`digits`.

    Returns:
        A :class:`HeldOutSplit` with float32 inputs ``(n, 64)`` and labels in {-1, +1}.

    Raises:
        ValueError: a size is not positive, or the sizes need more digits of one
            parity than there are.
    """
    sizes = [_checks.positive_int(v, name) for v, name in ((n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test"))]
    _checks.key(key)
    _checks.choice(normalize, "normalize", NORMALIZE)
    x, digit = digits(normalize=normalize)
    parity = np.where(digit % 2 == 0, 1.0, -1.0).astype(np.float32)
    halves = lambda size: ((size + 1) // 2, size // 2)  # noqa: E731  (even, odd) counts
    need = np.sum([halves(s) for s in sizes], axis=0)
    for j, (p, name) in enumerate(((1.0, "even"), (-1.0, "odd"))):
        have = int(np.sum(parity == p))
        if need[j] > have:
            raise ValueError(f"n_train + n_val + n_test = {sum(sizes)} needs {need[j]} {name} digits; "
                             f"only {have} exist")
    pools = []
    for p, k in zip((1.0, -1.0), jax.random.split(key, 2)):
        idx = np.flatnonzero(parity == p)
        pools.append(idx[np.asarray(jax.random.permutation(k, len(idx)))])

    def interleave(even: np.ndarray, odd: np.ndarray) -> np.ndarray:
        # even, odd, even, odd, ...: every prefix is balanced within one.
        out = np.empty(len(even) + len(odd), dtype=np.int64)
        out[0:2 * len(odd):2], out[1:2 * len(odd):2] = even[: len(odd)], odd
        out[2 * len(odd):] = even[len(odd):]
        return out

    # Test first, then validation, from the front of each parity's shuffled pool;
    # the training set is a prefix of what remains, so it does not move the others.
    (te_e, te_o), (va_e, va_o) = halves(n_test), halves(n_val)
    test = interleave(pools[0][:te_e], pools[1][:te_o])
    val = interleave(pools[0][te_e:te_e + va_e], pools[1][te_o:te_o + va_o])
    rest_e, rest_o = pools[0][te_e + va_e:], pools[1][te_o + va_o:]
    m = min(len(rest_e), len(rest_o))
    train = interleave(rest_e[: m + (len(rest_e) > m)], rest_o[:m])[:n_train]
    return HeldOutSplit(x[train], parity[train], x[val], parity[val], x[test], parity[test])
