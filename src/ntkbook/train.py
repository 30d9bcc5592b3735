"""Training loops: optax optimisers, recorded metrics, progress bars.

:func:`fit` runs any optax optimiser on any loss. Between two recording steps
it stays inside one compiled ``lax.fori_loop`` (the trip count is a traced
value, so there is one compilation per ``fit`` call however the record steps
are spaced); at each recording step it calls a user ``record_fn`` outside the
compiled loop. Ensembles need nothing special: stack parameters along a leading
axis and sum the per-member losses (``ensemble_loss``); each member then gets its
own gradient, exactly as if trained alone (for element-wise optimisers such as
SGD, momentum and Adam).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _checks
from . import progress as _progress

Params = Any
Batch = Any
LossFn = Callable[[Params, Batch], jax.Array]


@dataclass
class History:
    """Recorded values: ``steps[i]`` is the step at which ``metrics[name][i]`` was taken
    (step 0 is before the first update)."""

    steps: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    #: The step whose loss (or whose update of the parameters) was first not finite,
    #: when :func:`fit` ran with ``on_nonfinite="stop"``; ``None`` if training stayed finite.
    diverged_at: int | None = None
    #: The last finite training loss seen before ``diverged_at``.
    last_finite_loss: float | None = None
    #: The record step at which ``stop_when`` ended training early; ``None`` if it ran all its steps.
    stopped_at: int | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(f"no recorded metric {name!r}; recorded: {sorted(self.metrics)}") from None


def mse_loss(apply_fn: Callable) -> LossFn:
    """``L(w) = 1/(2 n) sum_{i,a} (f_a(x_i) - y_ia)^2`` with ``n`` = number of entries of ``y``.

    This normalisation matches :func:`ntkbook.kernels.gradient_flow_mse` and
    ``neural_tangents.predict.gradient_descent_mse``. The batch is ``(x, y)``.
    """

    def loss(params: Params, batch: Batch) -> jax.Array:
        x, y = batch
        return 0.5 * jnp.mean((apply_fn(params, x) - y) ** 2)

    return loss


def cross_entropy_loss(apply_fn: Callable) -> LossFn:
    """Mean softmax cross-entropy; the batch is ``(x, integer_labels)``."""

    def loss(params: Params, batch: Batch) -> jax.Array:
        x, labels = batch
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, x), labels))

    return loss


def ensemble_loss(loss_fn: LossFn) -> LossFn:
    """Sum of ``loss_fn`` over parameters stacked on a leading axis (one batch for all)."""

    def loss(stacked: Params, batch: Batch) -> jax.Array:
        return jnp.sum(jax.vmap(loss_fn, in_axes=(0, None))(stacked, batch))

    return loss


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of rows whose arg-max equals the integer label."""
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def record_schedule(steps: int, n_records: int, *, spacing: str = "linear") -> np.ndarray:
    """``n_records`` distinct integer steps in ``[0, steps]``, including both ends.

    ``spacing="log"`` puts them evenly on a log axis (plus step 0), which suits
    quantities that change fast early and slowly later.
    """
    steps = _checks.positive_int(steps, "steps")
    n_records = _checks.positive_int(n_records, "n_records", minimum=2)
    _checks.choice(spacing, "spacing", ("linear", "log"))
    if spacing == "linear":
        pts = np.linspace(0, steps, n_records)
    elif spacing == "log":
        pts = np.concatenate([[0], np.geomspace(1, steps, n_records - 1)])
    else:
        raise ValueError(f"spacing must be 'linear' or 'log', got {spacing!r}")
    return np.unique(np.round(pts).astype(int))


