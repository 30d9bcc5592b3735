"""Learning curves and scaling laws of a network, its eNTK and its infinite NTK (chapter 10).

Implements the protocol of Sect. 2 of "Limitations of the NTK for understanding
generalization in deep learning" {cite}`ntklimitations2022` at the size of a CPU:

- one binary task with labels in {-1, +1}, the square loss, the NTK
  parameterisation;
- three models trained by the *same* optimiser with the *same* hyperparameters
  (full-batch gradient descent with heavy-ball momentum, ``optax.sgd``):

  * ``"network"``: the network, centred, ``f(w, x) - f(w_0, x)``;
  * ``"entk"``: its linearisation at initialisation, ``J(w_0, x) (w - w_0)``,
    i.e. the paper's "empirical NTK" model (Sect. 2, which omits ``f(w_0, x)``);
  * ``"ntk"``: the infinite-width NTK of the same architecture, trained as the
    linear model ``K(x, X) alpha`` by the same gradient descent;

  centring the network removes ``f(w_0, x)``, so the three share one
  infinite-width limit (the paper's reason for its choices (a) and (b), Sect. 1.1);
- optimal early stopping: the step with the lowest *validation* error, its
  *test* error reported;
- repeats over independent draws of data and initialisation, and power-law fits
  ``error ~ c n^{-beta}`` (:func:`ntkbook.metrics.fit_power_law`).

The kernel models never materialise weights. Gradient descent on the linear
model ``g(w) = J (w - w_0)`` with loss ``(1/2n) ||g(X) - Y||^2`` keeps
``w_t - w_0 = J(X)^T alpha_t`` in the span of the training gradients, so with
``K = J J^T``::

    nu_{t+1}    = momentum * nu_t + (K alpha_t - Y) / n
    alpha_{t+1} = alpha_t - lr * nu_{t+1}
    g_t(x)      = K(x, X) alpha_t

which is exactly ``optax.sgd(lr, momentum)`` in weight space (the tests check it
against training ``nt.linearize`` and against :func:`ntkbook.kernels.gradient_flow_mse`).
One step costs one ``n x n`` matrix-vector product, whatever the width.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks
from . import data as _data
from . import kernels as _kernels
from . import progress as _progress
from . import train as _train
from .metrics import PowerLawFit

MODELS: tuple[str, ...] = ("network", "entk", "ntk")
Params = Any


# ----------------------------------------------------------------------- checks
def _check_labels(y: Any, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim < 1 or not np.all(np.abs(y) == 1.0):
        raise ValueError(f"{name} must hold labels in {{-1, +1}}, got shape {y.shape} with values "
                         f"{np.unique(y)[:5]}")
    return y


def _check_models(which: Sequence[str]) -> tuple[str, ...]:
    which = tuple(which)
    if not which or any(w not in MODELS for w in which) or len(set(which)) != len(which):
        raise ValueError(f"models must be distinct names from {MODELS}, got {which}")
    return which


# ---------------------------------------------------------------- the protocol
@dataclass(frozen=True)
class Protocol:
    """The optimiser and its hyperparameters, shared by the network and both kernels.

    Attributes:
        learning_rate: step size of ``optax.sgd`` (must be below the kernels'
            critical rate ``2 (1 + momentum) n / lambda_max(K)``).
        momentum: heavy-ball coefficient in ``[0, 1)`` (0 is plain gradient descent).
        steps: number of full-batch steps.
        n_records: steps at which errors are recorded, evenly spaced on a log
            axis between 1 and ``steps`` (early stopping chooses among them).
    """

    learning_rate: float
    momentum: float = 0.9
    steps: int = 1000
    n_records: int = 30

    def __post_init__(self) -> None:
        _checks.positive(self.learning_rate, "learning_rate")
        _checks.probability(self.momentum, "momentum", open_high=True)
        _checks.positive_int(self.steps, "steps")
        _checks.positive_int(self.n_records, "n_records", minimum=2)

    @property
    def record_steps(self) -> np.ndarray:
        """The recorded steps: 0, then log-spaced up to ``steps`` (distinct integers)."""
        return _train.record_schedule(self.steps, self.n_records, spacing="log")

    def optimizer(self) -> optax.GradientTransformation:
        """``optax.sgd(learning_rate, momentum)`` (plain SGD when momentum is 0)."""
        return optax.sgd(self.learning_rate, momentum=self.momentum or None)


# ------------------------------------------------------------- early stopping
def classification_error(outputs: Any, labels: Any) -> np.ndarray:
    """Fraction of samples with ``sign(output) != label`` along the last axis.

    An output of exactly zero counts as an error (the centred models output zero
    at step 0), and so does a non-finite one (a diverged model has no sign).
    ``outputs`` may carry a trailing singleton output axis.
    """
    out = np.asarray(outputs)
    lab = np.asarray(labels)
    if out.ndim == lab.ndim + 1 and out.shape[-1] == 1:
        out = out[..., 0]
    if out.shape[-lab.ndim:] != lab.shape:
        raise ValueError(f"outputs {np.shape(outputs)} do not match labels {lab.shape}")
    return np.mean(~(out * lab > 0), axis=-1)  # NaN compares False: an error


class EarlyStop(NamedTuple):
    """The recorded step with the lowest validation error, and the test error there."""

    index: int
    step: int
    val_error: float
    test_error: float


def early_stopping(steps: Any, val_errors: Any, test_errors: Any) -> EarlyStop:
    """Optimal early stopping on a held-out set (the paper's Sect. 2 protocol).

    Picks the first recorded step at which the validation error is smallest and
    returns the test error at that step; the test set plays no part in the choice.

    Args:
        steps: recorded steps, 1-D and increasing.
        val_errors, test_errors: errors at those steps (same length).

    Raises:
        ValueError: empty, mismatched, non-increasing or non-finite inputs.
    """
    steps = np.asarray(steps)
    val = np.asarray(val_errors, dtype=float)
    test = np.asarray(test_errors, dtype=float)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D array, got shape {steps.shape}")
    if val.shape != steps.shape or test.shape != steps.shape:
        raise ValueError(f"val_errors {val.shape} and test_errors {test.shape} must match steps {steps.shape}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    if not (np.all(np.isfinite(val)) and np.all(np.isfinite(test))):
        raise ValueError("errors must be finite")
    i = int(np.argmin(val))
    return EarlyStop(i, int(steps[i]), float(val[i]), float(test[i]))


class Run(NamedTuple):
    """Errors of one model recorded along training, its early-stopping choice and
    the learning rate it was trained with.

    ``test_correct`` (kernel fits only, else ``None``) says for every test point
    whether the model classifies it correctly at the early-stopping step, so two
    models fitted to the same split can be compared point by point (a paired,
    McNemar-type test) rather than through their two error rates;
    ``(~test_correct).mean() == stop.test_error`` (the same mean of the same booleans).
    """

    steps: np.ndarray
    train_error: np.ndarray
    val_error: np.ndarray
    test_error: np.ndarray
    stop: EarlyStop
    learning_rate: float
    test_correct: np.ndarray | None = None


def _run(steps: np.ndarray, train_err: Any, val_err: Any, test_err: Any, learning_rate: float) -> Run:
    tr, va, te = (np.asarray(e, dtype=float) for e in (train_err, val_err, test_err))
    return Run(np.asarray(steps), tr, va, te, early_stopping(steps, va, te), float(learning_rate))


# -------------------------------------------------------- kernel gradient descent
@functools.partial(jax.jit, donate_argnums=(0, 1))
def _descend(alpha, nu, k, y, n_steps, lr, momentum):
    norm = y.size

    def body(_, carry):
        a, v = carry
        v = momentum * v + (k @ a - y) / norm
        return a - lr * v, v

    return jax.lax.fori_loop(0, n_steps, body, (alpha, nu))


def kernel_descent(
    k_train: Any,
    y_train: Any,
    k_evals: Sequence[Any],
    record_steps: Sequence[int],
    *,
    learning_rate: float,
    momentum: float = 0.0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Gradient descent (with heavy-ball momentum) on a fixed-kernel model, from zero.

    The model is ``g(x) = K(x, X) alpha``; the loss ``(1/2n) sum (g(x_i) - y_i)^2``
    with ``n = y_train.size``, the normalisation of :func:`ntkbook.train.mse_loss`.
    The iteration (module docstring) reproduces ``optax.sgd(learning_rate,
    momentum)`` on the linear model ``J (w - w_0)`` with ``K = J J^T`` step for
    step; with ``momentum=0`` it is the discrete case of thesis eqs. (2.60)-(2.61).

    Args:
        k_train: ``(n, n)`` kernel on the training inputs.
        y_train: ``(n,)`` or ``(n, k)`` targets.
        k_evals: kernels ``(m_i, n)`` between other inputs and the training inputs.
        record_steps: increasing non-negative steps at which to return outputs.
        learning_rate: step size.
        momentum: heavy-ball coefficient in ``[0, 1)``.

    Returns:
        ``(train_outputs, eval_outputs)``: ``(R, n[, k])`` and one ``(R, m_i[, k])``
        per evaluation kernel, ``R = len(record_steps)``.

    Raises:
        ValueError: shapes that do not match, bad steps or hyperparameters.
    """
    k = jnp.asarray(k_train)
    y = jnp.asarray(y_train)
    squeeze = y.ndim == 1
    if squeeze:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"y_train must have shape (n,) or (n, k), got {jnp.shape(y_train)}")
    n = y.shape[0]
    if k.shape != (n, n):
        raise ValueError(f"k_train must have shape ({n}, {n}) to match y_train, got {k.shape}")
    evals = [jnp.asarray(e) for e in k_evals]
    for i, e in enumerate(evals):
        if e.ndim != 2 or e.shape[1] != n:
            raise ValueError(f"k_evals[{i}] must have shape (m, {n}), got {e.shape}")
    rec = np.asarray(record_steps)
    if rec.ndim != 1 or rec.size == 0 or rec[0] < 0 or np.any(np.diff(rec) <= 0):
        raise ValueError("record_steps must be a non-empty, strictly increasing sequence of steps >= 0")
    _checks.positive(learning_rate, "learning_rate")
    _checks.probability(momentum, "momentum", open_high=True)
    y = y.astype(k.dtype)
    alpha, nu = jnp.zeros_like(y), jnp.zeros_like(y)
    lr, mom = jnp.asarray(learning_rate, k.dtype), jnp.asarray(momentum, k.dtype)
    done = 0
    train_out, eval_out = [], [[] for _ in evals]
    for step in rec:
        alpha, nu = _descend(alpha, nu, k, y, jnp.asarray(int(step) - done), lr, mom)
        done = int(step)
        train_out.append(np.asarray(k @ alpha))
        for j, e in enumerate(evals):
            eval_out[j].append(np.asarray(e @ alpha))
    pick = (lambda a: a[..., 0]) if squeeze else (lambda a: a)
    return pick(np.stack(train_out)), [pick(np.stack(o)) for o in eval_out]


