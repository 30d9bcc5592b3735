"""Local learning dynamics: what one training step does to other predictions, and
approximate retraining with a frozen empirical (or pseudo-) NTK.

**One step** (chapter 13). Write the network as logits ``z(x; w)`` in ``R^k``, a
prediction ``sigma(z)`` (the logits themselves, their log-softmax or softmax) and
a per-example loss ``l(z, y)``. One plain gradient step of size ``eta`` on the mean
loss over a batch ``{(x_i, y_i)}_{i=1..N}`` changes the prediction at any input
``x~`` by (Ren & Sutherland 2025; Ren, Guo & Sutherland 2022; the talk's
"Learning dynamics" slide)

    sigma(z_{t+1}(x~)) - sigma(z_t(x~)) = -(eta / N) sum_i A_t(x~) K_t(x~, x_i) G_t(x_i, y_i) + O(eta^2)

with ``A = d sigma / dz`` at ``x~`` (``k x k``), ``K`` the ``k x k`` empirical NTK of the
logits and ``G = dl/dz`` at ``x_i`` (``k``). :func:`one_step_decomposition` returns the
three factors separately; :func:`sgd_step` takes the real step with the same loss
normalisation, so the two can be compared.

**Distillation** (chapter 13). :func:`fit_softmax_student` distils a linear softmax
student from soft targets (labels, a converged teacher, an averaged one), the
comparison of Ren, Guo & Sutherland (2022) on a toy with a known ``p*``.

**Preferences** (chapter 13). :func:`dpo_loss` (Rafailov et al. 2023, eq. 7) and the
pure negative gradient :func:`negative_gradient_loss` for the squeezing effect of
Ren & Sutherland (2025); :func:`dpo_logit_gradients` gives their ``G``.

**Lookahead** (chapter 15). With the kernel frozen at the current parameters,
retraining on the labelled set ``L`` plus one candidate ``(x_c, y_c)`` is
approximated by kernel regression on the residuals (Mohamadi, Bae & Sutherland
2022; the talk's "Approximate retraining" slide):

    f_{L+c}(x) ~ f(x) + K(x, X_{L+c}) K(X_{L+c}, X_{L+c})^{-1} (Y_{L+c} - f(X_{L+c})).

:func:`block_inverse_update` grows ``K^{-1}`` by one input (a ``k x k`` block for
the eNTK, a single row and column, i.e. a rank-one correction, for the pNTK)
through the Schur complement, and :func:`lookahead_changes` uses the same algebra
to evaluate the formula for *every* candidate at once, without one solve per
candidate.

Kernels are accepted in both shapes used by :mod:`ntkbook.kernels`: a full eNTK
``(N1, N2, k, k)``, or an ``(N1, N2)`` kernel ``P`` that stands for ``P (x) I_k``
(the pNTK, the traced kernel, an infinite-width kernel).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from . import kernels as _kernels

OutputMap = Literal["logits", "log_softmax", "softmax"]
LossName = Literal["mse", "cross_entropy"]
OUTPUTS: tuple[str, ...] = ("logits", "log_softmax", "softmax")
LOSSES: tuple[str, ...] = ("mse", "cross_entropy")


# --------------------------------------------------------------------------- checks
def _check_logits(logits: Any, name: str = "logits") -> jax.Array:
    z = _checks.finite_array(logits, name)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, k) with N, k >= 1, got {z.shape}")
    return z


def _check_rate(learning_rate: float) -> float:
    return _checks.positive(learning_rate, "learning_rate")


def _targets_matrix(targets: Any, n: int, k: int, loss: str) -> jax.Array:
    """Targets as an (N, k) array: one-hot for integer class labels."""
    y = jnp.asarray(targets)
    if loss == "cross_entropy" and y.ndim == 1:
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(f"integer class labels expected for 1-D targets, got dtype {y.dtype}")
        if y.shape != (n,):
            raise ValueError(f"targets must have shape ({n},) or ({n}, {k}), got {y.shape}")
        if bool(jnp.any((y < 0) | (y >= k))):
            raise ValueError(f"class labels must lie in [0, {k}), got {np.asarray(y)}")
        return jax.nn.one_hot(y, k)
    if y.shape != (n, k):
        expected = f"({n},) integer labels or ({n}, {k})" if loss == "cross_entropy" else f"({n}, {k})"
        raise ValueError(f"targets must have shape {expected}, got {y.shape}")
    return y


# ------------------------------------------------------------------------ the factors
def output_jacobian(logits: Any, output: OutputMap = "log_softmax") -> jax.Array:
    """``A = d sigma(z) / dz`` for each row of ``logits``: shape ``(M, k, k)``.

    - ``"logits"``: the identity;
    - ``"log_softmax"``: ``I - 1 pi^T`` (row ``a`` is ``e_a - pi``);
    - ``"softmax"``: ``diag(pi) - pi pi^T``, the covariance of ``Categorical(pi)``
      (Ren, Guo & Sutherland 2022; the talk's "eNTK explains it" slide).

    Args:
        logits: ``(M, k)`` logits ``z`` at the probe inputs.
        output: which prediction ``sigma(z)`` is tracked.

    Raises:
        ValueError: bad shape or unknown ``output``.
    """
    z = _check_logits(logits)
    _checks.choice(output, "output", OUTPUTS)
    m, k = z.shape
    eye = jnp.broadcast_to(jnp.eye(k, dtype=z.dtype), (m, k, k))
    if output == "logits":
        return eye
    pi = jax.nn.softmax(z, axis=-1)
    if output == "log_softmax":
        return eye - pi[:, None, :]
    return pi[:, :, None] * eye - pi[:, :, None] * pi[:, None, :]


def apply_output(logits: Any, output: OutputMap = "log_softmax") -> jax.Array:
    """``sigma(z)`` for ``output`` in ``("logits", "log_softmax", "softmax")``."""
    z = _check_logits(logits)
    _checks.choice(output, "output", OUTPUTS)
    if output == "logits":
        return z
    return jax.nn.log_softmax(z, axis=-1) if output == "log_softmax" else jax.nn.softmax(z, axis=-1)


def per_example_loss(logits: Any, targets: Any, loss: LossName = "cross_entropy") -> jax.Array:
    """Per-example losses ``l(z_i, y_i)``, shape ``(N,)``.

    - ``"mse"``: ``1/2 ||z - y||^2`` with ``(N, k)`` targets;
    - ``"cross_entropy"``: ``-sum_c y_c log softmax(z)_c`` with integer labels ``(N,)``
      or target distributions ``(N, k)`` (soft labels, as in distillation).
    """
    z = _check_logits(logits)
    _checks.choice(loss, "loss", LOSSES)
    y = _targets_matrix(targets, *z.shape, loss)
    if loss == "mse":
        return 0.5 * jnp.sum((z - y) ** 2, axis=-1)
    return -jnp.sum(y * jax.nn.log_softmax(z, axis=-1), axis=-1)


def loss_gradient(logits: Any, targets: Any, loss: LossName = "cross_entropy") -> jax.Array:
    """``G = d l(z_i, y_i) / dz_i`` for each example, shape ``(N, k)``.

    ``z - y`` for the square loss; ``softmax(z) - y`` for cross-entropy (``y`` one-hot
    or a distribution summing to one): "how wrong was I before" (the talk's
    "Learning dynamics" slide).
    """
    z = _check_logits(logits)
    _checks.choice(loss, "loss", LOSSES)
    y = _targets_matrix(targets, *z.shape, loss)
    if loss == "mse":
        return z - y
    return jax.nn.softmax(z, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y


def mean_loss(apply_fn: Callable, loss: LossName = "cross_entropy") -> Callable[[Any, Any], jax.Array]:
    """``L(w) = (1/N) sum_i l(z(x_i; w), y_i)`` as a ``loss_fn(params, (x, targets))``
    for :func:`ntkbook.train.fit`; the normalisation :func:`one_step_decomposition` assumes."""
    _checks.choice(loss, "loss", LOSSES)

    def loss_fn(params: Any, batch: Any) -> jax.Array:
        x, targets = batch
        return jnp.mean(per_example_loss(apply_fn(params, x), targets, loss))

    return loss_fn


def predicted_change(A: Any, K: Any, G: Any, learning_rate: float) -> jax.Array:
    """``-(eta / N) sum_i A(x~) K(x~, x_i) G_i`` for every probe ``x~``: shape ``(M, k)``.

    Args:
        A: ``(M, k, k)`` output Jacobians at the probes (:func:`output_jacobian`).
        K: ``(M, N, k, k)`` eNTK between probes and the batch, or ``(M, N)`` for a
            kernel proportional to the identity over outputs (the pNTK).
        G: ``(N, k)`` loss gradients on the batch (:func:`loss_gradient`).
        learning_rate: ``eta > 0``.

    Raises:
        ValueError: inconsistent shapes or a non-positive learning rate.
    """
    eta = _check_rate(learning_rate)
    A, K, G = jnp.asarray(A), jnp.asarray(K), jnp.asarray(G)
    if G.ndim != 2:
        raise ValueError(f"G must have shape (N, k), got {G.shape}")
    n, k = G.shape
    if A.ndim != 3 or A.shape[1:] != (k, k):
        raise ValueError(f"A must have shape (M, {k}, {k}), got {A.shape}")
    m = A.shape[0]
    if K.shape == (m, n):
        KG = K @ G
    elif K.shape == (m, n, k, k):
        KG = jnp.einsum("mnab,nb->ma", K, G)
    else:
        raise ValueError(f"K must have shape ({m}, {n}, {k}, {k}) or ({m}, {n}), got {K.shape}")
    return -(eta / n) * jnp.einsum("mab,mb->ma", A, KG)


class StepDecomposition(NamedTuple):
    """The factors of one gradient step's effect on the probes (module docstring).

    Attributes:
        A: ``(M, k, k)`` output Jacobians at the probes.
        K: ``(M, N, k, k)`` eNTK of the logits, probes x batch.
        G: ``(N, k)`` loss gradients with respect to the logits on the batch.
        predicted: ``(M, k)`` first-order change ``-(eta/N) sum_i A K_i G_i``.
    """

    A: jax.Array
    K: jax.Array
    G: jax.Array
    predicted: jax.Array


def one_step_decomposition(
    apply_fn: Callable,
    params: Any,
    x_probe: Any,
    x_train: Any,
    targets: Any,
    *,
    learning_rate: float,
    loss: LossName = "cross_entropy",
    output: OutputMap = "log_softmax",
    implementation: _kernels.Implementation = "auto",
    vmap_axes: Any = None,
) -> StepDecomposition:
    """The ``A K G`` decomposition of one gradient step on ``(x_train, targets)``.

    Implements ``sigma(z_{t+1}(x~)) - sigma(z_t(x~)) = -(eta/N) sum_i A K G + O(eta^2)``
    (Ren & Sutherland 2025; the talk's "Learning dynamics (Taylor's version)") for a step of plain gradient descent on the mean
    loss :func:`mean_loss` (:func:`sgd_step` takes that step).

    Args:
        apply_fn: ``z = apply_fn(params, x)`` with shape ``(N, k)`` (the logits).
        params: current parameters ``w_t``.
        x_probe: ``(M, ...)`` inputs whose predictions we follow.
        x_train: ``(N, ...)`` the batch of the step.
        targets: integer labels ``(N,)`` or ``(N, k)`` targets (see :func:`per_example_loss`).
        learning_rate: ``eta``.
        loss: ``"cross_entropy"`` or ``"mse"``.
        output: ``"log_softmax"``, ``"softmax"`` or ``"logits"``: the tracked prediction.
        implementation, vmap_axes: passed to :func:`ntkbook.kernels.empirical_ntk`.

    Returns:
        :class:`StepDecomposition`.

    Raises:
        ValueError / TypeError: bad shapes, targets, loss, output or learning rate
        (checked before any kernel is computed).
    """
    eta = _check_rate(learning_rate)
    _checks.choice(loss, "loss", LOSSES)
    _checks.choice(output, "output", OUTPUTS)
    z_probe = _check_logits(apply_fn(params, x_probe), "apply_fn(params, x_probe)")
    z_train = _check_logits(apply_fn(params, x_train), "apply_fn(params, x_train)")
    G = loss_gradient(z_train, targets, loss)
    A = output_jacobian(z_probe, output)
    K = _kernels.empirical_ntk(apply_fn, params, x_probe, x_train, implementation=implementation, vmap_axes=vmap_axes)
    return StepDecomposition(A, K, G, predicted_change(A, K, G, eta))


def sgd_step(
    apply_fn: Callable, params: Any, x_train: Any, targets: Any, *, learning_rate: float, loss: LossName = "cross_entropy"
) -> Any:
    """One plain gradient-descent step ``w - eta grad L(w)`` on :func:`mean_loss`."""
    eta = _check_rate(learning_rate)
    grads = jax.grad(mean_loss(apply_fn, loss))(params, (x_train, targets))
    return jax.tree_util.tree_map(lambda w, g: w - eta * g, params, grads)


def output_change(apply_fn: Callable, params_before: Any, params_after: Any, x: Any,
                  output: OutputMap = "log_softmax") -> jax.Array:
    """``sigma(z(x; w_after)) - sigma(z(x; w_before))``, shape ``(M, k)``."""
    _checks.choice(output, "output", OUTPUTS)
    return apply_output(apply_fn(params_after, x), output) - apply_output(apply_fn(params_before, x), output)


@jax.jit
def _student_objective(wb: tuple[jax.Array, jax.Array], x: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    w, b = wb
    logq = jax.nn.log_softmax(x @ w + b, axis=-1)
    return -jnp.sum(weights * jnp.sum(targets * logq, axis=-1)) / jnp.sum(weights)


@functools.partial(jax.jit, static_argnames="steps")
def _student_descent(x: jax.Array, targets: jax.Array, weights: jax.Array, steps: int, eta: float):
    grad = jax.grad(_student_objective)
    wb0 = (jnp.zeros((x.shape[1], targets.shape[1]), x.dtype), jnp.zeros((targets.shape[1],), x.dtype))

    def body(_, wb):
        g = grad(wb, x, targets, weights)
        return (wb[0] - eta * g[0], wb[1] - eta * g[1])

    return jax.lax.fori_loop(0, steps, body, wb0)


def fit_softmax_student(
    x: Any, targets: Any, *, steps: int, learning_rate: float, weights: Any = None
) -> tuple[jax.Array, jax.Array]:
    """Distil a linear softmax student ``q(x) = softmax(x W + b)`` from (soft) targets.

    Knowledge distillation trains a student on a teacher's predicted probabilities
    ``p_i`` instead of one-hot labels, minimising the cross-entropy
    ``-(1/sum_i w_i) sum_i w_i sum_c p_ic log q_c(x_i)`` (Hinton et al. 2015; the
    targets compared in Ren, Guo & Sutherland 2022, Sect. 3, are the labels, a
    converged teacher and an early-stopped or averaged one). The objective is convex
    in ``(W, b)``; plain gradient descent from ``W = 0, b = 0`` (no random
    initialisation, so two target sets are compared on exactly the same footing)
    runs for ``steps`` steps. The sample weights ``w_i`` let a bootstrap resample be
    passed as counts. One step's gradient is ``X^T diag(w) (q - p) / sum w``, whose
    rows sum to zero over classes, so the iterates stay in the gauge
    ``sum_c W_jc = 0``.

    Args:
        x: ``(n, d)`` inputs.
        targets: ``(n, k)`` target distributions (rows non-negative, summing to 1),
            e.g. one-hot labels or a teacher's ``softmax`` outputs.
        steps: number of full-batch gradient steps.
        learning_rate: step size (stable below ``2 / lambda_max`` of the Hessian,
            which is at most ``lambda_max(X^T X / n) / 2`` plus the bias direction).
        weights: optional ``(n,)`` non-negative sample weights, not all zero.

    Returns:
        ``(W, b)`` with shapes ``(d, k)`` and ``(k,)``.

    Raises:
        ValueError / TypeError: bad shapes, targets that are not distributions,
        negative or all-zero weights, non-positive steps or learning rate.
    """
    x = _checks.finite_array(x, "x", ndim=2)
    targets = _checks.finite_array(targets, "targets", ndim=2, dtype=x.dtype)
    n = _checks.same_rows(x, "x", targets, "targets")
    steps = _checks.positive_int(steps, "steps")
    eta = _checks.positive(learning_rate, "learning_rate")
    t = np.asarray(targets)
    if np.any(t < 0) or not np.allclose(t.sum(1), 1.0, atol=1e-4):
        raise ValueError("targets must be distributions: rows non-negative and summing to 1")
    if weights is None:
        w = jnp.ones((n,), x.dtype)
    else:
        w = _checks.finite_array(weights, "weights", ndim=1, dtype=x.dtype)
        if w.shape[0] != n:
            raise ValueError(f"weights must have shape ({n},), got {tuple(w.shape)}")
        if np.any(np.asarray(w) < 0) or not float(np.sum(np.asarray(w))) > 0:
            raise ValueError("weights must be non-negative and not all zero")
    return _student_descent(x, targets, w, steps, eta)


def softmax_student_probs(wb: tuple[Any, Any], x: Any) -> jax.Array:
    """``softmax(x W + b)`` for the ``(W, b)`` of :func:`fit_softmax_student`."""
    w, b = wb
    return jax.nn.softmax(_checks.finite_array(x, "x", ndim=2) @ w + b, axis=-1)


# ----------------------------------------------------------------------- preferences
def _gather(logp: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]


def negative_gradient_loss(apply_fn: Callable) -> Callable[[Any, Any], jax.Array]:
    """``L(w) = (1/N) sum_i log pi(y_i^- | x_i)``: minimising it pushes the rejected
    labels down (gradient *ascent* on their cross-entropy), the negative half of
    DPO (the squeezing effect of Ren & Sutherland 2025). The batch is ``(x, rejected_labels)``."""

    def loss_fn(params: Any, batch: Any) -> jax.Array:
        x, rejected = batch
        return jnp.mean(_gather(jax.nn.log_softmax(apply_fn(params, x), axis=-1), jnp.asarray(rejected)))

    return loss_fn


def dpo_loss(apply_fn: Callable, params_ref: Any, beta: float) -> Callable[[Any, Any], jax.Array]:
    """The DPO loss (Rafailov et al. 2023, eq. 7) for a classifier ``pi(y | x) = softmax(z(x))``.

    ``L(w) = -(1/N) sum_i log sigmoid(beta [log pi_w(y+|x+)/pi_ref(y+|x+) - log pi_w(y-|x-)/pi_ref(y-|x-)])``.
    The chosen and rejected answers may sit in different contexts ``x+``, ``x-``: in
    a language model the ``m``-th token of the rejected response follows a different
    prefix than that of the chosen one (the talk's "Adapting to the LLM setting").

    Args:
        apply_fn: logits ``z = apply_fn(params, x)``.
        params_ref: parameters of the frozen reference policy ``pi_ref``.
        beta: inverse temperature ``beta > 0``.

    Returns:
        ``loss_fn(params, (x_chosen, y_chosen, x_rejected, y_rejected))``.
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")

    def loss_fn(params: Any, batch: Any) -> jax.Array:
        xp, yp, xm, ym = batch
        yp, ym = jnp.asarray(yp), jnp.asarray(ym)
        lp = _gather(jax.nn.log_softmax(apply_fn(params, xp), axis=-1), yp)
        lm = _gather(jax.nn.log_softmax(apply_fn(params, xm), axis=-1), ym)
        rp = _gather(jax.nn.log_softmax(apply_fn(params_ref, xp), axis=-1), yp)
        rm = _gather(jax.nn.log_softmax(apply_fn(params_ref, xm), axis=-1), ym)
        margin = beta * ((lp - rp) - (lm - rm))
        return -jnp.mean(jax.nn.log_sigmoid(margin))

    return loss_fn


def dpo_logit_gradients(
    logits_chosen: Any, logits_rejected: Any, ref_logits_chosen: Any, ref_logits_rejected: Any,
    y_chosen: Any, y_rejected: Any, beta: float,
) -> tuple[jax.Array, jax.Array]:
    """``G`` of each pair's DPO loss with respect to the chosen and rejected logits.

    ``G+ = beta (1 - s) (pi(.|x+) - e_{y+})`` and ``G- = -beta (1 - s) (pi(.|x-) - e_{y-})``
    with ``s = sigmoid(margin)`` (the talk's DPO slide): the rejected answer gets a
    *negative* cross-entropy gradient, scaled by how wrong the pair still is.

    Returns:
        ``(G_chosen, G_rejected)``, each ``(N, k)``, for the per-pair loss (no ``1/N``).
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    zp, zm = _check_logits(logits_chosen, "logits_chosen"), _check_logits(logits_rejected, "logits_rejected")
    rp, rm = _check_logits(ref_logits_chosen, "ref_logits_chosen"), _check_logits(ref_logits_rejected, "ref_logits_rejected")
    if not zp.shape == zm.shape == rp.shape == rm.shape:
        raise ValueError(f"all logits must have the same shape (N, k), got {zp.shape}, {zm.shape}, {rp.shape}, {rm.shape}")
    n, k = zp.shape
    ep = _targets_matrix(y_chosen, n, k, "cross_entropy")
    em = _targets_matrix(y_rejected, n, k, "cross_entropy")
    lsp, lsm = jax.nn.log_softmax(zp, -1), jax.nn.log_softmax(zm, -1)
    margin = beta * (jnp.sum(ep * (lsp - jax.nn.log_softmax(rp, -1)), -1) - jnp.sum(em * (lsm - jax.nn.log_softmax(rm, -1)), -1))
    weight = beta * (1.0 - jax.nn.sigmoid(margin))[:, None]
    return weight * (jnp.exp(lsp) - ep), -weight * (jnp.exp(lsm) - em)


# ------------------------------------------------------------------ distillation toy
class ToyData(NamedTuple):
    """Inputs ``x`` ``(n, dim)``, sampled labels ``y`` ``(n,)`` and the true
    conditional class probabilities ``p_star`` ``(n, 3)``."""

    x: jax.Array
    y: jax.Array
    p_star: jax.Array


def three_class_toy(n: int, key: jax.Array, *, dim: int = 30, separation: float = 1.0) -> ToyData:
    """A 3-class problem with known ``p*(y | x)``: noisy labels with a ground truth.

    Class ``c`` is drawn uniformly; the first two coordinates are
    ``N(mu_c, I_2)`` with the ``mu_c`` at the corners of an equilateral triangle of
    circumradius ``separation``; the other ``dim - 2`` coordinates are ``N(0, 1)``
    noise that carries no information. The Bayes posterior is then exactly
    ``p*(c | x) = softmax_c(mu_c . x_{1:2} - |mu_c|^2 / 2)``, and the label is a
    *sample* from it, so some labels disagree with ``argmax p*``: the set-up of the
    zig-zag experiments of Ren, Guo & Sutherland (2022).

    Args:
        n: number of examples.
        key: PRNG key.
        dim: input dimension (>= 2); the extra dimensions make memorisation easy.
        separation: distance of the class means from the origin (> 0).

    Returns:
        :class:`ToyData`.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    if not separation > 0:
        raise ValueError(f"separation must be positive, got {separation}")
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax.random key, got {type(key).__name__}")
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    means = jnp.asarray(separation * np.stack([np.cos(angles), np.sin(angles)], axis=1), dtype=jnp.float32)
    k_class, k_signal, k_noise, k_label = jax.random.split(key, 4)
    c = jax.random.randint(k_class, (n,), 0, 3)
    signal = means[c] + jax.random.normal(k_signal, (n, 2))
    logits = signal @ means.T - 0.5 * jnp.sum(means**2, axis=1)
    y = jax.random.categorical(k_label, logits).astype(jnp.int32)
    x = jnp.concatenate([signal, jax.random.normal(k_noise, (n, dim - 2))], axis=1)
    return ToyData(x, y, jax.nn.softmax(logits, axis=-1))


# --------------------------------------------------- approximate retraining, lookahead
# The kernel algebra below runs in NumPy float64 on the host: in an active-learning
# loop the shapes change at every acquisition, and eager JAX would compile every
# operation anew for every shape. Inputs may be NumPy or JAX arrays.
def _as_matrix(kernel: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """``(N1, N2)`` -> itself with block size 1; ``(N1, N2, k, k)`` -> ``(N1 k, N2 k)`` with block ``k``."""
    if kernel.ndim == 2:
        return kernel, 1
    if kernel.ndim == 4 and kernel.shape[2] == kernel.shape[3]:
        n1, n2, k, _ = kernel.shape
        return kernel.transpose(0, 2, 1, 3).reshape(n1 * k, n2 * k), k
    raise ValueError(f"{name} must have shape (N1, N2) or (N1, N2, k, k), got {kernel.shape}")


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def block_inverse_update(k_inv: Any, b: Any, c: Any) -> np.ndarray:
    """Inverse of ``[[K, b], [b^T, c]]`` from ``K^{-1}`` by the Schur complement.

    With ``S = c - b^T K^{-1} b`` and ``u = K^{-1} b``,

    ``[[K, b], [b^T, c]]^{-1} = [[K^{-1} + u S^{-1} u^T, -u S^{-1}], [-S^{-1} u^T, S^{-1}]]``.

    Adding one input to an ``(N, N)`` pNTK system is a single new row and column
    (``S`` is a scalar: a rank-one correction of ``K^{-1}``, as in the sequential
    look-ahead of Mohamadi, Bae & Sutherland 2022); for the ``(N k, N k)`` eNTK it
    is a ``k x k`` block. Cost ``O(N^2 m)`` instead of ``O((N + m)^3)``. Float64.

    Args:
        k_inv: ``(n, n)`` inverse of the current (symmetric positive definite) kernel matrix.
        b: ``(n, m)`` (or ``(n,)``) kernel between the current and the new inputs.
        c: ``(m, m)`` (or scalar) kernel among the new inputs.

    Returns:
        The ``(n + m, n + m)`` inverse, a NumPy float64 array.

    Raises:
        ValueError: inconsistent shapes, NaN or inf, or an enlarged matrix that is
            singular to working precision (a new input equal to a current one).
    """
    k_inv = _f64(k_inv)
    if k_inv.ndim != 2 or k_inv.shape[0] != k_inv.shape[1]:
        raise ValueError(f"k_inv must be a square matrix, got shape {k_inv.shape}")
    n = k_inv.shape[0]
    b = _f64(b)
    b = b[:, None] if b.ndim == 1 else b
    if b.ndim != 2 or b.shape[0] != n:
        raise ValueError(f"b must have shape ({n}, m) or ({n},), got {b.shape}")
    m = b.shape[1]
    c = _f64(c)
    if c.ndim == 0 and m == 1:
        c = c.reshape(1, 1)
    if c.shape != (m, m):
        raise ValueError(f"c must have shape ({m}, {m}) to match b {b.shape}, got {c.shape}")
    for a, name in ((k_inv, "k_inv"), (b, "b"), (c, "c")):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
    u = k_inv @ b
    schur = c - b.T @ u
    # A new input equal to a current one (or two equal new inputs) makes the enlarged matrix singular: S is
    # zero up to rounding. Refuse it with a clear message instead of LinAlgError or an inverse of size 1e16.
    # The threshold assumes a well-conditioned K (rounding in b^T K^-1 b grows like cond(K) eps): with cond(K)
    # beyond ~1e3 (n + m) an exact duplicate can pass and give a huge inverse.
    scale = max(float(np.abs(c).max()), float(np.abs(b.T @ u).max()), np.finfo(np.float64).tiny)
    smallest = float(np.abs(np.linalg.eigvals(schur)).min())
    if not smallest > 1e3 * (n + m) * np.finfo(np.float64).eps * scale:
        raise ValueError(f"[[K, b], [b^T, c]] is singular to working precision (the Schur complement "
                         f"c - b^T K^-1 b has an eigenvalue of size {smallest:.2g} against entries of size "
                         f"{scale:.2g}): is a new input a duplicate of a current input, or of another new one?")
    s_inv = np.linalg.inv(schur)
    top_right = -u @ s_inv
    return np.block([[k_inv + u @ s_inv @ u.T, top_right], [top_right.T, s_inv]])


def sequential_lookahead(k_xx: Any, k_mx: Any, targets: Any, f0_x: Any, f0_m: Any, start: int) -> np.ndarray:
    """Kernel-regression fits grown one input at a time by look-ahead updates.

    Fits ``f_S = f + K(., X_S) K(X_S, X_S)^{-1} (Y_S - f(X_S))`` on the first ``start``
    inputs from ``f = f0``, then adds inputs ``start, start + 1, ...`` one at a time,
    each time applying the look-ahead update of the *current* fit on the grown set
    (Mohamadi, Bae & Sutherland 2022, Sec. 3, the "approximate retraining" of the
    current model by a kernel-regression step), with ``K(X_S, X_S)^{-1}`` grown by
    :func:`block_inverse_update`. For a fixed kernel each of these fits equals the
    direct kernel-regression fit of ``X_S`` from ``f0`` (chapter 15, Proposition
    prop-15-exact): the chapter checks this identity to rounding with the infinite NTK.
    Float64, scalar kernel (pNTK or infinite NTK, ``P (x) I_k``).

    Args:
        k_xx: ``(N, N)`` symmetric positive definite kernel on the inputs, in the order added.
        k_mx: ``(M, N)`` kernel between evaluation inputs and the inputs.
        targets: ``(N, k)`` targets ``Y``.
        f0_x: ``(N, k)`` initial function on the inputs.
        f0_m: ``(M, k)`` initial function on the evaluation inputs.
        start: size of the first set (``1 <= start <= N``).

    Returns:
        ``(N - start + 1, M, k)``: the fit on the evaluation inputs after ``start``,
        ``start + 1``, ..., ``N`` inputs.

    Raises:
        ValueError: inconsistent shapes, or ``start`` outside ``[1, N]``.
    """
    k_xx, k_mx = _f64(k_xx), _f64(k_mx)
    y, f_x, f_m = _f64(targets), _f64(f0_x), _f64(f0_m)
    if k_xx.ndim != 2 or k_xx.shape[0] != k_xx.shape[1]:
        raise ValueError(f"k_xx must be a square matrix, got shape {k_xx.shape}")
    n = k_xx.shape[0]
    if y.ndim != 2 or y.shape[0] != n or f_x.shape != y.shape:
        raise ValueError(f"targets and f0_x must both have shape ({n}, k), got {y.shape} and {f_x.shape}")
    if k_mx.ndim != 2 or k_mx.shape[1] != n or f_m.shape != (k_mx.shape[0], y.shape[1]):
        raise ValueError(f"k_mx must be (M, {n}) and f0_m (M, {y.shape[1]}), got {k_mx.shape} and {f_m.shape}")
    start = _checks.positive_int(start, "start")
    if start > n:
        raise ValueError(f"start must be at most the number of inputs {n}, got {start}")
    k_all = np.concatenate([k_xx, k_mx])                                 # rows: inputs, then evaluation inputs
    f_all = np.concatenate([f_x, f_m])
    k_inv = np.linalg.inv(k_xx[:start, :start])
    f_all = f_all + k_all[:, :start] @ (k_inv @ (y[:start] - f_all[:start]))
    fits = [f_all[n:].copy()]
    for j in range(start, n):
        k_inv = block_inverse_update(k_inv, k_xx[:j, j], k_xx[j, j])
        f_all = f_all + k_all[:, : j + 1] @ (k_inv @ (y[: j + 1] - f_all[: j + 1]))
        fits.append(f_all[n:].copy())
    return np.stack(fits)


def lookahead_changes(
    k_ll: Any, k_cl: Any, k_cc: Any, k_ml: Any, k_mc: Any, residual_l: Any, residual_c: Any,
    *, k_ll_inv: Any = None, include_base: bool = True,
) -> np.ndarray:
    """Predicted change of the outputs on ``M`` inputs if each candidate were added.

    For candidate ``c`` with hypothesised residual ``r_c = y_c - f(x_c)``, returns
    ``Delta_c(x_m) = K(x_m, L+c) K(L+c, L+c)^{-1} r_{L+c}`` (the approximate
    retraining of Mohamadi, Bae & Sutherland 2022, relative to the current ``f``),
    for all candidates at once. With ``alpha = K_LL^{-1} r_L``, the Schur
    complement ``S_c = K_cc - K_cL K_LL^{-1} K_Lc`` and the conditional kernel
    ``K_m|L(x_m, x_c) = K_mc - K_mL K_LL^{-1} K_Lc``,

    ``Delta_c(x_m) = K_mL alpha + K_m|L(x_m, x_c) S_c^{-1} (r_c - K_cL alpha)``:

    the algebra of :func:`block_inverse_update`, equal to a fresh solve on ``L + c``
    (the unit tests and chapter 15 check this). Float64.

    Args:
        k_ll: ``(N, N)`` or ``(N, N, k, k)`` kernel on the labelled inputs.
        k_cl: ``(C, N)`` or ``(C, N, k, k)`` candidates x labelled.
        k_cc: ``(C,)`` or ``(C, k, k)``: each candidate with itself.
        k_ml: ``(M, N)`` or ``(M, N, k, k)`` evaluation inputs x labelled.
        k_mc: ``(M, C)`` or ``(M, C, k, k)`` evaluation inputs x candidates.
        residual_l: ``(N, k)`` residuals ``Y_L - f(X_L)``.
        residual_c: ``(C, k)`` hypothesised residuals ``y_c - f(x_c)``.
        k_ll_inv: optional precomputed ``K_LL^{-1}`` (matrix form), e.g. kept up to
            date by :func:`block_inverse_update` in a sequential loop.
        include_base: include the candidate-independent term ``K_mL alpha`` (the
            change from refitting ``L`` alone). ``False`` gives the change relative
            to the current kernel model ``f + K_mL alpha``.

    Returns:
        ``(C, M, k)`` changes of the outputs (NumPy float64).

    Raises:
        ValueError: inconsistent kernel shapes.
    """
    kll, b = _as_matrix(_f64(k_ll), "k_ll")
    k_cl, k_ml, k_mc, k_cc = _f64(k_cl), _f64(k_ml), _f64(k_mc), _f64(k_cc)
    r_l, r_c = _f64(residual_l), _f64(residual_c)
    if r_l.ndim != 2 or r_c.ndim != 2 or r_l.shape[1] != r_c.shape[1]:
        raise ValueError(f"residual_l and residual_c must be (N, k) and (C, k), got {r_l.shape}, {r_c.shape}")
    n, k = r_l.shape
    n_c = r_c.shape[0]
    if b not in (1, k):
        raise ValueError(f"k_ll has {b} outputs per input but the residuals have {k}")
    full = b > 1
    if kll.shape[0] != n * b:
        raise ValueError(f"k_ll covers {kll.shape[0] // b} inputs but residual_l has {n}")
    tail = (k, k) if full else ()
    n_m = k_ml.shape[0] if k_ml.ndim >= 1 else -1
    for name, arr, want in (("k_cl", k_cl, (n_c, n) + tail), ("k_ml", k_ml, (n_m, n) + tail),
                            ("k_mc", k_mc, (n_m, n_c) + tail), ("k_cc", k_cc, (n_c,) + tail)):
        if arr.shape != want:
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")

    # Matrix forms: block size b; right-hand sides with k columns for P (x) I, 1 for the eNTK.
    if full:
        kcl = k_cl.transpose(0, 2, 1, 3).reshape(n_c, k, n * k)                          # (C, k, Nk)
        kml = _as_matrix(k_ml, "k_ml")[0]                                                 # (Mk, Nk)
        kmc = k_mc.transpose(1, 0, 2, 3).reshape(n_c, n_m * k, k)                         # (C, Mk, k)
        kcc, rl, rc = k_cc, r_l.reshape(n * k, 1), r_c[:, :, None]
    else:
        kcl, kml, kmc = k_cl[:, None, :], k_ml, k_mc.T[:, :, None]
        kcc, rl, rc = k_cc[:, None, None], r_l, r_c[:, None, :]
    kinv = np.linalg.inv(kll) if k_ll_inv is None else _f64(k_ll_inv)
    if kinv.shape != kll.shape:
        raise ValueError(f"k_ll_inv must have shape {kll.shape}, got {kinv.shape}")
    alpha = kinv @ rl                                                     # (Nb, cols)
    v = np.einsum("ij,cbj->cib", kinv, kcl)                               # (C, Nb, b) = K_LL^{-1} K_Lc
    schur = kcc - np.einsum("cbj,cjd->cbd", kcl, v)                       # (C, b, b)
    innovation = rc - np.einsum("cbj,jr->cbr", kcl, alpha)                # (C, b, cols)
    beta = np.linalg.solve(schur, innovation)                             # (C, b, cols)
    cond = kmc - np.einsum("mj,cjb->cmb", kml, v)                         # (C, Mb, b)
    delta = np.einsum("cmb,cbr->cmr", cond, beta)                         # (C, Mb, cols)
    if include_base:
        delta = delta + (kml @ alpha)[None]
    return delta.reshape(n_c, n_m, k)


def one_step_lookahead(k_mc: Any, residual_c: Any, learning_rate: float) -> np.ndarray:
    """The one-SGD-step approximation to adding each candidate: ``eta K(x_m, x_c) r_c``.

    One step of size ``eta`` on ``1/2 ||f(x_c) - y_c||^2`` alone moves the outputs by
    ``-eta K(x_m, x_c) G_c`` with ``G_c = f(x_c) - y_c = -r_c`` (:func:`predicted_change`
    with ``A = I`` and ``N = 1``): the one-step look-ahead baseline the talk compares
    against. Returns ``(C, M, k)``.
    """
    eta = _check_rate(learning_rate)
    k_mc, r_c = _f64(k_mc), _f64(residual_c)
    if r_c.ndim != 2:
        raise ValueError(f"residual_c must have shape (C, k), got {r_c.shape}")
    n_c, k = r_c.shape
    if k_mc.ndim == 2 and k_mc.shape[1] == n_c:
        return eta * k_mc.T[:, :, None] * r_c[:, None, :]
    if k_mc.ndim == 4 and k_mc.shape[1:] == (n_c, k, k):
        return eta * np.einsum("mcab,cb->cma", k_mc, r_c)
    raise ValueError(f"k_mc must have shape (M, {n_c}) or (M, {n_c}, {k}, {k}), got {k_mc.shape}")


def output_change_score(changes: Any) -> np.ndarray:
    """Sum over evaluation inputs of ``||Delta_c(x_m)||_2``: the model-output-change
    score of each candidate (their "most likely model output change", MLMOC, when
    ``Delta`` uses the predicted label; Mohamadi, Bae & Sutherland 2022).
    ``changes`` is ``(C, M, k)``; returns ``(C,)``."""
    changes = _f64(changes)
    if changes.ndim != 3:
        raise ValueError(f"changes must have shape (C, M, k), got {changes.shape}")
    return np.sum(np.linalg.norm(changes, axis=-1), axis=-1)


def entropy(probs: Any) -> np.ndarray:
    """Shannon entropy (nats) of each row of ``probs`` ``(n, k)``: the max-entropy
    acquisition score (Settles 2009, Sec. 3.1)."""
    p = _f64(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (n, k), got {p.shape}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-5):
        raise ValueError("probs must be non-negative rows summing to one")
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)


def softmax_np(z: Any) -> np.ndarray:
    """Row-wise softmax in NumPy float64."""
    z = _f64(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ active learning
ACQUISITIONS: tuple[str, ...] = ("random", "entropy", "one_step", "lookahead")


class ActiveLearningRun(NamedTuple):
    """One active-learning run: test accuracy of the retrained network after each
    round (``n_labelled[r]`` labels), and the pool indices acquired, in order."""

    n_labelled: np.ndarray
    test_accuracy: np.ndarray
    acquired: np.ndarray


def _pool_kernel(apply_fn: Callable, params: Any, x: jax.Array, kernel: str) -> np.ndarray:
    if kernel == "pntk":
        return _f64(_kernels.pseudo_ntk(apply_fn, params, x, vmap_axes=0))
    return _f64(_kernels.empirical_ntk(apply_fn, params, x, vmap_axes=0))


def _take(kern: np.ndarray, rows: Any, cols: Any) -> np.ndarray:
    return kern[np.ix_(np.asarray(rows), np.asarray(cols))]


def _pair_diag(kern: np.ndarray, idx: Any) -> np.ndarray:
    idx = np.asarray(idx)
    return kern[idx, idx]


def acquire(
    strategy: str, apply_fn: Callable, params: Any, x_pool: Any, y_pool: Any, labelled: Any,
    n: int, *, key: jax.Array, kernel: Literal["pntk", "entk"] = "pntk",
) -> np.ndarray:
    """Pool indices of the next ``n`` acquisitions of ``strategy`` for the trained network.

    - ``"random"``: uniformly among the unlabelled pool points;
    - ``"entropy"``: largest entropy of ``softmax(f(x))`` (:func:`entropy`);
    - ``"one_step"``: largest :func:`output_change_score` of the one-SGD-step
      look-ahead (:func:`one_step_lookahead`) with the predicted label;
    - ``"lookahead"``: largest :func:`output_change_score` of the kernel-regression
      look-ahead (:func:`lookahead_changes`) with the predicted label (the MLMOC
      criterion of Mohamadi, Bae & Sutherland 2022), picked *sequentially*: after
      each pick its true label (``y_pool``) joins the kernel model through
      :func:`block_inverse_update`, without retraining, and the next pick sees the
      updated predictions.

    Output changes are measured on the unlabelled pool, with the kernel frozen at
    ``params``. The network is assumed to be trained on one-hot targets with the
    square loss (its residuals enter the kernel model).

    Returns:
        ``(n,)`` distinct pool indices, not in ``labelled``.
    """
    _checks.choice(strategy, "strategy", ACQUISITIONS)
    _checks.choice(kernel, "kernel", ("pntk", "entk"))
    x_pool = jnp.asarray(x_pool)
    y_pool = np.asarray(y_pool)
    lab = np.asarray(labelled, dtype=int)
    rest = np.setdiff1d(np.arange(len(y_pool)), lab)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(rest):
        raise ValueError(f"n must be an integer in [1, {len(rest)}] (unlabelled pool points), got {n!r}")
    if strategy == "random":
        return np.asarray(jax.random.choice(key, rest, (n,), replace=False))
    f_rest = _f64(apply_fn(params, x_pool[rest]))
    k = f_rest.shape[1]
    eye = np.eye(k)
    if strategy == "entropy":
        return rest[np.argsort(-entropy(softmax_np(f_rest)), kind="stable")[:n]]
    order = np.concatenate([lab, rest])
    kern = _pool_kernel(apply_fn, params, x_pool[order], kernel)
    n_lab = len(lab)
    pos_rest = np.arange(n_lab, len(order))
    if strategy == "one_step":
        resid = eye[np.argmax(f_rest, axis=1)] - f_rest
        scores = output_change_score(one_step_lookahead(_take(kern, pos_rest, pos_rest), resid, 1.0))
        return rest[np.argsort(-scores, kind="stable")[:n]]
    # Sequential kernel look-ahead; positions index `order`.
    f_all = np.concatenate([_f64(apply_fn(params, x_pool[lab])), f_rest])
    lab_pos, rest_pos = list(range(n_lab)), list(pos_rest)
    r_lab = eye[y_pool[lab]] - f_all[:n_lab]
    k_inv = np.linalg.inv(_as_matrix(_take(kern, lab_pos, lab_pos), "k_ll")[0])
    picked = []
    for _ in range(n):
        lp, rp = np.asarray(lab_pos), np.asarray(rest_pos)
        k_cl = _take(kern, rp, lp)
        alpha = k_inv @ (r_lab if kern.ndim == 2 else r_lab.reshape(-1, 1))
        f_cur = f_all[rp] + (_as_matrix(k_cl, "k_cl")[0] @ alpha).reshape(len(rp), k)
        resid_c = eye[np.argmax(f_cur, axis=1)] - f_all[rp]
        changes = lookahead_changes(_take(kern, lp, lp), k_cl, _pair_diag(kern, rp), k_cl, _take(kern, rp, rp),
                                    r_lab, resid_c, k_ll_inv=k_inv, include_base=False)
        pos = int(rp[int(np.argmax(output_change_score(changes)))])
        k_inv = block_inverse_update(k_inv, _as_matrix(_take(kern, lp, [pos]), "b")[0],
                                     _as_matrix(_take(kern, [pos], [pos]), "c")[0])
        lab_pos.append(pos)
        rest_pos.remove(pos)
        r_lab = np.concatenate([r_lab, eye[y_pool[order[pos]]][None] - f_all[pos][None]])
        picked.append(int(order[pos]))
    return np.asarray(picked)


def active_learning(
    apply_fn: Callable,
    params0: Any,
    x_pool: Any,
    y_pool: Any,
    x_test: Any,
    y_test: Any,
    initial: Any,
    *,
    strategy: str,
    rounds: int,
    per_round: int,
    train_steps: int,
    learning_rate: float,
    key: jax.Array,
    momentum: float = 0.9,
    kernel: Literal["pntk", "entk"] = "pntk",
) -> ActiveLearningRun:
    """Pool-based active learning with the network retrained from ``params0`` each round.

    Each round trains the network on the labelled set with the square loss on
    one-hot targets (:func:`ntkbook.train.fit`, full batch, SGD with momentum),
    records its test accuracy, then acquires ``per_round`` pool points with
    :func:`acquire`.

    Args:
        apply_fn, params0: the network and its initial parameters (reused every round).
        x_pool, y_pool: pool inputs and integer labels (a label is used only once acquired).
        x_test, y_test: held-out evaluation set.
        initial: pool indices labelled at the start.
        strategy: one of :data:`ACQUISITIONS`.
        rounds: number of acquisition rounds (the network is trained ``rounds + 1`` times).
        per_round: points acquired per round.
        train_steps, learning_rate, momentum: the optimiser.
        key: PRNG key (random acquisitions; round ``r`` uses ``fold_in(key, r)``).
        kernel: kernel of the look-ahead strategies.

    Returns:
        :class:`ActiveLearningRun`.

    Raises:
        ValueError: unknown strategy or kernel, bad sizes, or a pool too small for the budget
        (checked before any training).
    """
    import optax

    from . import train as _train

    _checks.choice(strategy, "strategy", ACQUISITIONS)
    _checks.choice(kernel, "kernel", ("pntk", "entk"))
    _check_rate(learning_rate)  # a negative rate would train by gradient ascent
    _checks.probability(momentum, "momentum", open_high=True)
    for name, value in (("rounds", rounds), ("per_round", per_round), ("train_steps", train_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    x_pool, x_test = jnp.asarray(x_pool), jnp.asarray(x_test)
    y_pool, y_test = np.asarray(y_pool), np.asarray(y_test)
    labelled = [int(i) for i in np.asarray(initial)]
    if not labelled or len(set(labelled)) != len(labelled) or not all(0 <= i < len(y_pool) for i in labelled):
        raise ValueError("initial must be a non-empty set of distinct indices into the pool")
    if len(labelled) + rounds * per_round > len(y_pool):
        raise ValueError(f"the pool has {len(y_pool)} points, fewer than the budget "
                         f"{len(labelled)} + {rounds} x {per_round}")
    k = int(jax.eval_shape(apply_fn, params0, x_pool[:1]).shape[-1])
    loss_fn = _train.mse_loss(apply_fn)
    optimizer = optax.sgd(learning_rate, momentum=momentum)
    eye = np.eye(k, dtype=np.float32)
    sizes, accs = [], []
    for r in range(rounds + 1):
        lab = np.asarray(labelled)
        params, _ = _train.fit(loss_fn, params0, optimizer, train_steps,
                               data=(x_pool[lab], jnp.asarray(eye[y_pool[lab]])), progress=False)
        sizes.append(len(lab))
        accs.append(float(_train.accuracy(apply_fn(params, x_test), jnp.asarray(y_test))))
        if r < rounds:
            labelled += [int(i) for i in acquire(strategy, apply_fn, params, x_pool, y_pool, lab, per_round,
                                                 key=jax.random.fold_in(key, r), kernel=kernel)]
    return ActiveLearningRun(np.asarray(sizes), np.asarray(accs), np.asarray(labelled[len(np.asarray(initial)):]))


class ActiveLearningRepeats(NamedTuple):
    """Independent repeats of an active-learning run: ``test_accuracy[r, t]`` of repeat
    ``r`` after round ``t`` (``n_labelled[t]`` labels), and the pool indices each
    repeat acquired, in order (``(R, rounds * per_round)``)."""

    n_labelled: np.ndarray
    test_accuracy: np.ndarray
    acquired: np.ndarray


def active_learning_repeats(
    apply_fn: Callable,
    params0: Any,
    x_pool: Any,
    y_pool: Any,
    x_test: Any,
    y_test: Any,
    initial: Any,
    *,
    strategy: str,
    rounds: int,
    per_round: int,
    train_steps: int,
    learning_rate: float,
    key: jax.Array,
    momentum: float = 0.9,
    kernel: Literal["pntk", "entk"] = "pntk",
) -> ActiveLearningRepeats:
    """:func:`active_learning` for ``R`` independent repeats at once.

    Repeat ``r`` starts from its own parameters (``params0`` stacked on a leading
    axis of size ``R``, e.g. :func:`ntkbook.models.init_ensemble`) and its own
    initial labelled set (row ``r`` of ``initial``, ``(R, n0)``). All repeats have
    the same number of labels in every round, so the ``R`` networks are trained
    together, side by side, by one :func:`ntkbook.train.fit` per round (the loss is
    the sum of the repeats' losses, whose gradient with respect to each repeat's
    parameters is that repeat's own gradient); the acquisitions are made per repeat
    with :func:`acquire`, repeat ``r`` using the key ``fold_in(key, r)``. Each
    repeat therefore follows exactly the run :func:`active_learning` would make
    with ``key=fold_in(key, r)`` (up to floating-point summation order).

    Returns:
        :class:`ActiveLearningRepeats`.

    Raises:
        ValueError: as :func:`active_learning`, or ``initial`` / ``params0`` not
        matching in their number of repeats (checked before any training).
    """
    import optax

    from . import train as _train

    _checks.choice(strategy, "strategy", ACQUISITIONS)
    _checks.choice(kernel, "kernel", ("pntk", "entk"))
    for name, value in (("rounds", rounds), ("per_round", per_round), ("train_steps", train_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    x_pool, x_test = jnp.asarray(x_pool), jnp.asarray(x_test)
    y_pool, y_test = np.asarray(y_pool), np.asarray(y_test)
    init = np.asarray(initial)
    if init.ndim != 2 or init.shape[1] < 1 or not np.issubdtype(init.dtype, np.integer):
        raise ValueError(f"initial must be an (R, n0) integer array of pool indices, got shape {init.shape}")
    n_rep = init.shape[0]
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves or any(jnp.ndim(a) < 1 or jnp.shape(a)[0] != n_rep for a in leaves):
        raise ValueError(f"params0 must be stacked on a leading axis of size R = {n_rep} (one set per row of initial)")
    for row in init:
        if len(set(row.tolist())) != len(row) or row.min() < 0 or row.max() >= len(y_pool):
            raise ValueError("each row of initial must hold distinct indices into the pool")
    if init.shape[1] + rounds * per_round > len(y_pool):
        raise ValueError(f"the pool has {len(y_pool)} points, fewer than the budget "
                         f"{init.shape[1]} + {rounds} x {per_round}")
    first = jax.tree_util.tree_map(lambda a: a[0], params0)
    k = int(jax.eval_shape(apply_fn, first, x_pool[:1]).shape[-1])
    single = _train.mse_loss(apply_fn)

    def loss_fn(stacked: Any, batch: Any) -> jax.Array:
        xs, ys = batch
        return jnp.sum(jax.vmap(lambda p, x, y: single(p, (x, y)))(stacked, xs, ys))

    optimizer = optax.sgd(learning_rate, momentum=momentum)
    eye = np.eye(k, dtype=np.float32)
    labelled = [list(map(int, row)) for row in init]
    sizes, accs = [], []
    predict = jax.jit(jax.vmap(apply_fn, in_axes=(0, None)))
    for t in range(rounds + 1):
        lab = np.asarray(labelled)                                          # (R, n)
        params, _ = _train.fit(loss_fn, params0, optimizer, train_steps,
                               data=(x_pool[lab], jnp.asarray(eye[y_pool[lab]])), progress=False)
        sizes.append(lab.shape[1])
        accs.append(np.asarray(jnp.mean(jnp.argmax(predict(params, x_test), -1) == jnp.asarray(y_test), axis=-1)))
        if t < rounds:
            for r in range(n_rep):
                p_r = jax.tree_util.tree_map(lambda a, r=r: a[r], params)
                labelled[r] += [int(i) for i in acquire(strategy, apply_fn, p_r, x_pool, y_pool, lab[r], per_round,
                                                       key=jax.random.fold_in(jax.random.fold_in(key, r), t),
                                                       kernel=kernel)]
    return ActiveLearningRepeats(np.asarray(sizes), np.stack(accs, axis=1),
                                 np.asarray([row[init.shape[1]:] for row in labelled]))
