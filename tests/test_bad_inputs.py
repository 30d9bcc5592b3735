"""A table of bad calls across every public module: each is refused with the right
exception type, a message that names the argument, and before any expensive work.

Each case lists the expensive functions behind its public function ("spies"); the
test replaces them with a function that fails if reached, so a refusal is shown to
come before any compile, solve or training step.

Run as a script to re-run the library audit's classification on this table::

    PYTHONPATH=src python tests/test_bad_inputs.py

which times every case (spies in place) and prints one line per case and the counts
CLEAR / VAGUE (wrong type, or the message does not name the argument) / SILENT (no
error) / SLOW (refused, but after more than 1 s) / HANG (no answer within 30 s) /
REACHED (an expensive function ran before the refusal).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ntkbook import (augment, collapse, data, datasets, dispersion, dynamics, kernels, lazy, meanfield, metrics,
                     models, ntk_change, presets, scaling, semisup, svm, timing, trace, train, transformer)

NAN, INF = float("nan"), float("inf")
KEY = jax.random.PRNGKey(0)


class Reached(AssertionError):
    """An expensive function ran before the bad input was refused."""


class Case(NamedTuple):
    id: str
    call: Callable[[Any], Any]  # takes the shared context
    exc: type
    name: str  # a regular expression that the message must contain (the argument's name)
    spies: tuple[str, ...] = ()  # "module.attr" replaced by a function that raises Reached


@functools.lru_cache(maxsize=1)
def ctx() -> dict:
    """Small shared objects: a 4-input tanh MLP with 2 outputs, its parameters, inputs, a kernel."""
    net = models.mlp([8], 2, activation="tanh")
    params = models.init_params(net, KEY, (-1, 4))
    x = jax.random.normal(KEY, (6, 4))
    y = jnp.arange(6) % 2
    k = np.asarray(kernels.empirical_ntk(net.apply_fn, params, x, trace_axes=(-1,)), np.float64)
    split = data.Split(np.asarray(x), np.asarray(y, np.int32), np.asarray(x), np.asarray(y, np.int32))
    sup = semisup.semisup_split(2, 2, KEY)
    reduced = collapse.balanced_state(KEY, (1.0, 0.4, 0.1), num_classes=3, per_class=4, feature_dim=6)
    unit = data.random_direction(4, KEY)
    held = data.single_index_split(20, 10, 10, KEY, unit, link="sign")
    net64 = models.mlp([8], 10)
    tf = transformer.transformer(6, 3, 5, d_model=8, heads=2, d_mlp=8)
    _sampler(KEY, 20)  # the first draw compiles jax.random.permutation for the digits' pools
    return dict(net=net, params=params, x=x, y=y, k=k, split=split, sup=sup, reduced=reduced, unit=unit,
                held=held, x_nan=x.at[0, 0].set(NAN), img=jnp.zeros((8, 8)), net64=net64,
                params64=models.init_params(net64, KEY, (-1, 64)), tf=tf, tf_params=tf.init_fn(KEY))


def _sampler(key, n):
    return data.digits_parity_split(n, 100, 100, key)


KAPPAS = (1.0, 0.4, 0.1)
_POWER = (np.array([1.0, 2.0, 4.0, 8.0]), np.array([1.0, 0.7, 0.5, 0.36]))  # valid x, y of a power-law fit
_DECAY = (np.ones((4, 3)), np.eye(3))  # valid residuals (T + 1, N) and a symmetric (N, N) kernel
_CURVE = (np.arange(5), np.array([0.0, 0.5, 0.9, 1.0, 1.0]))  # valid steps and values of a recorded curve
ENTK = ("kernels._nt_kernel_fn", "kernels._ntk_reference_full")
FIT = ("train._make_runner",)
FETCH = ("datasets._fetch_file", "datasets._raw")  # the cache lookup / download, and the parse
PROTOCOL = dict(learning_rate=1.0)

CASES: list[Case] = [
    # ------------------------------------------------------------------ data
    Case("data.regression_1d noise=nan", lambda c: data.regression_1d(8, KEY, noise=NAN), ValueError, "noise"),
    Case("data.regression_1d x_range=(0, inf)", lambda c: data.regression_1d(8, KEY, x_range=(0.0, INF)), ValueError,
         r"x_range"),
    Case("data.regression_1d int key", lambda c: data.regression_1d(8, 0), TypeError, "key"),
    Case("data.regression_1d n=0", lambda c: data.regression_1d(0, KEY), ValueError, r"\bn\b"),
    Case("data.regression_1d spacing", lambda c: data.regression_1d(8, KEY, spacing="log"), ValueError, "spacing"),
    Case("data.regression_1d target", lambda c: data.regression_1d(8, KEY, target="cos"), ValueError, "target"),
    Case("data.regression_1d float key", lambda c: data.regression_1d(8, jnp.zeros(2)), TypeError, "key"),
    Case("data.one_hot float labels", lambda c: data.one_hot(np.array([0.5, 1.0]), 3), ValueError, "labels"),
    Case("data.one_hot label = num_classes", lambda c: data.one_hot(np.array([0, 3]), 3), ValueError, "labels"),
    Case("data.one_hot num_classes=0", lambda c: data.one_hot(np.array([0]), 0), ValueError, "num_classes"),
    Case("data.digits_split 0 per class", lambda c: data.digits_split(0, 5, KEY), ValueError, "n_train_per_class"),
    Case("data.digits_split 200 per class", lambda c: data.digits_split(100, 100, KEY), ValueError,
         "n_train_per_class"),
    Case("data.digits_split classes", lambda c: data.digits_split(2, 2, KEY, classes=[3, 3]), ValueError, "classes"),
    Case("data.digits normalize", lambda c: data.digits(normalize="zscore"), ValueError, "normalize"),
    Case("data.modular_arithmetic p=1", lambda c: data.modular_arithmetic(1, 0.5, KEY), ValueError, r"\bp\b"),
    Case("data.modular_arithmetic fraction=nan", lambda c: data.modular_arithmetic(7, NAN, KEY), ValueError,
         "train_fraction"),
    Case("data.modular_arithmetic op", lambda c: data.modular_arithmetic(7, 0.5, KEY, op="div"), ValueError, r"\bop\b"),
    Case("data.single_index direction", lambda c: data.single_index(10, KEY, np.ones(3)), ValueError, "direction"),
    Case("data.single_index link", lambda c: data.single_index(10, KEY, c["unit"], link="odd"), ValueError, "link"),
    Case("data.digits_parity_split too many", lambda c: data.digits_parity_split(1700, 50, 50, KEY), ValueError,
         "n_train"),
    Case("data.random_direction dim=0", lambda c: data.random_direction(0, KEY), ValueError, "dim"),
    Case("data.balanced_indices float labels", lambda c: data.balanced_indices(np.array([0.5, 1.5]), 1, KEY),
         ValueError, "labels"),
    # -------------------------------------------------------------- datasets
    Case("datasets.load name", lambda c: datasets.load("imagenet"), ValueError, r"\bname\b", FETCH),
    Case("datasets.load split", lambda c: datasets.load("mnist", "val"), ValueError, r"\bsplit\b", FETCH),
    Case("datasets.load normalize", lambda c: datasets.load("mnist", normalize="zscore"), ValueError, "normalize",
         FETCH),
    Case("datasets.load flatten='no'", lambda c: datasets.load("mnist", flatten="no"), TypeError, "flatten", FETCH),
    Case("datasets.load allow_download='yes'", lambda c: datasets.load("svhn", allow_download="yes"), TypeError,
         "allow_download", FETCH),
    Case("datasets.split 0 per class", lambda c: datasets.split("mnist", 0, 5, KEY), ValueError, "n_train_per_class",
         FETCH),
    Case("datasets.split test per class 2.5", lambda c: datasets.split("cifar10", 5, 2.5, KEY), ValueError,
         "n_test_per_class", FETCH),
    Case("datasets.split int key", lambda c: datasets.split("mnist", 2, 2, 0), TypeError, "key", FETCH),
    Case("datasets.split repeated classes", lambda c: datasets.split("svhn", 2, 2, KEY, classes=[3, 3]), ValueError,
         "classes", FETCH),
    Case("datasets.split class 10", lambda c: datasets.split("fashion_mnist", 2, 2, KEY, classes=[0, 10]),
         ValueError, "classes", FETCH),
    Case("datasets.split relabel=1", lambda c: datasets.split("mnist", 2, 2, KEY, relabel=1), TypeError, "relabel",
         FETCH),
    Case("datasets.fetch name", lambda c: datasets.fetch("cifar100"), ValueError, r"\bname\b", FETCH),
    Case("datasets.fetch allow_download=1", lambda c: datasets.fetch("mnist", allow_download=1), TypeError,
         "allow_download", FETCH),
    Case("datasets.download_size name", lambda c: datasets.download_size("MNIST"), ValueError, r"\bname\b"),
    # ---------------------------------------------------------------- models
    Case("models.mlp W_std=nan", lambda c: models.mlp([8], 2, W_std=NAN), ValueError, "W_std"),
    Case("models.mlp hidden=512", lambda c: models.mlp(512, 10), TypeError, "hidden"),
    Case("models.mlp out_dim=0", lambda c: models.mlp([8], 0), ValueError, "out_dim"),
    Case("models.mlp activation", lambda c: models.mlp([8], 2, activation="gelu"), ValueError, "activation"),
    Case("models.mlp b_std<0", lambda c: models.mlp([8], 2, b_std=-1.0), ValueError, "b_std"),
    Case("models.mlp b_std=inf", lambda c: models.mlp([8], 2, b_std=INF), ValueError, "b_std"),
    Case("models.mlp parameterization", lambda c: models.mlp([8], 2, parameterization="mup"), ValueError,
         "parameterization"),
    Case("models.cnn filter_shape", lambda c: models.cnn([4], 2, filter_shape=(3,)), ValueError, "filter_shape"),
    Case("models.cnn W_std=-1", lambda c: models.cnn([4], 2, W_std=-1.0), ValueError, "W_std"),
    Case("models.init_params int key", lambda c: models.init_params(c["net"], 0, (-1, 4)), TypeError, "key"),
    Case("models.init_params input_shape", lambda c: models.init_params(c["net"], KEY, (4,)), ValueError,
         "input_shape"),
    Case("models.init_ensemble n=0", lambda c: models.init_ensemble(c["net"], KEY, (-1, 4), 0), ValueError, r"\bn\b"),
    Case("models.centered_scaled alpha=nan",
         lambda c: models.centered_scaled(c["net"].apply_fn, c["params"], NAN), ValueError, "alpha"),
    Case("models apply_fn params[:-1]", lambda c: c["net"].apply_fn(c["params"][:-1], c["x"]), ValueError, "params"),
    # --------------------------------------------------------------- kernels
    Case("kernels.empirical_ntk params[:-1]",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"][:-1], c["x"]), ValueError, "params", ENTK),
    Case("kernels.empirical_ntk 5 features for a 4-input net",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"], jnp.ones((3, 5))), ValueError, "x1", ENTK),
    Case("kernels.empirical_ntk int32 inputs",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"], jnp.ones((3, 4), jnp.int32)), TypeError, "x1",
         ENTK),
    Case("kernels.empirical_ntk NaN input",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"], c["x_nan"]), ValueError, "x1", ENTK),
    Case("kernels.empirical_ntk implementation",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"], c["x"], implementation="fast"), ValueError,
         "implementation", ENTK),
    Case("kernels.empirical_ntk batch_size=0",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"], c["x"], batch_size=0), ValueError,
         "batch_size", ENTK),
    Case("kernels.empirical_ntk trace_axes",
         lambda c: kernels.empirical_ntk(c["net"].apply_fn, c["params"], c["x"], trace_axes=(0,)), ValueError,
         "trace_axes", ENTK),
    Case("kernels.ntk_reference params[:-1]",
         lambda c: kernels.ntk_reference(c["net"].apply_fn, c["params"][:-1], c["x"]), ValueError, "params", ENTK),
    Case("kernels.kernel_regression ridge=nan",
         lambda c: kernels.kernel_regression(c["k"], np.ones(6), c["k"], ridge=NAN), ValueError, "ridge"),
    Case("kernels.kernel_regression non-symmetric",
         lambda c: kernels.kernel_regression(np.triu(np.ones((3, 3))), np.ones(3), np.ones((1, 3))), ValueError,
         "k_train_train"),
    Case("kernels.kernel_regression non-PSD",
         lambda c: kernels.kernel_regression(np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(2), np.ones((1, 2))),
         ValueError, "k_train_train"),
    Case("kernels.kernel_regression mismatched y",
         lambda c: kernels.kernel_regression(c["k"], np.ones(5), c["k"]), ValueError, "y_train"),
    Case("kernels.kernel_regression NaN y",
         lambda c: kernels.kernel_regression(c["k"], np.full(6, NAN), c["k"]), ValueError, "y_train"),
    Case("kernels.gradient_flow_mse t=nan",
         lambda c: kernels.gradient_flow_mse(c["k"], np.ones(6), NAN), ValueError, r"\bt\b"),
    Case("kernels.gradient_flow_mse learning_rate=0",
         lambda c: kernels.gradient_flow_mse(c["k"], np.ones(6), 1.0, learning_rate=0.0), ValueError, "learning_rate"),
    Case("kernels.gradient_flow_mse indefinite kernel",
         lambda c: kernels.gradient_flow_mse(np.diag([1.0, -0.5]), np.ones(2), 1.0), ValueError, "k_train_train"),
    Case("kernels.gradient_flow_mse NaN kernel",
         lambda c: kernels.gradient_flow_mse(np.full((2, 2), NAN), np.ones(2), 1.0), ValueError, "k_train_train"),
    Case("kernels.gradient_flow_mse on_unstable",
         lambda c: kernels.gradient_flow_mse(c["k"], np.ones(6), 1.0, discrete=True, on_unstable="clip"),
         ValueError, "on_unstable"),
    Case("kernels.gradient_flow_mse discrete descent past eta lambda_max / n = 2",
         lambda c: kernels.gradient_flow_mse(np.diag([3.0, 1.0]), np.ones(2), 5.0, learning_rate=1.5, discrete=True,
                                             on_unstable="raise"), ValueError, "learning_rate"),
    Case("kernels.infinite_kernel get", lambda c: kernels.infinite_kernel(c["net"].kernel_fn, c["x"], get="cka"),
         ValueError, "get"),
    Case("kernels.infinite_kernel NaN input", lambda c: kernels.infinite_kernel(c["net"].kernel_fn, c["x_nan"]),
         ValueError, "x1", ("kernels._jit_kernel_fn",)),
    Case("kernels.arccos_kernels hidden_layers=0", lambda c: kernels.arccos_kernels(c["x"], hidden_layers=0),
         ValueError, "hidden_layers"),
    Case("kernels.arccos_kernels W_std=nan", lambda c: kernels.arccos_kernels(c["x"], hidden_layers=1, W_std=NAN),
         ValueError, "W_std"),
    Case("kernels.pseudo_ntk variant",
         lambda c: kernels.pseudo_ntk(c["net"].apply_fn, c["params"], c["x"], variant="mean"), ValueError, "variant",
         ENTK),
    Case("kernels.kernel_cost repeats=0",
         lambda c: kernels.kernel_cost(c["net"].apply_fn, c["params"], c["x"], repeats=0), ValueError, "repeats",
         ENTK),
    # ----------------------------------------------------------------- trace
    Case("trace.ntk_trace method", lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x"], method="exactly"),
         ValueError, "method", ("trace._exact_diagonal", "trace._estimates")),
    Case("trace.ntk_trace NaN pixel", lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x_nan"]),
         ValueError, r"\bx\b", ("trace._exact_diagonal", "trace._estimates")),
    Case("trace.ntk_trace jvp without key",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x"], method="jvp"), ValueError, "key",
         ("trace._estimates",)),
    Case("trace.ntk_trace int key",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x"], method="jvp", key=0), TypeError, "key",
         ("trace._estimates",)),
    Case("trace.ntk_trace eps=0",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x"], method="fd", key=KEY, eps=0.0), ValueError,
         "eps", ("trace._estimates",)),
    Case("trace.ntk_trace rtol=nan",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x"], method="jvp", key=KEY, rtol=NAN),
         ValueError, "rtol", ("trace._estimates",)),
    Case("trace.ntk_trace rtol=1e-4 (millions of probes)",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], c["x"], method="jvp", key=KEY, rtol=1e-4),
         ValueError, "rtol", ("trace._estimates",)),
    Case("trace.ntk_trace params[:-1]",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"][:-1], c["x"]), ValueError, "params",
         ("trace._exact_diagonal",)),
    Case("trace.ntk_trace 5 features",
         lambda c: trace.ntk_trace(c["net"].apply_fn, c["params"], jnp.ones((3, 5))), ValueError, r"\bx\b",
         ("trace._exact_diagonal",)),
    Case("trace.layer_traces method",
         lambda c: trace.layer_traces(c["net"].apply_fn, c["params"], c["x"], method="auto"), ValueError, "method",
         ("trace._exact_diagonal", "trace._estimates")),
    Case("trace.input_perturbation_distance probes=0",
         lambda c: trace.input_perturbation_distance(c["net"].apply_fn, c["params"], c["x"], key=KEY, probes=0),
         ValueError, "probes", ("trace._input_probe_fn",)),
    Case("trace.trace_recorder jvp without key",
         lambda c: trace.trace_recorder(c["net"].apply_fn, c["x"], method="jvp"), ValueError, "key"),
    # ----------------------------------------------------------------- train
    Case("train.fit steps=0",
         lambda c: train.fit(train.mse_loss(c["net"].apply_fn), c["params"], optax.sgd(0.1), 0,
                             data=(c["x"], jnp.ones((6, 2)))), ValueError, "steps", FIT),
    Case("train.fit on_nonfinite",
         lambda c: train.fit(train.mse_loss(c["net"].apply_fn), c["params"], optax.sgd(0.1), 5,
                             data=(c["x"], jnp.ones((6, 2))), on_nonfinite="warn"), ValueError, "on_nonfinite", FIT),
    Case("train.fit x and y of different N",
         lambda c: train.fit(train.mse_loss(c["net"].apply_fn), c["params"], optax.sgd(0.1), 5,
                             data=(c["x"], jnp.ones((5, 2)))), ValueError, "data", FIT),
    Case("train.fit NaN targets",
         lambda c: train.fit(train.mse_loss(c["net"].apply_fn), c["params"], optax.sgd(0.1), 5,
                             data=(c["x"], jnp.full((6, 2), NAN))), ValueError, "data", FIT),
    Case("train.fit optimizer", lambda c: train.fit(train.mse_loss(c["net"].apply_fn), c["params"], 0.1, 5,
                                                    data=(c["x"], jnp.ones((6, 2)))), TypeError, "optimizer", FIT),
    Case("train.fit progress='no'",
         lambda c: train.fit(train.mse_loss(c["net"].apply_fn), c["params"], optax.sgd(0.1), 5,
                             data=(c["x"], jnp.ones((6, 2))), progress="no"), TypeError, "progress", FIT),
    Case("train.fit_classifier label = classes",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"],
                                        c["split"]._replace(y_train=np.array([0, 1, 2, 0, 1, 0], np.int32)), 5,
                                        batch_size=None), ValueError, "labels", FIT),
    Case("train.fit_classifier int key",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"], c["split"], 5, batch_size=2, key=0),
         TypeError, "key", FIT),
    Case("train.fit_classifier learning_rate=nan",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"], c["split"], 5, learning_rate=NAN,
                                        batch_size=None), ValueError, "learning_rate", FIT),
    Case("train.fit_classifier weight_decay=nan",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"], c["split"], 5, weight_decay=NAN,
                                        batch_size=None), ValueError, "weight_decay", FIT),
    Case("train.fit_classifier NaN inputs",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"], c["split"]._replace(x_train=c["x_nan"]), 5,
                                        batch_size=None), ValueError, "x_train", FIT),
    Case("train.fit_classifier 5 features",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"],
                                        c["split"]._replace(x_train=np.ones((6, 5), np.float32)), 5, batch_size=None),
         ValueError, "x_train", FIT),
    Case("train.fit_classifier params[:-1]",
         lambda c: train.fit_classifier(c["net"].apply_fn, c["params"][:-1], c["split"], 5, batch_size=None),
         ValueError, "params", FIT),
    Case("train.record_schedule n_records=1", lambda c: train.record_schedule(10, 1), ValueError, "n_records"),
    Case("train.classifier_optimizer momentum=1", lambda c: train.classifier_optimizer(0.1, 10, momentum=1.0),
         ValueError, "momentum"),
    Case("train.fit_recorded loss", lambda c: train.fit_recorded(c["net"].apply_fn, c["params"], c["split"], 5,
                                                                 optax.sgd(0.1), loss="hinge"), ValueError, "loss", FIT),
    # ------------------------------------------------------------------ lazy
    Case("lazy.jacobian_change NaN x",
         lambda c: lazy.jacobian_change(c["net"].apply_fn, c["params"], c["params"], c["x_nan"]), ValueError, r"\bx\b",
         ("lazy._change_jit",)),
    Case("lazy.jacobian_change params mismatch",
         lambda c: lazy.jacobian_change(c["net"].apply_fn, c["params"], c["params"][:-1], c["x"]), ValueError,
         "params", ("lazy._change_jit",)),
    Case("lazy.hessian_operator_norm tol=0",
         lambda c: lazy.hessian_operator_norm(lambda p: jnp.sum(p ** 2), jnp.ones(3), tol=0.0), ValueError, "tol",
         ("lazy._hvp",)),
    Case("lazy.diagnostics target=nan", lambda c: lazy.diagnostics(lambda p: jnp.sum(p ** 2), jnp.ones(3), NAN),
         ValueError, "target", ("lazy._hvp", "lazy._grad_norm")),
    Case("lazy.gradient_norm NaN params", lambda c: lazy.gradient_norm(lambda p: jnp.sum(p ** 2), jnp.array([NAN])),
         ValueError, "params", ("lazy._grad_norm",)),
    # ------------------------------------------------------------- ntk_change
    Case("ntk_change.train_grid NaN x",
         lambda c: ntk_change.train_grid(KEY, c["x_nan"], jnp.ones(6), width=8, depths=[2], W_vars=[1.0], steps=10), ValueError,
         r"\bx\b", ("ntk_change._compiled",)),
    Case("ntk_change.train_grid fraction=2",
         lambda c: ntk_change.train_grid(KEY, c["x"], jnp.ones(6), width=8, depths=[2], W_vars=[1.0], steps=10, fraction=2.0),
         ValueError, "fraction", ("ntk_change._compiled",)),
    Case("ntk_change.train_grid int key",
         lambda c: ntk_change.train_grid(0, c["x"], jnp.ones(6), width=8, depths=[2], W_vars=[1.0], steps=10), TypeError, "key",
         ("ntk_change._compiled",)),
    Case("ntk_change.train_grid b_var=nan",
         lambda c: ntk_change.train_grid(KEY, c["x"], jnp.ones(6), width=8, depths=[2], W_vars=[1.0], steps=10, b_var=NAN),
         ValueError, "b_var", ("ntk_change._compiled",)),
    Case("ntk_change.train_grid depths",
         lambda c: ntk_change.train_grid(KEY, c["x"], jnp.ones(6), width=8, depths=[0], W_vars=[1.0], steps=10), ValueError,
         "depths", ("ntk_change._compiled",)),
    # ------------------------------------------------------------- dispersion
    Case("dispersion.init_mlp int key", lambda c: dispersion.init_mlp(0, (4, 4), W_var=1.0), TypeError, "key"),
    Case("dispersion.ntk_samples W_var=nan", lambda c: dispersion.ntk_samples(KEY, 10, (4, 4), W_var=NAN), ValueError,
         "W_var", ("dispersion._sampler",)),
    Case("dispersion.ntk_samples widths", lambda c: dispersion.ntk_samples(KEY, 10, (4, 0), W_var=1.0), ValueError,
         "widths", ("dispersion._sampler",)),
    Case("dispersion.ntk_samples NaN inputs",
         lambda c: dispersion.ntk_samples(KEY, 10, (4, 4), W_var=1.0, inputs=jnp.full((1, 4), NAN)), ValueError,
         "inputs", ("dispersion._sampler",)),
    Case("dispersion.dispersion NaN sample", lambda c: dispersion.dispersion(np.array([1.0, NAN, 2.0]), key=KEY),
         ValueError, "samples"),
    Case("dispersion.ratio_of_means unpaired",
         lambda c: dispersion.ratio_of_means(np.ones(4), np.ones(5), key=KEY), ValueError, "numerator"),
    Case("dispersion.unit_inputs cosines", lambda c: dispersion.unit_inputs(4, [1.5]), ValueError, "cosines"),
    Case("dispersion.log_interdecile non-positive lower decile",
         lambda c: dispersion.log_interdecile(np.r_[np.zeros(30), np.ones(70)], key=KEY), ValueError, "samples"),
    Case("dispersion.dispersion_grid W_vars nan",
         lambda c: dispersion.dispersion_grid(KEY, 10, 4, [2], [NAN]), ValueError, "W_var",
         ("dispersion._sampler",)),
    # -------------------------------------------------------------- meanfield
    Case("meanfield.forward q0=inf", lambda c: meanfield.forward(3, 1.0, 0.0, "relu", q0=INF), ValueError, "q0"),
    Case("meanfield.sphere_kernels NaN cosine", lambda c: meanfield.sphere_kernels(np.array([NAN]), 3, 1.0, 0.0,
                                                                                   "relu"), ValueError, "cosines"),
    Case("meanfield.ntk_moments x_norm_sq=nan", lambda c: meanfield.ntk_moments([4, 4], 2.0, x_norm_sq=NAN),
         ValueError, "x_norm_sq"),
    Case("meanfield.ntk_dispersion_limit lam=nan", lambda c: meanfield.ntk_dispersion_limit(NAN, "chaotic"),
         ValueError, "lam"),
    Case("meanfield.correlation_map c=nan", lambda c: meanfield.correlation_map(NAN, 1.0, 0.1, "tanh"), ValueError,
         r"\bc\b"),
    Case("meanfield.offdiag_ratio_estimate rho0=nan", lambda c: meanfield.offdiag_ratio_estimate(NAN, 3, 1.0),
         ValueError, "rho0"),
    Case("meanfield.chi1 W_var=nan", lambda c: meanfield.chi1(NAN, 0.0, "tanh"), ValueError, "W_var"),
    Case("meanfield.output_variance kappa_ratio=nan", lambda c: meanfield.output_variance(1.0, 0.5, NAN, 3),
         ValueError, "kappa_ratio"),
    Case("meanfield.ntk_dispersion alpha0=inf", lambda c: meanfield.ntk_dispersion(3, 10, 2.0, alpha0=INF),
         ValueError, "alpha0"),
    # ---------------------------------------------------------------- scaling
    Case("scaling.Protocol learning_rate=nan", lambda c: scaling.Protocol(learning_rate=NAN), ValueError,
         "learning_rate"),
    Case("scaling.Protocol momentum=1", lambda c: scaling.Protocol(learning_rate=1.0, momentum=1.0), ValueError,
         "momentum"),
    Case("scaling.learning_curves infeasible ns",
         lambda c: scaling.learning_curves(_sampler, (10, 1700), 1, models.mlp([8], 1), scaling.Protocol(**PROTOCOL),
                                           KEY, input_shape=(-1, 64)), ValueError, "ns",
         ("scaling.compare", "train._make_runner")),
    Case("scaling.learning_curves int key",
         lambda c: scaling.learning_curves(_sampler, (10, 20), 1, models.mlp([8], 1), scaling.Protocol(**PROTOCOL),
                                           0, input_shape=(-1, 64)), TypeError, "key",
         ("scaling.compare", "train._make_runner")),
    Case("scaling.learning_curves input_shape",
         lambda c: scaling.learning_curves(_sampler, (10, 20), 1, models.mlp([8], 1), scaling.Protocol(**PROTOCOL),
                                           KEY, input_shape=(-1, 16)), ValueError, "input_shape",
         ("scaling.compare", "train._make_runner")),
    Case("scaling.kernel_descent learning_rate<0",
         lambda c: scaling.kernel_descent(c["k"], np.ones(6), [], [0, 1], learning_rate=-1.0), ValueError,
         "learning_rate"),
    Case("scaling.critical_learning_rate momentum", lambda c: scaling.critical_learning_rate(c["k"], momentum=1.5),
         ValueError, "momentum"),
    Case("scaling.subset n=0", lambda c: scaling.subset(c["held"], 0), ValueError, r"\bn\b"),
    # ---------------------------------------------------------------- semisup
    Case("semisup.semisup_split n=0", lambda c: semisup.semisup_split(0, 5, KEY), ValueError, "n_labelled_per_class"),
    Case("semisup.semisup_split int key", lambda c: semisup.semisup_split(2, 5, 0), TypeError, "key"),
    Case("semisup.fixmatch_loss threshold=nan",
         lambda c: semisup.fixmatch_loss(c["net"].apply_fn, threshold=NAN), ValueError, "threshold"),
    Case("semisup.train_fixmatch int key",
         lambda c: semisup.train_fixmatch(c["net64"].apply_fn, c["params64"], c["sup"], 5, key=0),
         TypeError, "key", FIT),
    Case("semisup.train_supervised wrong network",
         lambda c: semisup.train_supervised(c["net"].apply_fn, c["params"], c["sup"], 5, key=KEY), ValueError,
         "x_labelled", FIT),
    Case("semisup.ema_optimizer tau=1", lambda c: semisup.ema_optimizer(optax.sgd(0.1), (1.0,)), ValueError, "taus"),
    # ---------------------------------------------------------------- augment
    Case("augment.rotate angle=nan", lambda c: augment.rotate(c["img"], NAN), ValueError, "angle_deg"),
    Case("augment.rotate NaN image", lambda c: augment.rotate(c["img"].at[0, 0].set(NAN), 3.0), ValueError, "image"),
    Case("augment.weak int key", lambda c: augment.weak(0, jnp.zeros((2, 64))), TypeError, "key"),
    Case("augment.strong strength=2", lambda c: augment.strong(KEY, jnp.zeros((2, 64)), strength=2.0), ValueError,
         "strength"),
    Case("augment.cutout size=-1", lambda c: augment.cutout(c["img"], 2, 2, -1), ValueError, "size"),
    Case("augment.strong noise_std=nan", lambda c: augment.strong(KEY, jnp.zeros((2, 64)), noise_std=NAN), ValueError,
         "noise_std"),
    # --------------------------------------------------------------- collapse
    Case("collapse.integrate ts=[0, nan]", lambda c: collapse.integrate(c["reduced"], KAPPAS, [0.0, NAN]), ValueError,
         r"\bts\b", ("collapse._solve",)),
    Case("collapse.integrate NaN state",
         lambda c: collapse.integrate(c["reduced"]._replace(W=c["reduced"].W.at[0, 0].set(NAN)), KAPPAS, [0.0, 1.0]),
         ValueError, "state0", ("collapse._solve",)),
    Case("collapse.integrate train_bias='no'",
         lambda c: collapse.integrate(c["reduced"], KAPPAS, [0.0, 1.0], train_bias="no"), TypeError, "train_bias",
         ("collapse._solve",)),
    Case("collapse.integrate max_steps=0",
         lambda c: collapse.integrate(c["reduced"], KAPPAS, [0.0, 1.0], max_steps=0), ValueError, "max_steps",
         ("collapse._solve",)),
    Case("collapse.balanced_state bias=nan",
         lambda c: collapse.balanced_state(KEY, KAPPAS, num_classes=3, per_class=4, feature_dim=6, bias=NAN),
         ValueError, "bias"),
    Case("collapse.balanced_state int key",
         lambda c: collapse.balanced_state(0, KAPPAS, num_classes=3, per_class=4, feature_dim=6), TypeError, "key"),
    Case("collapse.invariant wrongly shaped H2",
         lambda c: collapse.invariant(c["reduced"].W, c["reduced"].H1, c["reduced"].H2[:, :-1], KAPPAS), ValueError,
         "H2"),
    # ---------------------------------------------------------------- metrics
    Case("metrics.relative_frobenius_error zero reference",
         lambda c: metrics.relative_frobenius_error(np.ones((2, 2)), np.zeros((2, 2))), ValueError, "reference"),
    Case("metrics.relative_frobenius_error NaN a",
         lambda c: metrics.relative_frobenius_error(np.full((2, 2), NAN), np.ones((2, 2))), ValueError, r"\ba\b"),
    Case("metrics.fit_power_law confidence=nan", lambda c: metrics.fit_power_law(*_POWER, confidence=NAN), ValueError,
         "confidence"),
    Case("metrics.fit_power_law confidence=inf", lambda c: metrics.fit_power_law(*_POWER, confidence=INF), ValueError,
         "confidence"),
    Case("metrics.fit_power_law confidence str", lambda c: metrics.fit_power_law(*_POWER, confidence="0.95"), TypeError,
         "confidence"),
    Case("metrics.fit_power_law_within confidence=inf",
         lambda c: metrics.fit_power_law_within(*_POWER, [0, 0, 1, 1], confidence=INF), ValueError, "confidence"),
    Case("metrics.correction_slope_allowance coefficient=inf",
         lambda c: metrics.correction_slope_allowance(_POWER[0], coefficient=INF), ValueError, "coefficient"),
    Case("metrics.correction_slope_allowance coefficient=True",
         lambda c: metrics.correction_slope_allowance([10.0, 20.0, 40.0], coefficient=True), TypeError, "coefficient"),
    Case("metrics.correction_slope_allowance power=inf",
         lambda c: metrics.correction_slope_allowance(_POWER[0], power=INF), ValueError, "power"),
    Case("metrics.eigen_decay_rates learning_rate=inf", lambda c: metrics.eigen_decay_rates(*_DECAY, INF), ValueError,
         "learning_rate"),
    Case("metrics.eigen_decay_rates learning_rate str", lambda c: metrics.eigen_decay_rates(*_DECAY, "1"), TypeError,
         "learning_rate"),
    Case("metrics.eigen_decay_rates normalization=inf",
         lambda c: metrics.eigen_decay_rates(*_DECAY, 1.0, normalization=INF), ValueError, "normalization"),
    Case("metrics.eigen_decay_rates efolds=inf", lambda c: metrics.eigen_decay_rates(*_DECAY, 1.0, efolds=INF),
         ValueError, "efolds"),
    Case("metrics.eigen_decay_rates min_steps=True", lambda c: metrics.eigen_decay_rates(*_DECAY, 1.0, min_steps=True),
         ValueError, "min_steps"),
    Case("metrics.eigen_decay_rates min_steps=5.0", lambda c: metrics.eigen_decay_rates(*_DECAY, 1.0, min_steps=5.0),
         ValueError, "min_steps"),
    Case("metrics.eigen_decay_rates NaN kernel",
         lambda c: metrics.eigen_decay_rates(_DECAY[0], np.full((3, 3), NAN), 1.0), ValueError, "kernel"),
    Case("metrics.eigen_decay_rates NaN residuals",
         lambda c: metrics.eigen_decay_rates(np.full((3, 3), NAN), _DECAY[1], 1.0), ValueError, "residuals"),
    Case("metrics.settling_step rtol=nan", lambda c: metrics.settling_step(*_CURVE, NAN), ValueError, "rtol"),
    Case("metrics.settling_step rtol=inf", lambda c: metrics.settling_step(*_CURVE, INF), ValueError, "rtol"),
    Case("metrics.settling_step rtol=True", lambda c: metrics.settling_step(*_CURVE, True), TypeError, "rtol"),
    Case("metrics.settling_step NaN values", lambda c: metrics.settling_step(_CURVE[0], [0.0, NAN, 1, 1, 1], 0.1),
         ValueError, "values"),
    Case("metrics.first_reaching threshold=nan", lambda c: metrics.first_reaching(*_CURVE, NAN), ValueError,
         "threshold"),
    Case("metrics.first_reaching NaN steps", lambda c: metrics.first_reaching([0, 1, NAN, 3, 4], _CURVE[1], 0.5),
         ValueError, "steps"),
    Case("metrics.median_upper_bound confidence=inf", lambda c: metrics.median_upper_bound(np.arange(10.0), INF),
         ValueError, "confidence"),
    Case("metrics.rms_z_quantile nu str", lambda c: metrics.rms_z_quantile("3", 0.9), TypeError, r"\bnu\b"),
    Case("metrics.kernel_target_alignment NaN kernel",
         lambda c: metrics.kernel_target_alignment(np.full((3, 3), NAN), [1.0, -1.0, 1.0]), ValueError, "kernel"),
    Case("metrics.kernel_target_alignment centered str",
         lambda c: metrics.kernel_target_alignment(np.eye(3), [1.0, -1.0, 1.0], centered="no"), TypeError, "centered"),
    Case("metrics.kernel_velocity NaN times", lambda c: metrics.kernel_velocity(np.stack([np.eye(2)] * 2), [0.0, NAN]),
         ValueError, "times"),
    Case("metrics.normalized_margin NaN outputs",
         lambda c: metrics.normalized_margin(np.array([NAN, 1.0, 1.0]), np.array([1, -1, 1]), {"w": jnp.ones(2)}, 1),
         ValueError, "outputs"),
    Case("metrics.block_statistics NaN kernel",
         lambda c: metrics.block_statistics(np.full((4, 4), NAN), np.array([0, 0, 1, 1])), ValueError, "kernel"),
    Case("metrics.nc1 NaN features", lambda c: metrics.nc1(np.full((4, 2), NAN), np.array([0, 0, 1, 1])), ValueError,
         "features"),
    Case("metrics.nc3 inf weights",
         lambda c: metrics.nc3(np.eye(4, 2), np.array([0, 0, 1, 1]), np.full((2, 2), INF)), ValueError, "weights"),
    Case("metrics.nc4 NaN bias",
         lambda c: metrics.nc4(np.eye(4, 2), np.array([0, 0, 1, 1]), np.ones((2, 2)), [NAN, 0.0]), ValueError, "bias"),
    Case("metrics.invariant_terms kappa_d=inf",
         lambda c: metrics.invariant_terms(np.eye(4, 2), np.array([0, 0, 1, 1]), np.ones((2, 2)), (INF, 0.4, 0.1)),
         ValueError, "kappas"),
    Case("metrics.simplex_etf num_classes=2.7", lambda c: metrics.simplex_etf(2.7), ValueError, "num_classes"),
    Case("metrics.simplex_etf num_classes=nan", lambda c: metrics.simplex_etf(NAN), ValueError, "num_classes"),
    Case("metrics.extrapolation_weights depths str", lambda c: metrics.extrapolation_weights(["10", "30", "x"]),
         TypeError, "depths"),
    Case("metrics.extrapolate_log_over_l values str",
         lambda c: metrics.extrapolate_log_over_l((10, 30, 100), ["1", "2", "x"]), TypeError, "values"),
    # --------------------------------------------------------------- dynamics
    Case("dynamics.active_learning learning_rate<0",
         lambda c: dynamics.active_learning(lambda p, xx: xx @ p, jnp.zeros((4, 2)), jnp.ones((20, 4)),
                                            np.arange(20) % 2, jnp.ones((20, 4)), np.arange(20) % 2, initial=[0, 1],
                                            rounds=1, per_round=1, strategy="random", kernel="pntk", train_steps=5,
                                            learning_rate=-0.5, key=KEY), ValueError, "learning_rate",
         ("train.fit",)),
    Case("dynamics.apply_output NaN logits", lambda c: dynamics.apply_output(jnp.array([[NAN, 1.0]])), ValueError,
         "logits"),
    Case("dynamics.apply_output output", lambda c: dynamics.apply_output(jnp.ones((1, 2)), "softplus"), ValueError,
         "output"),
    # ------------------------------------------------------------ transformer
    Case("transformer tokens >= vocab", lambda c: c["tf"].apply_fn(c["tf_params"], jnp.array([[0, 6, 5]])),
         ValueError, "tokens"),
    Case("transformer vocab=0", lambda c: transformer.transformer(0, 3, 5), ValueError, "vocab"),
    # ----------------------------------------------------------- svm, timing
    Case("svm.hard_margin_svm non-symmetric", lambda c: svm.hard_margin_svm(np.triu(np.ones((3, 3))), [1, -1, 1]),
         ValueError, "kernel"),
    Case("svm.hard_margin_svm 0/1 labels", lambda c: svm.hard_margin_svm(np.eye(3), [1, 0, 1]), ValueError, "labels"),
    Case("timing.best_time repeats=0", lambda c: timing.best_time(lambda: None, repeats=0), ValueError, "repeats"),
    # ---------------------------------------------------------------- presets
    Case("presets.config unknown preset", lambda c: presets.config("01_lazy", "huge"), ValueError, "preset"),
    Case("presets.config seed=-1", lambda c: presets.config("01_lazy", "ci", -1), ValueError, "seed"),
]


def _spy(target: str):
    def reached(*args, **kwargs):
        raise Reached(f"{target} was reached before the bad input was refused")
    return reached


def _patch_spies(case: Case, setattr_fn) -> None:
    modules = dict(kernels=kernels, train=train, trace=trace, lazy=lazy, ntk_change=ntk_change, dispersion=dispersion,
                   scaling=scaling, collapse=collapse, datasets=datasets)
    for target in case.spies:
        mod, attr = target.split(".")
        assert hasattr(modules[mod], attr), target
        setattr_fn(modules[mod], attr, _spy(target))


def test_the_table_is_large_and_covers_every_public_module():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)
    covered = {c.id.split(".")[0].split(" ")[0] for c in CASES}
    assert {"data", "datasets", "models", "kernels", "trace", "train", "lazy", "ntk_change", "dispersion", "meanfield", "scaling",
            "semisup", "augment", "collapse", "metrics", "dynamics", "transformer", "svm", "timing",
            "presets"} <= covered


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_by_name_before_expensive_work(case, monkeypatch):
    c = ctx()
    _patch_spies(case, monkeypatch.setattr)
    with pytest.raises(case.exc) as info:
        case.call(c)
    assert not isinstance(info.value, Reached), str(info.value)
    assert re.search(case.name, str(info.value)), f"message does not name {case.name!r}: {info.value}"


def test_valid_values_the_audit_saw_refused_are_accepted():
    # numpy scalars are numbers: scaling.Protocol(learning_rate=np.float32(2.0)) was refused.
    assert scaling.Protocol(learning_rate=np.float32(2.0)).learning_rate == np.float32(2.0)
    assert models.mlp([np.int64(4)], np.int64(2), W_std=np.float32(1.5)) is not None
    assert data.regression_1d(np.int64(4), jax.random.key(0))[0].shape == (4, 1)  # typed keys are keys


# ------------------------------------------------------ the audit's classification, as a tool
def classify(case: Case, limit_s: float = 1.0, hang_s: float = 30.0) -> tuple[str, float, str]:
    """``(CLEAR | VAGUE | SILENT | SLOW | HANG | REACHED, seconds, message)`` for one case."""
    import signal
    import time

    c = ctx()
    saved = []

    def setattr_fn(mod, attr, value):
        saved.append((mod, attr, getattr(mod, attr)))
        setattr(mod, attr, value)

    def alarm(*_):
        raise TimeoutError

    _patch_spies(case, setattr_fn)
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(hang_s))
    t0 = time.perf_counter()
    try:
        case.call(c)
        verdict, msg = "SILENT", "no error"
    except TimeoutError:
        verdict, msg = "HANG", f"no answer in {hang_s:.0f} s"
    except Reached as err:
        verdict, msg = "REACHED", str(err)
    except Exception as err:  # noqa: BLE001
        msg = f"{type(err).__name__}: {err}"
        ok = isinstance(err, case.exc) and re.search(case.name, str(err))
        verdict = "CLEAR" if ok else "VAGUE"
    finally:
        dt = time.perf_counter() - t0
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        for mod, attr, value in reversed(saved):
            setattr(mod, attr, value)
    if verdict == "CLEAR" and dt > limit_s:
        verdict = "SLOW"
    return verdict, dt, msg


if __name__ == "__main__":
    import collections
    import sys

    ctx()  # build the shared objects (and compile their kernel) outside the timings
    counts: collections.Counter = collections.Counter()
    for case in CASES:
        verdict, dt, msg = classify(case)
        counts[verdict] += 1
        print(f"{verdict:7s} {dt * 1e3:7.0f} ms  {case.id}: {msg.splitlines()[0][:110]}")
    print(f"\n{len(CASES)} cases: " + " - ".join(f"{k} {counts[k]}" for k in
                                                ("CLEAR", "VAGUE", "SILENT", "SLOW", "HANG", "REACHED")))
    sys.exit(0 if counts["CLEAR"] == len(CASES) else 1)