@jax.jit
def _power_iteration(k, v0):
    def body(_, v):
        w = k @ v
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, 100, body, v0 / jnp.linalg.norm(v0))
    return v @ (k @ v)


def critical_learning_rate(k_train: Any, *, momentum: float = 0.0) -> float:
    """The largest stable learning rate of heavy-ball descent on a kernel model.

    With the loss normalised by ``n`` (module docstring) each eigen-direction of
    ``K`` evolves by a 2x2 linear recursion that is stable if and only if
    ``0 < lr lambda / n < 2 (1 + momentum)`` (Polyak's heavy ball on a quadratic),
    so the critical rate is ``2 (1 + momentum) n / lambda_max``. ``lambda_max`` is
    estimated by 100 steps of power iteration (a slight under-estimate at worst,
    i.e. a slight over-estimate of the rate: use a safety factor).

    Args:
        k_train: ``(n, n)`` positive semi-definite kernel.
        momentum: heavy-ball coefficient in ``[0, 1)``.
    """
    k = jnp.asarray(k_train)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train must be a square (n, n) matrix, got shape {k.shape}")
    _checks.probability(momentum, "momentum", open_high=True)
    v0 = jnp.ones((k.shape[0],), k.dtype) + 0.01 * jnp.arange(k.shape[0], dtype=k.dtype) / k.shape[0]
    lam = float(_power_iteration(k, v0))
    return 2.0 * (1.0 + momentum) * k.shape[0] / lam