ON_NONFINITE = ("raise", "stop", "ignore")


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or parameter (:func:`fit` with ``on_nonfinite="raise"``)."""

    def __init__(self, step: int, last_finite_loss: float | None, learning_rate: Any = None):
        self.step, self.last_finite_loss, self.learning_rate = step, last_finite_loss, learning_rate
        lr = "" if learning_rate is None else f" at learning rate {learning_rate:g}"
        last = "no finite loss before it" if last_finite_loss is None else f"last finite loss {last_finite_loss:.4g}"
        super().__init__(
            f"training diverged at step {step}{lr}: the loss or the updated parameters are NaN or inf ({last}). "
            "Lower the learning rate, or pass on_nonfinite='stop' to keep the history up to that step."
        )


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _make_runner(loss_fn: LossFn, optimizer: optax.GradientTransformation, sample_batch: Callable | None,
                 check: bool = True):
    grad_fn = jax.value_and_grad(loss_fn)

    # Parameters and optimiser state are donated: between two recordings XLA
    # updates them in place instead of allocating a copy per call (measured 4x
    # less overhead per call on CPU). fit() copies the caller's parameters once.
    # With ``check`` the loop ends at the first step whose loss or updated
    # parameters are not finite, keeping the last finite parameters; it returns
    # the number of steps done, whether it stopped early, and the last finite loss.
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def run(params, opt_state, data, key, start, n):
        def body(carry):
            i, p, s, loss_prev, _ = carry
            batch = data if sample_batch is None else sample_batch(jax.random.fold_in(key, start + i), data)
            loss, g = grad_fn(p, batch)
            updates, s_new = optimizer.update(g, s, p)
            p_new = optax.apply_updates(p, updates)
            if not check:
                return i + 1, p_new, s_new, loss, jnp.asarray(False)
            bad = ~(jnp.isfinite(loss) & _all_finite(p_new))
            keep = lambda old, new: jax.tree_util.tree_map(lambda a, b: jnp.where(bad, a, b), old, new)
            return (jnp.where(bad, i, i + 1), keep(p, p_new), keep(s, s_new),
                    jnp.where(bad, loss_prev, loss), bad)

        def cond(carry):
            i, _, _, _, bad = carry
            return (i < n) & ~bad

        batch0 = data if sample_batch is None else sample_batch(key, data)
        nan = jnp.full((), jnp.nan, jax.eval_shape(loss_fn, params, batch0).dtype)
        i, p, s, loss, bad = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), params, opt_state, nan,
                                                             jnp.asarray(False)))
        return p, s, loss, i, bad

    return run


def fit(
    loss_fn: LossFn,
    params: Params,
    optimizer: optax.GradientTransformation,
    steps: int,
    *,
    data: Batch = None,
    sample_batch: Callable[[jax.Array, Batch], Batch] | None = None,
    key: jax.Array | None = None,
    record_steps: Iterable[int] | None = None,
    record_fn: Callable[[Params, int], Mapping[str, Any]] | None = None,
    progress: bool = True,
    desc: str | None = None,
    on_nonfinite: str = "raise",
    learning_rate: Any = None,
    stop_when: Callable[[int, Mapping[str, np.ndarray]], bool] | None = None,
) -> tuple[Params, History]:
    """Minimise ``loss_fn`` with ``optimizer`` for ``steps`` updates.

    Args:
        loss_fn: ``loss_fn(params, batch) -> scalar`` (e.g. :func:`mse_loss`).
        params: initial parameters (not modified).
        optimizer: any ``optax`` transformation (``optax.sgd(lr)`` is plain GD).
        steps: number of updates (>= 1).
        data: the full batch, or the data ``sample_batch`` draws from.
        sample_batch: optional ``sample_batch(key, data) -> batch`` (jittable) for
            stochastic training; step ``s`` uses ``fold_in(key, s)``.
        key: PRNG key, required with ``sample_batch``.
        record_steps: steps in ``[0, steps]`` at which to call ``record_fn``
            (default: 0 and ``steps``).
        record_fn: ``record_fn(params, step) -> {name: value}``; values are stacked
            into ``History.metrics[name]``.
        progress: show a progress bar (see :mod:`ntkbook.progress`).
        desc: label of the progress bar.
        on_nonfinite: what to do at the first step whose loss or updated
            parameters are NaN or inf: ``"raise"`` (default) a
            :class:`DivergenceError` naming the step and the last finite loss;
            ``"stop"`` training there and return the last finite parameters with
            ``history.diverged_at`` set (a record is taken at that step);
            ``"ignore"`` it and go on (the behaviour of a plain loop).
        learning_rate: only quoted in the divergence message (optax hides it).
        stop_when: optional ``stop_when(step, records) -> bool``, called after every
            record at a step in ``(0, steps)`` with the values recorded so far (``{name: stacked array}``, the
            last row taken at ``step``); ``True`` ends training there, so ``steps``
            becomes a cap (run until an event, e.g. a test-accuracy jump, has been
            seen for long enough). The parameters returned are those at that step,
            bit for bit those of a run with ``steps=step``, and
            ``history.stopped_at`` is set. The decision may only depend on the
            records, never on the clock, so a run stops at the same step every time.

    Returns:
        ``(final_params, history)``.

    Raises:
        ValueError: non-positive ``steps``, record steps out of range, a missing
            key, an unknown ``on_nonfinite`` or ``stop_when`` without ``record_fn``.
        DivergenceError: the loss or the parameters stopped being finite (with
            ``on_nonfinite="raise"``).
    """
    _checks.choice(on_nonfinite, "on_nonfinite", ON_NONFINITE)
    steps = _checks.positive_int(steps, "steps")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(params, batch), got {type(loss_fn).__name__}")
    if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
        raise TypeError(f"optimizer must be an optax GradientTransformation (e.g. optax.sgd(0.1)), "
                        f"got {type(optimizer).__name__}")
    if sample_batch is not None and key is None:
        raise ValueError("sample_batch needs a PRNG key: pass key=jax.random.PRNGKey(...)")
    if key is not None:
        _checks.key(key)
    _checks.boolean(progress, "progress")
    if stop_when is not None:
        if not callable(stop_when):
            raise TypeError(f"stop_when must be a function stop_when(step, records) -> bool, "
                            f"got {type(stop_when).__name__}")
        if record_fn is None:
            raise ValueError("stop_when decides on the recorded values: it needs a record_fn")
    if isinstance(data, tuple) and len(data) == 2 and all(hasattr(a, "shape") and np.ndim(a) >= 1 for a in data):
        for a, name in zip(data, ("data[0] (the inputs)", "data[1] (the targets)")):
            if jnp.issubdtype(jnp.result_type(a), jnp.floating):
                _checks.finite_array(a, name)
    if data is not None and sample_batch is None:
        # The loss decides what a batch is (an ensemble's per-network targets, say), so its
        # shapes are checked by tracing it abstractly: no compile, no FLOPs, before any step.
        try:
            out = jax.eval_shape(loss_fn, params, data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"loss_fn(params, data) cannot be evaluated on this data (do the inputs and "
                             f"targets agree, one row per example?): {err}") from None
        if not hasattr(out, "shape") or out.shape != ():
            raise ValueError(f"loss_fn(params, data) must return a scalar, got {out}")
    rec = np.array(sorted(set(int(s) for s in (record_steps if record_steps is not None else (0, steps)))))
    if rec.size and (rec[0] < 0 or rec[-1] > steps):
        raise ValueError(f"record_steps must lie in [0, {steps}], got {rec[0]}..{rec[-1]}")
    if key is None:
        key = jax.random.PRNGKey(0)  # unused without sample_batch

    run = _make_runner(loss_fn, optimizer, sample_batch, check=on_nonfinite != "ignore")
    params = jax.tree_util.tree_map(jnp.copy, params)  # the runner donates its inputs
    opt_state = optimizer.init(params)
    records: dict[str, list] = {}
    done = 0
    diverged_at, last_finite, stopped_at = None, None, None

    def record(step: int) -> None:
        if record_fn is None:
            return
        for name, value in record_fn(params, step).items():
            records.setdefault(name, []).append(np.asarray(value))

    bar = _progress.bar(steps, desc, enabled=progress)
    try:
        targets = [s for s in rec if s > 0]
        if not targets or targets[-1] != steps:
            targets.append(steps)
        if rec.size and rec[0] == 0:
            record(0)
        rec_set = set(rec.tolist())
        for target in targets:
            n = target - done
            params, opt_state, loss, did, bad = run(params, opt_state, data, key, jnp.asarray(done), jnp.asarray(n))
            if np.isfinite(float(loss)):
                last_finite = float(loss)
            bar.update(int(did))
            if bool(bad):
                diverged_at = done + int(did)
                if on_nonfinite == "raise":
                    raise DivergenceError(diverged_at, last_finite, learning_rate)
                if record_fn is not None and diverged_at not in rec_set:
                    record(diverged_at)
                    rec = np.array([s for s in rec if s < diverged_at] + [diverged_at])
                else:
                    rec = rec[rec <= diverged_at]
                break
            done = target
            bar.set_postfix(loss=f"{float(jnp.mean(loss)):.3g}")
            if target in rec_set:
                record(target)
                if stop_when is not None and target < steps and bool(
                        stop_when(target, {name: np.stack(vals) for name, vals in records.items()})):
                    stopped_at = target
                    rec = rec[rec <= target]
                    _progress.finish_early(bar)
                    break
    finally:
        bar.close()
    metrics = {name: np.stack(vals) for name, vals in records.items()}
    return params, History(steps=rec if record_fn is not None else np.array([], int), metrics=metrics,
                           diverged_at=diverged_at, last_finite_loss=last_finite, stopped_at=stopped_at)


def tree_stack(trees: Sequence[Params]) -> Params:
    """Stack a list of pytrees along a new leading axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


