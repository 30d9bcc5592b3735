"""FixMatch-style semi-supervised training with EMA copies, watched through the NTK trace.

FixMatch ([fixmatch]; [trace] Sect. 5.3) trains on ``B`` labelled and ``mu B``
unlabelled images per step. With a weak view ``omega`` and a strong view ``Omega``
(:mod:`ntkbook.augment`) the loss is ``l_1 + lambda_u l_2`` ([trace] eqs. 5-6):

    l_1 = 1/B       sum_i  H(onehot(y_i), prob(omega(x_i)))
    l_2 = 1/(mu B)  sum_i  1[max prob(omega(u_i)) >= phi] H(onehot(yhat_i), prob(Omega(u_i))),
    yhat_i = argmax prob(omega(u_i)),

the pseudo-label ``yhat_i`` being read (without gradient) from the weak view and
fitted on the strong one. Alongside the model ``z^1`` the training keeps
exponential moving averages ``z^2_tau <- tau z^2_tau + (1 - tau) z^1`` of its
parameters for several ``tau`` ([trace] Sect. 5.3.2), updated after every
optimiser step with ``optax.incremental_update``.

Along training :func:`train_fixmatch` records, on fixed probe sets (fixed
images and fixed augmentation draws, so the curves are not augmentation noise),

- the four normalised traces of [trace] Sect. 5.3.1: ``Tr K(omega(X_l)) / (|X_l| k)``
  (``sup``), ``Tr K(omega(X_u)) / (|X_u| k)`` (``unsup_weak``), ``Tr K(Omega(X_u)) /
  (|X_u| k)`` (``unsup_strong``) and the same over the pseudo-labelled subset
  ``Omega(hat X_u)`` (``pseudo``), all at the model's parameters;
- for every ``tau`` the two sides of Thm 5.1 ([trace] eq. 7, Appendix A eq. 8),
  see :func:`thm51_terms`;
- test accuracies of the model and of each EMA copy;
- the normalised trace ``Tr K(X_te) / (|X_te| k)`` of the model (``trace_test``) and
  of every EMA copy (``ema_trace_test``, one per ``tau``) on a fixed sample of
  ``min(n_probe, |test|)`` test images, each with its standard error over images
  ([trace] Fig. 8, the trace of the EMA models on the test set).

:func:`train_supervised` is the labelled-only baseline with the same budget: the
same steps, optimiser, labelled batches and weak views (the same keys), the
unlabelled term removed. With ``threshold=1`` FixMatch pseudo-labels nothing and
reproduces it.

Both are thin layers over :func:`ntkbook.train.fit`: the EMA copies ride along in
the parameter pytree ``{"model": z1, "ema": (z2_tau, ...)}`` and are updated by the
optimiser :func:`ema_optimizer`, so the inner steps stay in one compiled loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks, augment, data, train, trace

ApplyFn = Callable[..., jax.Array]


# ----------------------------------------------------------------------------- data
class SemiSupSplit(NamedTuple):
    """Digits split for semi-supervised learning (images as pixels in [0, 1], flat ``(N, 64)``).

    ``y_unlabelled`` holds the hidden labels of the unlabelled images: training never
    reads them; they only measure how often pseudo-labels are right.
    """

    x_labelled: np.ndarray
    y_labelled: np.ndarray
    x_unlabelled: np.ndarray
    y_unlabelled: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def semisup_split(n_labelled_per_class: int, n_test_per_class: int, key: jax.Array) -> SemiSupSplit:
    """Class-balanced labelled and test sets; every other digit is unlabelled.

    Args:
        n_labelled_per_class: labelled images per class (>= 1).
        n_test_per_class: test images per class (>= 1).
        key: PRNG key choosing the subsets.

    Returns:
        A :class:`SemiSupSplit` of the 1797 scikit-learn digits, ``normalize="pixels"``
        (background 0, the fill value of :mod:`ntkbook.augment`).
    """
    n_lab = _checks.positive_int(n_labelled_per_class, "n_labelled_per_class")
    n_test = _checks.positive_int(n_test_per_class, "n_test_per_class")
    _checks.key(key)
    x, y = data.digits(normalize="pixels")
    both = data.balanced_indices(y, n_lab + n_test, key).reshape(data.DIGITS_CLASSES, n_lab + n_test)
    lab, test = both[:, :n_lab].ravel(), both[:, n_lab:].ravel()
    rest = np.setdiff1d(np.arange(len(y)), both.ravel())
    return SemiSupSplit(x[lab], y[lab], x[rest], y[rest], x[test], y[test])


# ---------------------------------------------------------------------------- losses
def pseudo_labels(logits: jax.Array, threshold: float) -> tuple[jax.Array, jax.Array]:
    """FixMatch's pseudo-labels ``argmax prob`` and mask ``max prob >= threshold`` ([trace] eq. 6).

    ``threshold = 1`` masks everything: a softmax probability is below 1 in exact
    arithmetic, and float32 rounding (which returns 1.0 for logit gaps above ~17)
    must not switch pseudo-labelling on.
    """
    threshold = _check_threshold(threshold)
    probs = jax.nn.softmax(logits, axis=-1)
    mask = jnp.max(probs, axis=-1) >= threshold
    if threshold >= 1.0:
        mask = jnp.zeros_like(mask)
    return jnp.argmax(logits, axis=-1), mask


def fixmatch_loss(apply_fn: ApplyFn, *, threshold: float = 0.95, unlabelled_weight: float = 1.0):
    """The FixMatch loss ``l_1 + lambda_u l_2`` ([trace] eqs. 5-6) on plain model parameters.

    The batch is ``(x_labelled_weak, y_labelled, x_unlabelled_weak, x_unlabelled_strong)``;
    pseudo-labels come from the weak view under ``stop_gradient``. ``l_2`` is averaged
    over all ``mu B`` unlabelled images (masked ones count as zero), as in eq. 6.
    """
    threshold = _check_threshold(threshold)
    unlabelled_weight = _check_nonneg(unlabelled_weight, "unlabelled_weight")

    def loss(params: Any, batch: Any) -> jax.Array:
        xl, yl, xuw, xus = batch
        l1 = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, xl), yl))
        labels, mask = pseudo_labels(jax.lax.stop_gradient(apply_fn(params, xuw)), threshold)
        ce = optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, xus), labels)
        return l1 + unlabelled_weight * jnp.mean(jnp.where(mask, ce, 0.0))

    return loss


# ------------------------------------------------------------------------------- EMA
def ema_optimizer(base: optax.GradientTransformation, taus: Sequence[float]) -> optax.GradientTransformation:
    """Run ``base`` on ``params["model"]`` and keep EMA copies ``params["ema"][j]`` with momentum ``taus[j]``.

    After each step ``z1 <- z1 + u`` the copies move to
    ``tau z2 + (1 - tau) z1`` (``optax.incremental_update`` with step size ``1 - tau``;
    [trace] Sect. 5.3.2, the update of the EMA model with the freshly updated model).
    Gradients with respect to ``params["ema"]`` are ignored. Initialise the copies at
    the initial model (no bias correction, as in FixMatch).
    """
    taus = _check_taus(taus)

    def init(params):
        return base.init(params["model"])

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("ema_optimizer needs params in update()")
        u, state = base.update(grads["model"], state, params["model"])
        new_model = optax.apply_updates(params["model"], u)
        ema_u = tuple(
            jax.tree_util.tree_map(jnp.subtract, optax.incremental_update(new_model, e, 1.0 - tau), e)
            for tau, e in zip(taus, params["ema"])
        )
        return {"model": u, "ema": ema_u}, state

    return optax.GradientTransformation(init, update)


def with_ema(params: Any, taus: Sequence[float]) -> dict:
    """``{"model": params, "ema": (copy, ...)}``: the pytree :func:`ema_optimizer` trains."""
    taus = _check_taus(taus)
    return {"model": params, "ema": tuple(jax.tree_util.tree_map(jnp.copy, params) for _ in taus)}


# ------------------------------------------------------------------------ Thm 5.1
class Thm51Terms(NamedTuple):
    """The quantities of [trace] Thm 5.1 (eq. 7) for one EMA copy, all floats.

    Attributes:
        distance: ``||z1 - z2_tau||`` (Euclidean, over all parameters).
        lhs: ``(1 - tau) / tau * ||z1 - z2_tau||``, the left side of eq. 7.
        trace_per_input: ``Tr K(X, X; z2_tau) / N`` (summed over outputs, not divided by ``k``).
        residual_rms: ``sqrt(sum_i ||onehot(y_i) - prob(x_i; z2_tau)||^2 / N)``.
        ratio: ``lhs / sqrt(trace_per_input)``, the paper's plotted ratio (Fig. 9b).
            Thm 5.1 says ``ratio <= residual_rms`` when its hypothesis holds.
        grad_norm: ``||grad_w L(z2_tau)||`` of the mean cross-entropy on ``(X, y)``.
        grad_ratio: ``grad_norm / sqrt(trace_per_input)``. The Cauchy-Schwarz chain of
            the proof (eq. 12) gives ``grad_ratio <= residual_rms`` always; the hypothesis
            (eq. 10) is ``lhs == grad_norm``.
    """

    distance: float
    lhs: float
    trace_per_input: float
    residual_rms: float
    ratio: float
    grad_norm: float
    grad_ratio: float


def _tree_norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree)))


def thm51_terms(
    apply_fn: ApplyFn,
    z1: Any,
    z2: Any,
    x: Any,
    labels: Any,
    tau: float,
    *,
    weights: Any = None,
    batch_size: int | None = 128,
) -> Thm51Terms:
    """Both sides of [trace] Thm 5.1 (eq. 7; proof in Appendix A, eqs. 8-12) for one EMA copy.

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)`` logits.
        z1: the model's parameters ``z^1(t)``.
        z2: the EMA copy ``z^2_tau(t)``.
        x: inputs ``X`` (``(N, ...)``), e.g. labelled and pseudo-labelled samples.
        labels: integer labels or pseudo-labels ``y_i``, shape ``(N,)``.
        tau: EMA momentum in ``(0, 1)``.
        weights: optional 0/1 mask ``(N,)`` selecting which inputs belong to ``X``
            (keeps shapes static when the pseudo-labelled set changes); ``N`` is its sum.
        batch_size: inputs per block of the exact trace (:func:`ntkbook.trace.exact_diagonal`).

    Returns:
        A :class:`Thm51Terms`.

    Raises:
        ValueError: ``tau`` outside ``(0, 1)``, mismatched shapes, an empty selection.
    """
    (tau,) = _check_taus([tau])
    x = jnp.asarray(x)
    labels = jnp.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}")
    w = jnp.ones(x.shape[0]) if weights is None else jnp.asarray(weights, jnp.float32)
    if w.shape != (x.shape[0],):
        raise ValueError(f"weights must have shape ({x.shape[0]},), got {w.shape}")
    n = float(jnp.sum(w))
    if not n > 0:
        raise ValueError("weights select no inputs: X must be non-empty")
    diag = trace.exact_diagonal(apply_fn, z2, x, batch_size=batch_size)  # Tr_a K_aa(x_i, x_i; z2)
    tr = float(np.sum(np.asarray(w, np.float64) * diag)) / n
    dist, rms, gnorm = _thm51_jitted(apply_fn)(z1, z2, x, labels, w)
    dist, rms, gnorm = float(dist), float(rms), float(gnorm)
    lhs = (1.0 - tau) / tau * dist
    root = math.sqrt(tr) if tr > 0 else float("nan")
    return Thm51Terms(dist, lhs, tr, rms, lhs / root, gnorm, gnorm / root)


_THM51_CACHE: dict = {}


def _thm51_jitted(apply_fn: ApplyFn):
    if apply_fn not in _THM51_CACHE:

        @jax.jit
        def run(z1, z2, x, labels, w):
            n = jnp.sum(w)
            dist = _tree_norm(jax.tree_util.tree_map(jnp.subtract, z1, z2))
            logits = apply_fn(z2, x)
            resid = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype) - jax.nn.softmax(logits, -1)
            rms = jnp.sqrt(jnp.sum(w * jnp.sum(jnp.square(resid), -1)) / n)

            def loss(p):
                ce = optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, x), labels)
                return jnp.sum(w * ce) / n

            return dist, rms, _tree_norm(jax.grad(loss)(z2))

        _THM51_CACHE[apply_fn] = run
    return _THM51_CACHE[apply_fn]


# --------------------------------------------------------------------------- training
class SemiSupResult(NamedTuple):
    """What :func:`train_fixmatch` / :func:`train_supervised` return.

    Attributes:
        params: the model ``z^1`` at the end.
        ema: the EMA copies at the end, one per ``tau``.
        taus: the momenta.
        history: recorded metrics (:class:`ntkbook.train.History`); per-``tau``
            metrics have shape ``(records, len(taus))``. Names: ``test_acc``,
            ``labelled_acc``, ``ema_test_acc``, ``trace_sup``, ``trace_unsup_weak``,
            ``trace_unsup_strong``, ``trace_pseudo`` (NaN when nothing is
            pseudo-labelled), each with a standard error ``trace_*_se`` over the probe
            images, ``pseudo_fraction``, ``pseudo_precision`` (NaN likewise),
            ``thm_distance``, ``thm_lhs``, ``thm_trace``, ``thm_rms``, ``thm_ratio``,
            ``thm_grad_norm``, ``thm_grad_ratio`` (:class:`Thm51Terms`), ``trace_test``
            and ``ema_trace_test`` (per ``tau``) on a fixed sample of test images,
            each with ``*_se``.
    """

    params: Any
    ema: tuple
    taus: tuple[float, ...]
    history: train.History


def _step_keys(key: jax.Array) -> jax.Array:
    """The per-step key protocol shared by both loops: (labelled batch, unlabelled batch,
    weak labelled view, weak unlabelled view, strong unlabelled view)."""
    return jax.random.split(key, 5)


def _labelled_batch(keys, x_l, y_l, batch_size, weak_shift):
    idx = jax.random.choice(keys[0], x_l.shape[0], (batch_size,), replace=False)
    return augment.weak(keys[2], x_l[idx], max_shift=weak_shift), y_l[idx]


def train_fixmatch(
    apply_fn: ApplyFn,
    params: Any,
    split: SemiSupSplit,
    steps: int,
    *,
    key: jax.Array,
    taus: Sequence[float] = (0.9, 0.99, 0.999),
    threshold: float = 0.95,
    unlabelled_weight: float = 1.0,
    batch_size: int = 32,
    mu: int = 7,
    learning_rate: float = 0.03,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    weak_shift: int = 1,
    strong_kwargs: dict | None = None,
    record_steps: Iterable[int] | None = None,
    n_probe: int = 100,
    probe_key: jax.Array | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> SemiSupResult:
    """FixMatch ([trace] Sect. 5.3, eqs. 5-6) with EMA copies, recording traces and Thm 5.1.

    Optimiser: SGD with momentum, weight decay and a cosine schedule
    (:func:`ntkbook.train.classifier_optimizer`, the set-up of [trace] Sect. 5.3.1).

    Args:
        apply_fn: ``f(params, x)`` on flat images ``(N, 64)``, returning ``(N, 10)`` logits.
        params: initial parameters (also the initial EMA copies).
        split: a :class:`SemiSupSplit`.
        steps: number of optimiser steps (>= 1).
        key: PRNG key of the batches and augmentations; step ``s`` uses
            ``fold_in(key, s)`` split into five keys (:func:`_step_keys`).
        taus: EMA momenta, each in ``(0, 1)``.
        threshold: confidence threshold ``phi`` in ``(0, 1]`` (1: no pseudo-labels).
        unlabelled_weight: ``lambda_u`` (>= 0).
        batch_size: labelled images per step ``B`` (at most the labelled set).
        mu: unlabelled images per labelled one (``mu B`` at most the unlabelled set).
        learning_rate, momentum, weight_decay: of the optimiser.
        weak_shift: ``max_shift`` of :func:`ntkbook.augment.weak`.
        strong_kwargs: keyword arguments of :func:`ntkbook.augment.strong`.
        record_steps: steps at which to record (default: 0 and ``steps``).
        n_probe: unlabelled images in the probe set (at most the unlabelled set); the
            labelled probe set is the whole labelled set (few images by design).
        probe_key: key of the probe images and their fixed augmentation draws
            (default: derived from ``key``, ``fold_in(key, 2**31 - 1)``).
        progress, desc: progress bar.

    Returns:
        A :class:`SemiSupResult`.

    Raises:
        ValueError / TypeError: bad sizes, threshold, momenta, a missing key.
    """
    threshold = _check_threshold(threshold)
    mu = _checks.positive_int(mu, "mu")
    return _train(apply_fn, params, split, steps, key=key, taus=taus, threshold=threshold,
                  unlabelled_weight=unlabelled_weight, batch_size=batch_size, mu=mu, learning_rate=learning_rate,
                  momentum=momentum, weight_decay=weight_decay, weak_shift=weak_shift, strong_kwargs=strong_kwargs,
                  record_steps=record_steps, n_probe=n_probe, probe_key=probe_key, progress=progress,
                  desc=desc or "FixMatch", supervised=False)


def train_supervised(
    apply_fn: ApplyFn,
    params: Any,
    split: SemiSupSplit,
    steps: int,
    *,
    key: jax.Array,
    taus: Sequence[float] = (0.9, 0.99, 0.999),
    threshold: float = 0.95,
    batch_size: int = 32,
    learning_rate: float = 0.03,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    weak_shift: int = 1,
    strong_kwargs: dict | None = None,
    record_steps: Iterable[int] | None = None,
    n_probe: int = 100,
    probe_key: jax.Array | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> SemiSupResult:
    """The labelled-only baseline: :func:`train_fixmatch` without the unlabelled term.

    Same steps, optimiser, EMA copies, labelled batches and weak views (same keys).
    It records the same metrics; ``threshold`` is used only by the recorder (which
    images the baseline *would* pseudo-label), and Thm 5.1 is evaluated on the
    labelled probe set alone (its training loss has no pseudo-labels).
    """
    threshold = _check_threshold(threshold)
    return _train(apply_fn, params, split, steps, key=key, taus=taus, threshold=threshold, unlabelled_weight=0.0,
                  batch_size=batch_size, mu=1, learning_rate=learning_rate, momentum=momentum,
                  weight_decay=weight_decay, weak_shift=weak_shift, strong_kwargs=strong_kwargs,
                  record_steps=record_steps, n_probe=n_probe, probe_key=probe_key, progress=progress,
                  desc=desc or "labelled only", supervised=True)


def _train(apply_fn, params, split, steps, *, key, taus, threshold, unlabelled_weight, batch_size, mu, learning_rate,
           momentum, weight_decay, weak_shift, strong_kwargs, record_steps, n_probe, probe_key, progress, desc,
           supervised) -> SemiSupResult:
    # ---- checks, before any compilation
    if not isinstance(split, SemiSupSplit):
        raise TypeError(f"split must be a SemiSupSplit (from semisup_split), got {type(split).__name__}")
    _checks.key(key)
    if probe_key is not None:
        _checks.key(probe_key, "probe_key")
    steps = _checks.positive_int(steps, "steps")
    taus = _check_taus(taus)
    unlabelled_weight = _check_nonneg(unlabelled_weight, "unlabelled_weight")
    weak_shift = _check_nonneg(weak_shift, "weak_shift", integer=True)
    strong_kwargs = dict(strong_kwargs or {})
    augment.strong_settings(**strong_kwargs)  # validates the kwargs (augments nothing)
    x_l, y_l = jnp.asarray(split.x_labelled), jnp.asarray(split.y_labelled)
    x_u = jnp.asarray(split.x_unlabelled)
    n_l, n_u = x_l.shape[0], x_u.shape[0]
    k_net = int(jax.eval_shape(apply_fn, params, _checks.network_inputs(apply_fn, params, x_l, "split.x_labelled")[:1])
                .shape[-1])
    _checks.finite_array(x_u, "split.x_unlabelled")
    _checks.labels(np.asarray(split.y_labelled), "split.y_labelled", k_net)
    _checks.labels(np.asarray(split.y_test), "split.y_test", k_net)
    batch_size = _checks.positive_int(batch_size, "batch_size")
    if batch_size > n_l:
        raise ValueError(f"batch_size must be at most the {n_l} labelled images, got {batch_size}")
    if not supervised and mu * batch_size > n_u:
        raise ValueError(f"mu * batch_size = {mu * batch_size} exceeds the {n_u} unlabelled images")
    n_probe = _checks.positive_int(n_probe, "n_probe")
    if n_probe > n_u:
        raise ValueError(f"n_probe must be at most the {n_u} unlabelled images, got {n_probe}")

    # ---- loss and batches (key protocol of _step_keys)
    if supervised:
        ce = train.cross_entropy_loss(apply_fn)

        def loss_fn(p, batch):
            return ce(p["model"], batch)

        def sample_batch(k, d):
            return _labelled_batch(_step_keys(k), d[0], d[1], batch_size, weak_shift)
    else:
        fm = fixmatch_loss(apply_fn, threshold=threshold, unlabelled_weight=unlabelled_weight)

        def loss_fn(p, batch):
            return fm(p["model"], batch)

        def sample_batch(k, d):
            keys = _step_keys(k)
            xl, yl = _labelled_batch(keys, d[0], d[1], batch_size, weak_shift)
            idx = jax.random.choice(keys[1], d[2].shape[0], (mu * batch_size,), replace=False)
            xu = d[2][idx]
            return (xl, yl, augment.weak(keys[3], xu, max_shift=weak_shift),
                    augment.strong(keys[4], xu, **strong_kwargs))

    optimizer = ema_optimizer(train.classifier_optimizer(learning_rate, steps, momentum=momentum,
                                                         weight_decay=weight_decay), taus)

    # ---- fixed probe sets for the recorder
    pk = jax.random.fold_in(key, 2**31 - 1) if probe_key is None else probe_key
    _, ku, kwl, kwu, ksu = _step_keys(pk)
    il = np.arange(n_l)
    iu = np.asarray(jax.random.choice(ku, n_u, (n_probe,), replace=False))
    p_lw = augment.weak(kwl, x_l[il], max_shift=weak_shift)
    p_yl = y_l[il]
    p_uw = augment.weak(kwu, x_u[iu], max_shift=weak_shift)
    p_us = augment.strong(ksu, x_u[iu], **strong_kwargs)
    p_yu_hidden = jnp.asarray(split.y_unlabelled)[iu]
    probes_all = jnp.concatenate([p_lw, p_uw, p_us])
    x_te, y_te = jnp.asarray(split.x_test), jnp.asarray(split.y_test)
    k_out = int(jax.eval_shape(apply_fn, params, x_l[:1]).shape[-1])
    # test images on which the traces of the model and of every EMA copy are recorded
    # ([trace] Fig. 8: the NTK trace of the EMA models on the test set)
    n_tp = min(n_probe, x_te.shape[0])
    p_te = x_te[np.sort(np.asarray(jax.random.choice(jax.random.fold_in(pk, 1), x_te.shape[0], (n_tp,),
                                                     replace=False)))]

    @jax.jit
    def evaluate(p):
        acc = lambda w, x, y: train.accuracy(apply_fn(w, x), y)  # noqa: E731
        labels, mask = pseudo_labels(apply_fn(p["model"], p_uw), threshold)
        return (acc(p["model"], x_te, y_te), acc(p["model"], x_l, y_l),
                jnp.stack([acc(e, x_te, y_te) for e in p["ema"]]), labels, mask)

    def record_fn(p, step):
        test_acc, lab_acc, ema_acc, labels, mask = evaluate(p)
        mask = np.asarray(mask)
        diag = trace.exact_diagonal(apply_fn, p["model"], probes_all) / k_out
        d_l, d_uw, d_us = diag[:n_l], diag[n_l:n_l + n_probe], diag[n_l + n_probe:]
        out = dict(test_acc=test_acc, labelled_acc=lab_acc, ema_test_acc=ema_acc, pseudo_fraction=mask.mean())
        for name, d in (("sup", d_l), ("unsup_weak", d_uw), ("unsup_strong", d_us), ("pseudo", d_us[mask])):
            out[f"trace_{name}"] = d.mean() if d.size else np.nan
            # standard error of the mean over the probe images (the images are a sample)
            out[f"trace_{name}_se"] = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else np.nan
        for name, models_ in (("trace_test", [p["model"]]), ("ema_trace_test", list(p["ema"]))):
            d = np.stack([np.asarray(trace.exact_diagonal(apply_fn, m, p_te)) / k_out for m in models_])
            mean = d.mean(axis=1)
            se = d.std(axis=1, ddof=1) / np.sqrt(d.shape[1]) if n_tp > 1 else np.full(len(models_), np.nan)
            out[name], out[f"{name}_se"] = (mean[0], se[0]) if name == "trace_test" else (mean, se)
        hits = np.asarray(labels)[mask] == np.asarray(p_yu_hidden)[mask]
        out["pseudo_precision"] = hits.mean() if hits.size else np.nan
        # Thm 5.1 on the samples of the training loss: labelled (true labels) and, for
        # FixMatch, the strong views of the pseudo-labelled ones (pseudo-labels)
        if supervised:
            xs, ys, ws = p_lw, p_yl, jnp.ones(n_l)
        else:
            xs = jnp.concatenate([p_lw, p_us])
            ys = jnp.concatenate([p_yl, labels])
            ws = jnp.concatenate([jnp.ones(n_l), jnp.asarray(mask, jnp.float32)])
        terms = [thm51_terms(apply_fn, p["model"], e, xs, ys, tau, weights=ws) for tau, e in zip(taus, p["ema"])]
        for name, field in (("distance", 0), ("lhs", 1), ("trace", 2), ("rms", 3), ("ratio", 4), ("grad_norm", 5),
                            ("grad_ratio", 6)):
            out[f"thm_{name}"] = np.array([t[field] for t in terms])
        return out

    data_tuple = (x_l, y_l) if supervised else (x_l, y_l, x_u)
    final, history = train.fit(loss_fn, with_ema(params, taus), optimizer, steps, data=data_tuple,
                               sample_batch=sample_batch, key=key, record_steps=record_steps, record_fn=record_fn,
                               progress=progress, desc=desc)
    return SemiSupResult(final["model"], final["ema"], taus, history)


# --------------------------------------------------------------------------- checks
def _check_threshold(threshold: Any) -> float:
    return _checks.probability(threshold, "threshold (a confidence)", open_low=True)


def _check_taus(taus: Any) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in taus)
    except TypeError:
        raise TypeError(f"taus must be a sequence of EMA momenta, got {type(taus).__name__}") from None
    if not values or not all(0 < t < 1 for t in values):  # NaN fails 0 < t
        raise ValueError(f"taus must be non-empty with every tau in (0, 1), got {taus!r}")
    return values


def _check_nonneg(value: Any, name: str, *, integer: bool = False) -> Any:
    return _checks.nonneg_int(value, name) if integer else _checks.nonneg(value, name)