SAFETY = 0.8  # fraction of the critical learning rate used when the protocol's rate exceeds it


def fit_kernel(
    k_train: Any,
    k_val: Any,
    k_test: Any,
    split: _data.HeldOutSplit,
    protocol: Protocol,
) -> Run:
    """Train a fixed-kernel model by the protocol's optimiser and stop early.

    The protocol's learning rate is used unless it exceeds the kernel's critical
    rate (:func:`critical_learning_rate`), in which case ``SAFETY`` times the
    critical rate is used and recorded in ``Run.learning_rate``. For kernels at
    initialisation the protocol's rate is chosen below the critical one, so this
    never happens; trained kernels (after-kernels, ``K^t``) grow during training
    and can need it. For a fixed kernel the dynamics depend on ``lr K`` only, so
    a smaller rate is the same trajectory on a slower clock.

    Args:
        k_train, k_val, k_test: kernels ``K(X, X)``, ``K(X_val, X)``, ``K(X_test, X)``.
        split: the data (only the labels are used).
        protocol: optimiser, steps and record schedule.

    Returns:
        A :class:`Run` with train, validation and test errors at the recorded steps.
    """
    y_tr = _check_labels(split.y_train, "y_train")
    y_va = _check_labels(split.y_val, "y_val")
    y_te = _check_labels(split.y_test, "y_test")
    rec = protocol.record_steps
    lr = min(protocol.learning_rate, SAFETY * critical_learning_rate(k_train, momentum=protocol.momentum))
    train_out, (val_out, test_out) = kernel_descent(
        k_train, y_tr, [k_val, k_test], rec, learning_rate=lr, momentum=protocol.momentum)
    run = _run(rec, classification_error(train_out, y_tr), classification_error(val_out, y_va),
               classification_error(test_out, y_te), lr)
    # The same rule as classification_error, at the early-stopping step only.
    return run._replace(test_correct=np.asarray(test_out)[run.stop.index] * np.asarray(y_te) > 0)


def kernel_limit_error(k_train: Any, k_test: Any, y_train: Any, y_test: Any) -> float:
    """Test error of the ``t -> infinity`` limit of kernel gradient descent from zero.

    That limit is kernel regression, ``K(x, X) K(X, X)^{-1} Y`` (thesis eq. 2.61 at
    ``t = infinity``; :func:`ntkbook.kernels.kernel_regression`), whatever the momentum.
    """
    y_tr = _check_labels(y_train, "y_train")
    y_te = _check_labels(y_test, "y_test")
    pred = _kernels.kernel_regression(k_train, y_tr, k_test)
    return float(classification_error(np.asarray(pred)[:, 0], y_te))