# --- classification with recorded accuracy, loss and kernel traces (chapters 06-07) ---
def logistic_loss(apply_fn: Callable) -> LossFn:
    """Mean logistic loss ``mean_i log(1 + exp(-y_i f(x_i)))``; the batch is ``(x, y)`` with
    ``y`` in ``{-1, +1}`` and ``f`` of shape ``(N,)`` or ``(N, 1)`` (Lyu & Li 2020; [trace] Sect. 4)."""

    def loss(params: Params, batch: Batch) -> jax.Array:
        x, y = batch
        f = apply_fn(params, x).reshape(y.shape)
        return jnp.mean(jax.nn.softplus(-y * f))

    return loss


def _log_softplus(z: jax.Array) -> jax.Array:
    """``log(log(1 + e^z))`` without underflow: ``z + log1p(-e^z / 2 + ...)`` ~ ``z`` for ``z << 0``."""
    small = z < -20.0
    z_safe = jnp.where(small, -20.0, z)  # keeps the unused branch (and its gradient) finite
    return jnp.where(small, z - 0.5 * jnp.exp(z), jnp.log(jax.nn.softplus(z_safe)))


def log_logistic_loss(apply_fn: Callable) -> LossFn:
    """``log`` of :func:`logistic_loss`, computed without underflow.

    Gradient descent on ``log L`` is gradient descent on ``L`` with the step size
    divided by the current loss, ``grad L / L``: the loss-based learning-rate
    scheme of Lyu & Li (2020, Sect. 6) that lets the direction of a homogeneous
    network converge in thousands rather than millions of steps. Under gradient
    flow the trajectory is the same as for ``L``, only run faster.
    """

    def loss(params: Params, batch: Batch) -> jax.Array:
        x, y = batch
        f = apply_fn(params, x).reshape(y.shape)
        return jax.nn.logsumexp(_log_softplus(-y * f)) - jnp.log(y.shape[0])

    return loss