# ------------------------------------------------------------------- kernels
def _check_split(split: _data.HeldOutSplit) -> _data.HeldOutSplit:
    if not isinstance(split, _data.HeldOutSplit):
        raise TypeError(f"split must be a data.HeldOutSplit, got {type(split).__name__}")
    for name in ("y_train", "y_val", "y_test"):
        _check_labels(getattr(split, name), name)
    for xs, ys in (("x_train", "y_train"), ("x_val", "y_val"), ("x_test", "y_test")):
        x, y = np.shape(getattr(split, xs)), np.shape(getattr(split, ys))
        if len(x) < 2 or x[0] != y[0] or len(y) != 1:
            raise ValueError(f"{xs} must have shape (n, d) and {ys} shape (n,), got {x} and {y}")
        _checks.finite_array(getattr(split, xs), f"split.{xs}")
    return split


def entk_blocks(
    apply_fn: Callable, params: Params, split: _data.HeldOutSplit, *, batch_size: int | None = 256
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The empirical NTK at ``params`` as ``K(X, X)``, ``K(X_val, X)``, ``K(X_test, X)``.

    Computed with neural-tangents' structured derivatives
    (:func:`ntkbook.kernels.empirical_ntk`), in blocks of ``batch_size`` rows so
    that every training-set size reuses one compiled kernel.
    """
    _check_split(split)
    k_tt = _kernels.empirical_ntk(apply_fn, params, split.x_train, trace_axes=(-1,), vmap_axes=0,
                                  batch_size=batch_size)
    others = np.concatenate([split.x_val, split.x_test])
    k_ot = _kernels.empirical_ntk(apply_fn, params, others, split.x_train, trace_axes=(-1,), vmap_axes=0,
                                  batch_size=batch_size)
    n_val = len(split.x_val)
    return k_tt, k_ot[:n_val], k_ot[n_val:]


def ntk_blocks(
    kernel_fn: Callable, split: _data.HeldOutSplit, *, batch_size: int | None = 256
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The infinite-width NTK of a ``stax`` model as ``K(X, X)``, ``K(X_val, X)``, ``K(X_test, X)``."""
    _check_split(split)
    k_tt = _kernels.infinite_kernel(kernel_fn, split.x_train, batch_size=batch_size)
    others = np.concatenate([split.x_val, split.x_test])
    k_ot = _kernels.infinite_kernel(kernel_fn, others, split.x_train, batch_size=batch_size)
    n_val = len(split.x_val)
    return k_tt, k_ot[:n_val], k_ot[n_val:]


# ------------------------------------------------------------------- networks
def stack_splits(splits: Sequence[_data.HeldOutSplit]) -> _data.HeldOutSplit:
    """Stack splits of equal sizes along a new leading (ensemble) axis."""
    splits = [_check_split(s) for s in splits]
    if not splits:
        raise ValueError("need at least one split")
    shapes = {tuple(np.shape(a) for a in s) for s in splits}
    if len(shapes) != 1:
        raise ValueError(f"splits must all have the same sizes to be stacked, got {sorted(shapes)}")
    return _data.HeldOutSplit(*(np.stack(arrays) for arrays in zip(*splits)))


def unstack(tree: Any, i: int) -> Any:
    """Member ``i`` of a pytree stacked along its leading axis."""
    return jax.tree_util.tree_map(lambda a: a[i], tree)


@functools.partial(jax.jit, static_argnums=0)
def _centred_outputs(apply_fn, params, params0, x):
    # f(w, x) - f(w0, x) for every ensemble member (leading axis of params and x).
    def one(p, p0, xi):
        return (apply_fn(p, xi) - apply_fn(p0, xi))[..., 0]

    return jax.vmap(one)(params, params0, x)


def _ensemble_mse(apply_fn: Callable) -> _train.LossFn:
    # Sum over members of the mean-square loss, each member on its own data: member
    # r's gradient is exactly that of training it alone.
    single = _train.mse_loss(apply_fn)

    def loss(stacked: Params, batch: Any) -> jax.Array:
        return jnp.sum(jax.vmap(single)(stacked, batch))

    return loss


def fit_network(
    apply_fn: Callable,
    params0: Params,
    splits: _data.HeldOutSplit,
    protocol: Protocol,
    *,
    record_fn: Callable[[Params, int], Mapping[str, Any]] | None = None,
    record_steps: Sequence[int] | None = None,
) -> tuple[list[Run], Params, _train.History]:
    """Train an ensemble of centred networks by the protocol and stop each early.

    The model is ``f(w, x) - f(w_0, x)`` (zero at initialisation; same gradients
    and eNTK as ``f``). It is trained on the square loss towards +-1 labels by
    ``protocol.optimizer()``, full batch, through :func:`ntkbook.train.fit`.
    Member ``r`` has initial parameters ``params0[r]`` and data ``splits[r]`` (a
    :func:`stack_splits` result); members do not interact.

    Args:
        apply_fn: the network's ``apply_fn`` (one output).
        params0: initial parameters stacked along a leading axis of size ``R``.
        splits: stacked data with the same leading axis.
        protocol: optimiser and record schedule.
        record_fn: optional extra ``record_fn(stacked_params, step)`` (e.g. to
            extract kernels along training); its values land in the history.
        record_steps: override the protocol's record schedule.

    Returns:
        ``(runs, final_params, history)``: one :class:`Run` per member, the stacked
        parameters after ``protocol.steps`` steps, and the full history.
    """
    if not isinstance(splits, _data.HeldOutSplit):
        raise TypeError(f"splits must be a data.HeldOutSplit (use stack_splits), got {type(splits).__name__}")
    x_tr, y_tr, x_va, y_va, x_te, y_te = (jnp.asarray(a) for a in splits)
    if x_tr.ndim != 3:
        raise ValueError(f"splits must be stacked (R, n, d); got x_train of shape {x_tr.shape}")
    r = x_tr.shape[0]
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves or any(leaf.shape[0] != r for leaf in leaves):
        raise ValueError(f"params0 must be stacked along a leading axis of size {r} (one per split)")
    for name in ("y_train", "y_val", "y_test"):
        _check_labels(getattr(splits, name), name)
    rec = protocol.record_steps if record_steps is None else np.asarray(sorted(set(int(s) for s in record_steps)))
    # Centring by shifting the targets: minimising ||f(w) - f(w0) - y||^2 is
    # minimising ||f(w) - (y + f(w0))||^2, which needs f(w0) only once.
    f0_train = jax.vmap(apply_fn)(params0, x_tr)
    targets = y_tr[..., None] + f0_train

    def record(params: Params, step: int) -> dict[str, Any]:
        out = {
            name: classification_error(_centred_outputs(apply_fn, params, params0, x), y)
            for name, x, y in (("train", x_tr, y_tr), ("val", x_va, y_va), ("test", x_te, y_te))
        }
        if record_fn is not None:
            out.update(record_fn(params, step))
        return out

    params, hist = _train.fit(_ensemble_mse(apply_fn), params0, protocol.optimizer(), protocol.steps,
                              data=(x_tr, targets), record_steps=rec, record_fn=record, progress=False)
    runs = [_run(hist.steps, hist["train"][:, i], hist["val"][:, i], hist["test"][:, i], protocol.learning_rate)
            for i in range(r)]
    return runs, params, hist


# -------------------------------------------------------------- experiments
Sampler = Callable[[jax.Array, int], _data.HeldOutSplit]


@dataclass
class Comparison:
    """Runs of the three models on ``R`` stacked splits (one list entry per repeat)."""

    runs: dict[str, list[Run]] = field(default_factory=dict)
    final_params: Params = None

    def errors(self, name: str) -> np.ndarray:
        """Early-stopped test errors of model ``name``, one per repeat."""
        return np.array([run.stop.test_error for run in self.runs[name]])


def compare(
    net: Any,
    params0: Params,
    splits: Sequence[_data.HeldOutSplit],
    protocol: Protocol,
    *,
    which: Sequence[str] = MODELS,
    batch_size: int | None = 256,
) -> Comparison:
    """Train the network, its eNTK at initialisation and its infinite NTK on each split.

    Args:
        net: a :class:`ntkbook.models.Model` (``apply_fn`` and ``kernel_fn``).
        params0: initial parameters stacked along a leading axis, one per split.
        splits: the data, one :class:`~ntkbook.data.HeldOutSplit` per repeat.
        protocol: the shared optimiser.
        which: any of ``"network"``, ``"entk"``, ``"ntk"``.
        batch_size: block size of the kernel computations.

    Returns:
        A :class:`Comparison`.
    """
    which = _check_models(which)
    splits = list(splits)
    out = Comparison()
    if "network" in which:
        out.runs["network"], out.final_params, _ = fit_network(net.apply_fn, params0, stack_splits(splits), protocol)
    for i, split in enumerate(splits):
        if "entk" in which:
            blocks = entk_blocks(net.apply_fn, unstack(params0, i), split, batch_size=batch_size)
            out.runs.setdefault("entk", []).append(fit_kernel(*blocks, split, protocol))
        if "ntk" in which:
            blocks = ntk_blocks(net.kernel_fn, split, batch_size=batch_size)
            out.runs.setdefault("ntk", []).append(fit_kernel(*blocks, split, protocol))
    return out


@dataclass
class LearningCurves:
    """Early-stopped test errors ``errors[name][i, r]`` at ``ns[i]``, repeat ``r``.

    ``keys[r]`` is the data key of repeat ``r`` (``sample(keys[r], n)`` gives its
    split back), ``params0`` the stacked initial parameters (one per repeat) and
    ``comparisons[i].final_params`` the networks after training on ``ns[i]`` samples.
    """

    ns: np.ndarray
    errors: dict[str, np.ndarray]
    comparisons: list[Comparison]
    keys: list[jax.Array]
    params0: Params = None

    def fit(self, name: str, *, confidence: float = 0.95, n_min: int = 0) -> PowerLawFit:
        """Power-law fit of model ``name``'s errors against ``n`` (every repeat a point).

        The fitted ``exponent`` is the slope ``-beta`` of ``error ~ c n^{-beta}``.
        ``n_min`` restricts the fit to ``n >= n_min``.
        """
        from .metrics import fit_power_law

        keep = self.ns >= n_min
        err = self.errors[name][keep]
        x = np.repeat(self.ns[keep], err.shape[1])
        return fit_power_law(x, err.ravel(), confidence=confidence)


def learning_curves(
    sample: Sampler,
    ns: Sequence[int],
    repeats: int,
    net: Any,
    protocol: Protocol,
    key: jax.Array,
    *,
    input_shape: Sequence[int],
    which: Sequence[str] = MODELS,
    batch_size: int | None = 256,
    desc: str | None = None,
) -> LearningCurves:
    """Learning curves of the network, its eNTK and its infinite NTK (paper Sect. 3).

    For repeat ``r`` the data come from ``sample(fold_in(key, r), n)`` (so each
    repeat has its own validation and test sets, shared by all ``n``) and the
    network starts from one initialisation per repeat, shared by all ``n``: the
    curves of one repeat differ only in the training set.

    Args:
        sample: ``sample(key, n)`` returning a :class:`~ntkbook.data.HeldOutSplit`.
        ns: training-set sizes (increasing).
        repeats: independent repeats per size.
        net: the :class:`ntkbook.models.Model`.
        protocol: the shared optimiser.
        key: PRNG key.
        input_shape: the network's input shape, e.g. ``(-1, d)``.
        which: models to train.
        batch_size: block size of the kernel computations.
        desc: progress-bar label.

    Returns:
        :class:`LearningCurves` (the comparisons keep the final network parameters).
    """
    which = _check_models(which)
    ns_arr = np.asarray(_checks.positive_ints(ns, "ns entries", allow_empty=True), dtype=int)
    if ns_arr.size < 1 or np.any(np.diff(ns_arr) <= 0):
        raise ValueError(f"ns must be a non-empty increasing sequence, got {list(ns)}")
    repeats = _checks.positive_int(repeats, "repeats")
    _checks.key(key)
    if not callable(sample):
        raise TypeError(f"sample must be a function sample(key, n) -> HeldOutSplit, got {type(sample).__name__}")
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a scaling.Protocol, got {type(protocol).__name__}")
    if not hasattr(net, "init_fn") or not hasattr(net, "apply_fn"):
        raise TypeError(f"net must be a models.Model (init_fn, apply_fn, kernel_fn), got {type(net).__name__}")
    if batch_size is not None:
        _checks.positive_int(batch_size, "batch_size")
    data_keys = [jax.random.fold_in(key, r) for r in range(repeats)]
    # Draw the largest training set once before any training: a split that cannot be
    # drawn (e.g. more digits than the data set has) fails here, not after the smaller sizes.
    try:
        largest = _check_split(sample(data_keys[0], int(ns_arr[-1])))
    except ValueError as err:
        raise ValueError(f"ns: the largest size n={int(ns_arr[-1])} cannot be drawn by sample: {err}") from None
    _checks.network_inputs(net.apply_fn, net.init_fn(data_keys[0], tuple(input_shape))[1],
                           np.asarray(largest.x_train[:1]), "input_shape / the sampled inputs")
    init_key = jax.random.fold_in(key, 10**6)
    params0 = jax.vmap(lambda k: net.init_fn(k, tuple(input_shape))[1])(jax.random.split(init_key, repeats))
    comps, errors = [], {name: np.zeros((ns_arr.size, repeats)) for name in which}
    for i, n in enumerate(_progress.track(list(ns_arr), desc=desc or "learning curve")):
        splits = [sample(k, int(n)) for k in data_keys]
        comp = compare(net, params0, splits, protocol, which=which, batch_size=batch_size)
        comps.append(comp)
        for name in which:
            errors[name][i] = comp.errors(name)
    return LearningCurves(ns_arr, errors, comps, data_keys, params0)


class ExponentGap(NamedTuple):
    """``beta_a - beta_b`` and the two fits' 95 % half-widths combined in quadrature."""

    difference: float
    combined_halfwidth: float

    @property
    def significant(self) -> bool:
        """Whether the difference exceeds the combined uncertainty."""
        return self.difference > self.combined_halfwidth


def exponent_gap(fit_a: PowerLawFit, fit_b: PowerLawFit) -> ExponentGap:
    """How much faster model ``a``'s error falls with ``n`` than model ``b``'s.

    With ``error ~ c n^{-beta}`` and fitted slopes ``-beta``, the difference is
    ``beta_a - beta_b = fit_b.exponent - fit_a.exponent``; the combined uncertainty
    is ``sqrt(h_a^2 + h_b^2)`` with ``h`` each fit's confidence half-width (the
    half-width of the difference if the two fits are independent).
    """
    h_a = 0.5 * (fit_a.ci_high - fit_a.ci_low)
    h_b = 0.5 * (fit_b.ci_high - fit_b.ci_low)
    return ExponentGap(float(fit_b.exponent - fit_a.exponent), float(np.hypot(h_a, h_b)))


class PairedGap(NamedTuple):
    """``beta_a - beta_b`` from a paired fit, with its standard error and t-interval.

    ``halfwidth`` is the two-sided ``confidence`` half-width; ``dof`` the residual
    degrees of freedom of the fit (for other quantiles of the t-distribution).
    """

    difference: float
    se: float
    halfwidth: float
    dof: int

    @property
    def significant(self) -> bool:
        """Whether the interval lies above 0 (``a``'s error falls significantly faster)."""
        return self.difference > self.halfwidth

    def equivalent(self, margin: float, *, alpha: float = 0.05) -> bool:
        """Two one-sided tests at level ``alpha``: is ``|beta_a - beta_b| < margin``?

        True when the ``1 - 2 alpha`` interval ``difference +- t_{1-alpha} se`` lies
        inside ``(-margin, margin)`` (Schuirmann's TOST).
        """
        from scipy import stats

        margin = _checks.positive(margin, "margin")
        alpha = _checks.probability(alpha, "alpha", open_low=True, open_high=True)
        return abs(self.difference) + stats.t.ppf(1 - alpha, self.dof) * self.se < margin


def paired_exponent_gap(ns: Sequence[int], errors_a: Any, errors_b: Any, *, confidence: float = 0.95) -> PairedGap:
    """Difference of two data exponents measured on the same splits.

    [limits] Sect. 3 compares the exponents ``beta`` of ``error ~ c n^{-beta}`` of
    models trained on the same data. When ``errors_a[i, r]`` and ``errors_b[i, r]``
    come from the same split (``n = ns[i]``, repeat ``r``), the draw of the data
    moves both errors together, and the difference of the exponents is the slope
    of one least-squares line,

        log(errors_b / errors_a) = const + (beta_a - beta_b) log n,

    whose residuals no longer carry the shared noise (:func:`exponent_gap` treats
    the two fits as independent and so overstates the uncertainty of a paired
    design). The interval assumes independent, homoscedastic residuals on the log
    scale, as :func:`ntkbook.metrics.fit_power_law` does.

    Args:
        ns: training-set sizes, increasing, at least 2 distinct.
        errors_a, errors_b: positive arrays of shape ``(len(ns), repeats)``.
        confidence: of the two-sided t-interval, in ``(0, 1)``.

    Returns:
        A :class:`PairedGap` (``difference = beta_a - beta_b``, as :func:`exponent_gap`).

    Raises:
        ValueError: mismatched shapes, non-positive or non-finite errors, fewer than
            3 points or fewer than 2 distinct ``n``.
    """
    from scipy import stats

    ns = np.asarray(_checks.positive_ints(ns, "ns"), float)
    a = np.asarray(errors_a, float)
    b = np.asarray(errors_b, float)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] != ns.size:
        raise ValueError(f"errors_a and errors_b must both have shape ({ns.size}, repeats), got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("errors must be finite and positive for a log-log fit")
    if a.size < 3 or np.unique(ns).size < 2:
        raise ValueError("need at least 3 points and 2 distinct n")
    confidence = _checks.probability(confidence, "confidence", open_low=True, open_high=True)
    x = np.repeat(np.log(ns), a.shape[1])
    y = (np.log(b) - np.log(a)).ravel()
    res = stats.linregress(x, y)
    dof = x.size - 2
    se = float(res.stderr) if dof > 0 else float("inf")
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * se) if dof > 0 else float("inf")
    return PairedGap(float(res.slope), se, half, int(dof))


class SlopeChange(NamedTuple):
    """Log-log slopes of the early and the late half of a curve (see :func:`slope_change`)."""

    early: PowerLawFit
    late: PowerLawFit
    whole: PowerLawFit
    difference: float  # late.exponent - early.exponent
    se: float  # sqrt(se_early^2 + se_late^2)
    dof: int  # Welch-Satterthwaite degrees of freedom of the difference


def slope_change(t: Any, y: Any) -> SlopeChange:
    """Compare the log-log slope of ``y(t)`` on the early and the late half of its range.

    [limits] Sect. 5 asks whether the kernel improves fast early and slowly later
    (its Hypothesis 5.1) or at a constant rate on log-log axes. The points are
    split at the median of ``log t`` (the lower half, ties included, is
    "early"); each half gets its own least-squares line in ``log y`` against
    ``log t`` (:func:`ntkbook.metrics.fit_power_law`). A constant power law
    gives equal slopes; a fast early phase a steeper (more negative) early slope,
    that is ``difference = late - early > 0``.

    Args:
        t: positive times, at least 6 points with at least 3 distinct values in each half.
        y: positive values, same length.

    Returns:
        A :class:`SlopeChange`; ``se`` combines the two fits' standard errors as
        independent (disjoint points), ``dof`` by Welch-Satterthwaite.

    Raises:
        ValueError: non-positive or mismatched inputs, too few points per half.
    """
    from .metrics import fit_power_law

    t = np.asarray(t, float)
    y = np.asarray(y, float)
    if t.ndim != 1 or t.shape != y.shape:
        raise ValueError(f"t and y must be 1-D of equal length, got {t.shape} and {y.shape}")
    if t.size < 6:
        raise ValueError(f"need at least 6 points, got {t.size}")
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    early = np.log(t) <= np.median(np.log(t))
    if early.sum() < 3 or (~early).sum() < 3 or np.unique(t[early]).size < 2 or np.unique(t[~early]).size < 2:
        raise ValueError("each half needs at least 3 points and 2 distinct times")
    fe, fl, fw = fit_power_law(t[early], y[early]), fit_power_law(t[~early], y[~early]), fit_power_law(t, y)
    se_e, se_l = float(fe.stderr), float(fl.stderr)
    se = float(np.hypot(se_e, se_l))
    de, dl = int(early.sum()) - 2, int((~early).sum()) - 2
    dof = int(np.floor(se**4 / (se_e**4 / de + se_l**4 / dl))) if se > 0 else de + dl
    return SlopeChange(fe, fl, fw, float(fl.exponent - fe.exponent), se, max(dof, 1))