def binary_accuracy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of ``sign(f) == y`` for scalar outputs and labels in ``{-1, +1}``."""
    return jnp.mean(jnp.sign(outputs.reshape(labels.shape)) == labels)


LOSSES = ("cross_entropy", "logistic")
SCHEDULES = ("cosine", "constant")


def classifier_optimizer(
    learning_rate: float, steps: int, *, momentum: float = 0.9, weight_decay: float = 0.0,
    schedule: str = "cosine",
) -> optax.GradientTransformation:
    """SGD with (heavy-ball) momentum, L2 weight decay added to the gradient and a cosine or
    constant learning-rate schedule: the optimiser of [trace] Appendix B.

    The update is ``v <- g + wd w + mu v``, ``w <- w - lr_t v`` with
    ``lr_t = lr (1 + cos(pi t / T)) / 2`` for ``schedule="cosine"``.
    """
    _checks.positive(learning_rate, "learning_rate")
    _checks.probability(momentum, "momentum", open_high=True)
    _checks.nonneg(weight_decay, "weight_decay")
    _checks.choice(schedule, "schedule", SCHEDULES)
    _checks.positive_int(steps, "steps")
    lr = optax.cosine_decay_schedule(learning_rate, steps) if schedule == "cosine" else learning_rate
    parts = [optax.add_decayed_weights(weight_decay)] if weight_decay > 0 else []
    parts.append(optax.sgd(lr, momentum=momentum or None))
    return optax.chain(*parts)


def fit_classifier(
    apply_fn: Callable,
    params: Params,
    split: Sequence[Any],
    steps: int,
    *,
    learning_rate: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    batch_size: int | None = 128,
    loss: str = "cross_entropy",
    key: jax.Array | None = None,
    record_steps: Iterable[int] | None = None,
    recorders: Mapping[str, Callable[[Params], Any]] | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> tuple[Params, History]:
    """Train a classifier with SGD + momentum and a cosine schedule, recording as it goes.

    A thin layer over :func:`fit`: it builds the loss, the optimiser
    (:func:`classifier_optimizer`) and the minibatch sampler, and at every record
    step stores ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` (on the
    full sets) and the value of every recorder, e.g.
    ``{"trace": ntkbook.trace.trace_recorder(apply_fn, x_probe)}``.

    Cost of recording: between record steps training runs inside one compiled
    loop, so the slowdown factor is ``1 + R c / T``: ``R`` records of cost ``c``
    each (the four accuracy/loss values plus the recorders) over a training time
    ``T``. Chapter 6 measures it: with 41 records of the exact trace on 240
    inputs, the first record of each kind also pays its compilation.

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)`` logits (``(N, 1)`` or ``(N,)``
            for ``loss="logistic"``).
        params: initial parameters.
        split: ``(x_train, y_train, x_test, y_test)`` (e.g. a :class:`ntkbook.data.Split`);
            integer labels for ``"cross_entropy"``, labels in ``{-1, +1}`` for ``"logistic"``.
        steps: number of updates.
        learning_rate, momentum, weight_decay, schedule: see :func:`classifier_optimizer`.
        batch_size: minibatch size (sampled without replacement at every step from
            ``fold_in(key, step)``); ``None`` for full-batch training.
        loss: ``"cross_entropy"`` (softmax) or ``"logistic"`` (binary).
        key: PRNG key for the minibatches (required unless ``batch_size`` is ``None``).
        record_steps: steps at which to record (default ``0`` and ``steps``).
        recorders: ``{name: fn(params) -> value}``, evaluated at every record step.
        progress, desc: progress bar.

    Returns:
        ``(final_params, history)``.

    Raises:
        ValueError: unknown loss or schedule, bad labels, a bad batch size, a missing key.
    """
    _checks.choice(loss, "loss", LOSSES)
    if isinstance(split, (str, bytes)) or not isinstance(split, Sequence) or len(split) != 4:
        raise ValueError("split must be (x_train, y_train, x_test, y_test)")
    optimizer = classifier_optimizer(learning_rate, steps, momentum=momentum, weight_decay=weight_decay,
                                     schedule=schedule)
    x_tr, y_tr, x_te, y_te = _check_split(apply_fn, params, split)
    if loss == "logistic":
        if not (bool(jnp.all(jnp.abs(y_tr) == 1)) and bool(jnp.all(jnp.abs(y_te) == 1))):
            raise ValueError("loss='logistic' needs labels in {-1, +1}")
        y_tr, y_te = y_tr.astype(x_tr.dtype), y_te.astype(x_te.dtype)
        loss_fn, acc_fn = logistic_loss(apply_fn), binary_accuracy
    else:
        if not (jnp.issubdtype(y_tr.dtype, jnp.integer) and jnp.issubdtype(y_te.dtype, jnp.integer)):
            raise ValueError(f"loss='cross_entropy' needs integer labels, got {y_tr.dtype} and {y_te.dtype}")
        k = int(jax.eval_shape(apply_fn, params, x_tr[:1]).shape[-1])
        lo, hi = int(jnp.minimum(y_tr.min(), y_te.min())), int(jnp.maximum(y_tr.max(), y_te.max()))
        if lo < 0 or hi >= k:
            raise ValueError(f"labels must lie in [0, {k}) for a network with {k} outputs; got labels {lo}..{hi}")
        loss_fn, acc_fn = cross_entropy_loss(apply_fn), accuracy
    n = x_tr.shape[0]
    sample_batch = None
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be an integer in [1, {n}] or None, got {batch_size!r}")
        if key is None:
            raise ValueError("minibatch training needs a PRNG key: pass key=jax.random.PRNGKey(...)")
        _checks.key(key)

        def sample_batch(k, data):
            idx = jax.random.choice(k, n, (batch_size,), replace=False)
            return data[0][idx], data[1][idx]


    record_fn = _split_recorder(apply_fn, loss_fn, acc_fn, (x_tr, y_tr, x_te, y_te), recorders)
    return fit(loss_fn, params, optimizer, steps, data=(x_tr, y_tr), sample_batch=sample_batch, key=key,
               record_steps=record_steps, record_fn=record_fn, progress=progress, desc=desc,
               learning_rate=learning_rate)


def _check_split(apply_fn: Callable, params: Params, split: Sequence[Any]) -> tuple[jax.Array, ...]:
    """``(x_train, y_train, x_test, y_test)`` as JAX arrays: 1-D labels matching the inputs,
    finite float inputs (or integer tokens) that the network's parameters accept."""
    x_tr, y_tr, x_te, y_te = (jnp.asarray(a) for a in split)
    if x_tr.shape[0] != y_tr.shape[0] or x_te.shape[0] != y_te.shape[0] or y_tr.ndim != 1 or y_te.ndim != 1:
        raise ValueError(f"labels must be 1-D and match the inputs, got {x_tr.shape}/{y_tr.shape}, "
                         f"{x_te.shape}/{y_te.shape}")
    _checks.network_inputs(apply_fn, params, x_tr, "x_train (split[0])", allow_int=True)
    _checks.network_inputs(apply_fn, params, x_te, "x_test (split[2])", allow_int=True)
    for y, name in ((y_tr, "y_train (split[1])"), (y_te, "y_test (split[3])")):
        if jnp.issubdtype(y.dtype, jnp.floating):
            _checks.finite_array(y, name)
    return x_tr, y_tr, x_te, y_te


def _split_recorder(apply_fn: Callable, loss_fn: LossFn, acc_fn: Callable, split: Sequence[jax.Array],
                    recorders: Mapping[str, Callable[[Params], Any]] | None) -> Callable[[Params, int], dict]:
    """A ``record_fn`` for :func:`fit`: loss and accuracy on the whole train and test sets, then the recorders."""
    x_tr, y_tr, x_te, y_te = split

    @jax.jit
    def evaluate(p):
        return (loss_fn(p, (x_tr, y_tr)), acc_fn(apply_fn(p, x_tr), y_tr),
                loss_fn(p, (x_te, y_te)), acc_fn(apply_fn(p, x_te), y_te))

    def record_fn(p, step):
        values = dict(zip(("train_loss", "train_acc", "test_loss", "test_acc"), evaluate(p)))
        for name, fn in (recorders or {}).items():
            values[name] = fn(p)
        return values

    return record_fn


# --- full-batch training with any optax optimiser, recording accuracies (chapters 08-09) ---
RECORDED_LOSSES = ("cross_entropy", "mse")


def fit_recorded(
    apply_fn: Callable,
    params: Params,
    split: Sequence[Any],
    steps: int,
    optimizer: optax.GradientTransformation,
    *,
    loss: str = "cross_entropy",
    record_steps: Iterable[int] | None = None,
    recorders: Mapping[str, Callable[[Params], Any]] | None = None,
    progress: bool = True,
    desc: str | None = None,
    stop_when: Callable[[int, Mapping[str, np.ndarray]], bool] | None = None,
) -> tuple[Params, History]:
    """Full-batch training of a classifier with ``optimizer``, recording as it goes.

    The grokking recipes of [trace] Sect. 5.2 train on the whole (small) training
    set with AdamW and weight decay, e.g. ``optax.adamw(1e-3, weight_decay=1.0)``,
    and with either the cross-entropy loss (modular addition) or the MSE loss
    on one-hot targets (the MNIST recipe of Liu et al. 2022, "Omnigrok"). At
    every record step this stores ``train_loss``, ``train_acc``, ``test_loss``,
    ``test_acc`` (full sets) and the value of every recorder.

    Args:
        apply_fn: ``f(params, x)`` returning ``(N, k)`` logits / outputs.
        params: initial parameters (not modified).
        split: ``(x_train, y_train, x_test, y_test)`` with integer labels in ``[0, k)``.
        steps: number of updates.
        optimizer: any ``optax`` transformation.
        loss: ``"cross_entropy"`` (softmax) or ``"mse"`` (:func:`mse_loss` against
            one-hot targets; accuracy by the largest output).
        record_steps: steps at which to record (default ``0`` and ``steps``).
        recorders: ``{name: fn(params) -> value}``, evaluated at every record step.
        progress, desc: progress bar.
        stop_when: ``stop_when(step, records) -> bool`` ends training early at a record
            (see :func:`fit`; ``records`` holds the accuracies and every recorder so far).

    Returns:
        ``(final_params, history)``.

    Raises:
        ValueError: unknown loss, non-integer labels or labels out of range,
            mismatched shapes.
    """
    _checks.choice(loss, "loss", RECORDED_LOSSES)
    if isinstance(split, (str, bytes)) or not isinstance(split, Sequence) or len(split) != 4:
        raise ValueError("split must be (x_train, y_train, x_test, y_test)")
    _checks.positive_int(steps, "steps")
    x_tr, y_tr, x_te, y_te = _check_split(apply_fn, params, split)
    if not (jnp.issubdtype(y_tr.dtype, jnp.integer) and jnp.issubdtype(y_te.dtype, jnp.integer)):
        raise ValueError(f"labels must be integers, got {y_tr.dtype} and {y_te.dtype}")
    k = int(jax.eval_shape(apply_fn, params, x_tr[:1]).shape[-1])
    if int(jnp.min(jnp.concatenate([y_tr, y_te]))) < 0 or int(jnp.max(jnp.concatenate([y_tr, y_te]))) >= k:
        raise ValueError(f"labels must lie in [0, {k}) for a network with {k} outputs")
    if loss == "mse":
        mse = mse_loss(apply_fn)

        def loss_fn(p, batch):
            x, labels = batch
            return mse(p, (x, jax.nn.one_hot(labels, k, dtype=x.dtype)))
    else:
        loss_fn = cross_entropy_loss(apply_fn)

    record_fn = _split_recorder(apply_fn, loss_fn, accuracy, (x_tr, y_tr, x_te, y_te), recorders)
    return fit(loss_fn, params, optimizer, steps, data=(x_tr, y_tr), record_steps=record_steps,
               record_fn=record_fn, progress=progress, desc=desc, stop_when=stop_when)