# ------------------------------------------------------ after-kernels and K^t
def subset(split: _data.HeldOutSplit, n: int) -> _data.HeldOutSplit:
    """The same split with only the first ``n`` training samples."""
    split = _check_split(split)
    n = _checks.positive_int(n, "n")
    if n > len(split.x_train):
        raise ValueError(f"n={n} exceeds the {len(split.x_train)} training samples of the split")
    return split._replace(x_train=split.x_train[:n], y_train=split.y_train[:n])


def after_kernel_run(
    apply_fn: Callable, params: Params, split: _data.HeldOutSplit, protocol: Protocol, *, batch_size: int | None = 256
) -> Run:
    """Fit the eNTK at ``params`` to ``split`` by the protocol, from zero, and stop early.

    With ``params`` the weights after training on ``m`` samples this is the
    *after-kernel* ``K_m`` of Long (2021) as used in Sect. 4 of
    {cite}`ntklimitations2022`: the linear model ``J(w_T, x) (w - w_T)`` (no
    ``f(w_T, x)`` term, so it does not inherit the trained network's outputs).
    """
    return fit_kernel(*entk_blocks(apply_fn, params, split, batch_size=batch_size), split, protocol)


@dataclass
class KernelTrajectory:
    """The network and its eNTK ``K^t`` along one training run (paper Sect. 5).

    ``network`` holds the network's train/validation/test errors at ``steps``;
    ``kernel_runs[i]`` is ``K^t`` with ``t = steps[i]`` fitted to the whole
    training set by the protocol (``.stop.test_error`` is its early-stopped error);
    ``params[i]`` are the network's parameters at that step.
    """

    steps: np.ndarray
    network: Run
    kernel_runs: list[Run]
    params: list[Params]

    @property
    def kernel_error(self) -> np.ndarray:
        return np.array([run.stop.test_error for run in self.kernel_runs])


def kernels_along_training(
    apply_fn: Callable,
    params0: Params,
    split: _data.HeldOutSplit,
    protocol: Protocol,
    steps: Sequence[int],
    *,
    batch_size: int | None = 256,
) -> KernelTrajectory:
    """Train one centred network and fit its eNTK ``K^t`` at the given steps.

    Args:
        apply_fn: the network's ``apply_fn``.
        params0: initial parameters (one network, not stacked).
        split: the data; ``K^t`` is fitted to all of ``split.x_train``.
        protocol: the optimiser (for the network and for every kernel fit).
        steps: steps ``t`` in ``[0, protocol.steps]`` at which to extract ``K^t``.
        batch_size: block size of the eNTK computation.

    Returns:
        A :class:`KernelTrajectory`.
    """
    split = _check_split(split)
    at = np.asarray(sorted(set(int(s) for s in steps)))
    if at.size < 1 or at[0] < 0 or at[-1] > protocol.steps:
        raise ValueError(f"steps must lie in [0, {protocol.steps}], got {list(steps)}")
    stacked0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], params0)
    kernel_runs: list[Run] = []
    saved: list[Params] = []

    def record(params: Params, step: int) -> dict[str, Any]:
        p = unstack(params, 0)
        saved.append(jax.tree_util.tree_map(np.asarray, p))
        kernel_runs.append(after_kernel_run(apply_fn, p, split, protocol, batch_size=batch_size))
        return {}

    runs, _, _ = fit_network(apply_fn, stacked0, stack_splits([split]), protocol, record_fn=record, record_steps=at)
    return KernelTrajectory(at, runs[0], kernel_runs, saved)


def direction_alignment(first_layer_weights: Any, direction: Any) -> float:
    """How much the first layer has turned towards a direction ``w``.

    ``A = d ||W w||^2 / ||W||_F^2`` for first-layer weights ``W`` of shape
    ``(d, m)`` (stax layout: inputs x units) and a unit vector ``w``: about 1 for
    random weights (every direction gets ``1/d`` of the norm), ``d`` when every
    unit looks along ``w`` only. A kernel's features never move, so for the
    linearised model ``A`` stays at its initial value.
    """
    w1 = np.asarray(first_layer_weights, dtype=float)
    u = np.asarray(direction, dtype=float)
    if w1.ndim != 2 or u.shape != (w1.shape[0],):
        raise ValueError(f"need first_layer_weights (d, m) and direction (d,), got {w1.shape} and {u.shape}")
    if abs(np.linalg.norm(u) - 1.0) > 1e-4:
        raise ValueError("direction must be a unit vector")
    return float(w1.shape[0] * np.sum((u @ w1) ** 2) / np.sum(w1**2))
