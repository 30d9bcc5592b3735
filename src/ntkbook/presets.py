"""Size presets: how big every experiment in the book is, as data.

``NTKBOOK_PRESET`` selects one of

- ``ci``: the smallest sizes that still show each claim and pass its assertions
  (every chapter well under 90 s on a 2-core CPU);
- ``book`` (default): what the rendered book shows (each chapter under 6 min on
  a 2-core CPU);
- ``paper``: sizes closer to the papers (a GPU is recommended).

A chapter reads its sizes once, at the top::

    cfg = presets.config("01_lazy")
    cfg.widths, cfg.preset

Chapters never branch on the preset name; they only read values from here.

``NTKBOOK_SEED`` (default 0) selects the random draw. Every random number a
chapter uses comes from its config, never from a literal key::

    key = cfg.key(3)        # a JAX key for random stream 3 of this chapter
    rng = cfg.rng(3)        # a NumPy generator for the same stream

Seed 0 gives ``jax.random.PRNGKey(stream)``, the draws the book was first
written with; seed ``s > 0`` folds ``s`` into that key, so every stream of every
chapter changes together and nothing else does. ``make seeds`` executes chapters
under several seeds and records which claims survive (appendix B).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

ENV_VAR = "NTKBOOK_PRESET"
DEFAULT = "book"
NAMES: tuple[str, ...] = ("ci", "book", "paper")
SEED_VAR = "NTKBOOK_SEED"
#: Seeds and stream numbers must fit the 32-bit words of a raw JAX key.
_MAX_U32 = 2**32 - 1


def current() -> str:
    """Return the preset named by ``$NTKBOOK_PRESET`` (``"book"`` if unset).

    Raises:
        ValueError: if the variable names no known preset.
    """
    return validate(os.environ.get(ENV_VAR, DEFAULT).strip() or DEFAULT)


def validate(name: str) -> str:
    """Return ``name`` if it is a preset, else raise a ``ValueError`` naming the choices."""
    if name not in NAMES:
        raise ValueError(
            f"unknown preset {name!r} (from argument or ${ENV_VAR}); expected one of {', '.join(NAMES)}"
        )
    return name


def seed() -> int:
    """Return the book's seed from ``$NTKBOOK_SEED`` (``0`` if unset or empty).

    Raises:
        ValueError: if the variable is not a decimal integer in ``[0, 2**32 - 1]``.
    """
    raw = os.environ.get(SEED_VAR, "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(f"${SEED_VAR}={raw!r} is not a seed; expected a non-negative integer such as 0, 1, 2")
    return validate_seed(int(raw))


def validate_seed(value: Any) -> int:
    """Return ``value`` if it is an integer seed in ``[0, 2**32 - 1]``, else raise.

    Raises:
        TypeError: ``value`` is not an ``int`` (``bool`` and floats included).
        ValueError: ``value`` is negative or does not fit 32 bits.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"seed must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value <= _MAX_U32:
        raise ValueError(f"seed must be in [0, {_MAX_U32}], got {value}")
    return value


def _stream_id(stream: int | str) -> int:
    """Map a stream (an int, or a name hashed with CRC-32, stable across runs) to a 32-bit integer."""
    if isinstance(stream, str):
        if not stream:
            raise ValueError("stream name must be a non-empty string")
        return zlib.crc32(stream.encode())
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"stream must be an int or a str, got {type(stream).__name__} {stream!r}")
    if not 0 <= stream <= _MAX_U32:
        raise ValueError(f"stream must be in [0, {_MAX_U32}], got {stream}")
    return stream


def derive_key(stream: int | str, seed_value: int = 0):
    """The JAX key of random stream ``stream`` under book seed ``seed_value``.

    ``seed_value == 0`` gives ``jax.random.PRNGKey(stream)``; any other seed gives
    ``jax.random.fold_in(jax.random.PRNGKey(stream), seed_value)``. A string
    stream is first mapped to an integer with CRC-32 (the same on every run and
    machine, unlike Python's ``hash``).

    Raises:
        TypeError / ValueError: a stream or seed that is not a 32-bit non-negative integer (or a name).
    """
    import jax  # deferred: reading a preset must not import JAX

    sid = _stream_id(stream)
    s = validate_seed(seed_value)
    key = jax.random.PRNGKey(sid)
    return key if s == 0 else jax.random.fold_in(key, s)


def derive_rng(stream: int | str, seed_value: int = 0):
    """A NumPy ``Generator`` for stream ``stream`` under book seed ``seed_value``.

    Seed 0 gives ``np.random.default_rng(stream)``; seed ``s`` gives
    ``np.random.default_rng([stream, s])`` (NumPy's ``SeedSequence`` mixes both words).
    """
    import numpy as np

    sid = _stream_id(stream)
    s = validate_seed(seed_value)
    return np.random.default_rng(sid if s == 0 else [sid, s])


class Config(Mapping[str, Any]):
    """A chapter's sizes for one preset and the book seed: a read-only mapping with attribute access.

    ``cfg.key(stream)`` and ``cfg.rng(stream)`` hand out the chapter's random
    draws; the mapping holds only the sizes.
    """

    def __init__(self, chapter: str, preset: str, values: Mapping[str, Any], seed: int = 0):
        self._chapter = chapter
        self._preset = preset
        self._values = dict(values)
        self._seed = validate_seed(seed)

    @property
    def seed(self) -> int:
        """The book seed this config hands keys out for (``$NTKBOOK_SEED``)."""
        return self._seed

    def key(self, stream: int | str):
        """The JAX PRNG key of random stream ``stream`` (see :func:`derive_key`)."""
        return derive_key(stream, self._seed)

    def rng(self, stream: int | str):
        """A NumPy random generator for stream ``stream`` (see :func:`derive_rng`)."""
        return derive_rng(stream, self._seed)

    @property
    def chapter(self) -> str:
        return self._chapter

    @property
    def preset(self) -> str:
        return self._preset

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(
                f"preset {self._preset!r} of chapter {self._chapter!r} has no setting {key!r}; "
                f"it has: {', '.join(sorted(self._values))}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Config({self._chapter!r}, preset={self._preset!r}, seed={self._seed}: {body})"


# Every chapter defines the same keys in all three presets (a unit test checks).
# Values are plain Python data: ints, floats, tuples, strings.
CHAPTERS: dict[str, dict[str, dict[str, Any]]] = {
    "01_lazy": {
        "ci": dict(
            init_widths=(10, 100, 1000), init_draws=400,
            train_widths=(10, 32, 100, 316), train_nets=(16, 32, 32, 16), train_steps=1000,
            anim_widths=(10, 100, 316), anim_frames=12,
            jac_widths=(32, 100, 316), jac_nets=(32, 32, 32),
            tanh_widths=(10, 100, 1000, 10000), tanh_seeds=10,
            alphas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), alpha_frames=10,
        ),
        "book": dict(
            init_widths=(10, 100, 1000), init_draws=400,
            train_widths=(10, 32, 100, 316, 1000), train_nets=(100, 100, 100, 50, 20), train_steps=1000,
            anim_widths=(10, 100, 1000), anim_frames=25,
            jac_widths=(32, 100, 316, 1000), jac_nets=(32, 32, 24, 12),
            tanh_widths=(10, 32, 100, 316, 1000, 3162, 10000), tanh_seeds=12,
            alphas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0), alpha_frames=20,
        ),
        "paper": dict(
            init_widths=(10, 100, 1000, 4000), init_draws=1000,
            train_widths=(10, 32, 100, 316, 1000, 3162), train_nets=(100, 100, 100, 100, 50, 10), train_steps=2000,
            anim_widths=(10, 100, 1000), anim_frames=40,
            jac_widths=(32, 100, 316, 1000, 3162), jac_nets=(64, 64, 32, 16, 8),
            tanh_widths=(10, 32, 100, 316, 1000, 3162, 10000, 31623), tanh_seeds=20,
            alphas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0), alpha_frames=30,
        ),
    },
    "02_ntk_flow": {
        "ci": dict(
            ntk_n=16, ntk_hidden=(256, 256),
            # relu_nets: 16, as erf (with 8, the ReLU gap exponent's 95 % half-width reached 0.27 and
            # its upper limit was above zero at seed 38)
            flow_widths=(64, 128, 256, 512), flow_nets=16, relu_nets=16, flow_steps=300,
            ellipse_width=100, ellipse_alphas=(0.1, 0.32, 1.0, 3.2, 10.0), ellipse_seeds=3,
            ellipse_steps=300, ellipse_frames=12,
            lin_widths=(64, 256, 1024), lin_steps=200,
            spectral_grid=101, minnorm_width=256, minnorm_steps=1000,
        ),
        "book": dict(
            ntk_n=32, ntk_hidden=(512, 512),
            flow_widths=(64, 128, 256, 512, 1024), flow_nets=16, relu_nets=16, flow_steps=300,
            ellipse_width=100, ellipse_alphas=(0.1, 0.18, 0.32, 0.56, 1.0, 1.8, 3.2, 5.6, 10.0), ellipse_seeds=6,
            ellipse_steps=300, ellipse_frames=25,
            lin_widths=(128, 512, 2048), lin_steps=300,
            spectral_grid=101, minnorm_width=512, minnorm_steps=1000,
        ),
        "paper": dict(
            ntk_n=64, ntk_hidden=(1024, 1024),
            flow_widths=(64, 128, 256, 512, 1024, 2048, 4096), flow_nets=16, relu_nets=16, flow_steps=500,
            ellipse_width=100, ellipse_alphas=(0.1, 0.18, 0.32, 0.56, 1.0, 1.8, 3.2, 5.6, 10.0, 18.0), ellipse_seeds=12,
            ellipse_steps=500, ellipse_frames=40,
            lin_widths=(128, 512, 2048, 4096), lin_steps=500,
            spectral_grid=201, minnorm_width=1024, minnorm_steps=2000,
        ),
    },
    "06_ntk_trace": {
        "ci": dict(
            cost_hidden=(512, 512, 512), cost_n=64, cost_probes=128,
            wide_outputs=(10, 100, 1000), wide_n=64, wide_probes=16, cnn_channels=(64, 64, 64),
            bias_hidden=(256, 256), bias_n=64, bias_probes=1024,
            bias_eps=(0.1, 0.03, 0.01, 0.003, 0.001, 0.0003), f32_eps=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
            train_per_class=100, train_hidden=(256, 256), train_steps=500, train_records=26,
            trace_n=120, kernel_n=60, output_probes=4,
            ablation_hidden=(128, 128), ablation_steps=250, ablation_records=11,
        ),
        "book": dict(
            cost_hidden=(512, 512, 512), cost_n=256, cost_probes=512,
            wide_outputs=(10, 100, 1000), wide_n=128, wide_probes=32, cnn_channels=(64, 64, 64),
            bias_hidden=(256, 256), bias_n=64, bias_probes=1024,
            bias_eps=(0.1, 0.03, 0.01, 0.003, 0.001, 0.0003), f32_eps=(1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5),
            train_per_class=120, train_hidden=(512, 512), train_steps=1200, train_records=41,
            trace_n=240, kernel_n=100, output_probes=8,
            ablation_hidden=(256, 256), ablation_steps=800, ablation_records=21,
        ),
        "paper": dict(
            cost_hidden=(512, 512, 512), cost_n=512, cost_probes=2048,
            wide_outputs=(10, 100, 1000), wide_n=256, wide_probes=64, cnn_channels=(64, 64, 64),
            bias_hidden=(256, 256), bias_n=128, bias_probes=2048,
            bias_eps=(0.1, 0.03, 0.01, 0.003, 0.001, 0.0003), f32_eps=(1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5),
            train_per_class=124, train_hidden=(1024, 1024), train_steps=3000, train_records=61,
            trace_n=400, kernel_n=200, output_probes=16,
            ablation_hidden=(512, 512), ablation_steps=2000, ablation_records=31,
        ),
    },
    "07_trace_margin": {
        "ci": dict(
            classes=(3, 5), per_class=40, width=64, lr=0.5, steps=20000, records=20,
            anim_frames=8,
            ngd_lr=0.1, ngd_steps=30000, ngd_records=10,
        ),
        "book": dict(
            classes=(3, 5), per_class=60, width=64, lr=0.5, steps=100000, records=30,
            anim_frames=15,
            ngd_lr=0.1, ngd_steps=100000, ngd_records=12,
        ),
        "paper": dict(
            classes=(3, 5), per_class=120, width=128, lr=0.5, steps=1000000, records=40,
            anim_frames=20,
            ngd_lr=0.1, ngd_steps=300000, ngd_records=16,
        ),
    },
    "08_grokking": {
        # tf_steps is the transformer's shortest run; it goes on, record by record, until it has run
        # twice as long as its test-accuracy jump took, up to tf_max_steps (the chapter's claim 5).
        "ci": dict(
            p=47, train_fraction=0.5, hidden=(128, 128), lr=3e-3, weight_decay=1.0, steps=4000, records=41,
            trace_n=128, perturb_eps=0.1, perturb_probes=4, acc_rise=0.1, acc_jump=0.9, settle_rtol=0.05,
            tf_p=47, tf_fraction=0.5, tf_d_model=64, tf_heads=4, tf_steps=3000, tf_lr=3e-3, tf_records=31, tf_max_steps=15000,
            digits_train_per_class=20, digits_test_per_class=150, digits_hidden=(200, 200), digits_alpha=8.0,
            digits_lr=1e-2, digits_weight_decay=0.05, digits_steps=8000, digits_records=41, digits_baseline_steps=2000,
            digits_acc_rise=0.2, digits_acc_jump=0.5,
            anim_frames=10,
        ),
        "book": dict(
            p=97, train_fraction=0.4, hidden=(256, 256), lr=1e-3, weight_decay=1.0, steps=6000, records=61,
            trace_n=256, perturb_eps=0.1, perturb_probes=8, acc_rise=0.1, acc_jump=0.9, settle_rtol=0.05,
            tf_p=47, tf_fraction=0.5, tf_d_model=64, tf_heads=4, tf_steps=3000, tf_lr=3e-3, tf_records=31, tf_max_steps=15000,
            digits_train_per_class=20, digits_test_per_class=150, digits_hidden=(200, 200), digits_alpha=8.0,
            digits_lr=1e-2, digits_weight_decay=0.03, digits_steps=12000, digits_records=61, digits_baseline_steps=3000,
            digits_acc_rise=0.2, digits_acc_jump=0.5,
            anim_frames=20,
        ),
        "paper": dict(
            p=113, train_fraction=0.3, hidden=(512, 512), lr=1e-3, weight_decay=1.0, steps=20000, records=81,
            trace_n=512, perturb_eps=0.1, perturb_probes=16, acc_rise=0.1, acc_jump=0.9, settle_rtol=0.05,
            tf_p=113, tf_fraction=0.3, tf_d_model=128, tf_heads=4, tf_steps=20000, tf_lr=1e-3, tf_records=81, tf_max_steps=60000,
            digits_train_per_class=20, digits_test_per_class=150, digits_hidden=(200, 200), digits_alpha=8.0,
            digits_lr=1e-2, digits_weight_decay=0.02, digits_steps=20000, digits_records=81, digits_baseline_steps=4000,
            digits_acc_rise=0.2, digits_acc_jump=0.5,
            anim_frames=30,
        ),
    },
    "09_semisup": {
        "ci": dict(
            n_labelled=5, n_test=50, hidden=(256, 256), lr=0.1, weight_decay=5e-4, batch_size=32, mu=7,
            threshold=0.95, taus=(0.9, 0.99, 0.999), steps=1500, records=16, n_probe=150,
            sweep_labelled=(2, 10), sweep_steps=400, sweep_records=7,
        ),
        "book": dict(
            n_labelled=5, n_test=50, hidden=(256, 256), lr=0.1, weight_decay=5e-4, batch_size=32, mu=7,
            threshold=0.95, taus=(0.9, 0.99, 0.999), steps=4000, records=25, n_probe=300,
            sweep_labelled=(2, 10, 40), sweep_steps=2500, sweep_records=16,
        ),
        "paper": dict(
            n_labelled=5, n_test=50, hidden=(512, 512), lr=0.1, weight_decay=5e-4, batch_size=32, mu=7,
            threshold=0.95, taus=(0.9, 0.99, 0.999), steps=12000, records=35, n_probe=500,
            sweep_labelled=(2, 10, 40), sweep_steps=6000, sweep_records=20,
        ),
    },
    "10_scaling_laws": {
        "ci": dict(
            dim=16, width=128, learning_rate=2.0, momentum=0.9, steps=1000, n_records=30,
            ns=(25, 50, 100, 200, 400, 800), repeats=3, n_val=500, n_test=2000,
            digits_ns=(10, 20, 40, 80, 160, 320), digits_repeats=3, digits_val=300, digits_test=600,
            digits_learning_rate=1.0,
            sweep_n=256, sweep_widths=(16, 32, 64, 128, 256, 512, 1024), sweep_network_max=256, sweep_repeats=5,
            after_repeats=2, after_n0=100, kt_n=400, kt_points=30, grid=41,
        ),
        "book": dict(
            dim=16, width=128, learning_rate=2.0, momentum=0.9, steps=1000, n_records=30,
            ns=(25, 50, 100, 200, 400, 800, 1600, 3200), repeats=4, n_val=1000, n_test=4000,
            digits_ns=(10, 20, 40, 80, 160, 320, 640), digits_repeats=4, digits_val=300, digits_test=600,
            digits_learning_rate=1.0,
            sweep_n=512, sweep_widths=(16, 32, 64, 128, 256, 512, 1024, 2048), sweep_network_max=512,
            # 5 repeats as at ci: claim 5's power rule (chapter notes) was applied to ci alone, which left
            # book's alignment trend with 18 networks (6 widths x 3) against ci's 25 (3 until 2026-12-06).
            sweep_repeats=5,
            after_repeats=3, after_n0=200, kt_n=1600, kt_points=30, grid=61,
        ),
        "paper": dict(
            dim=16, width=128, learning_rate=2.0, momentum=0.9, steps=2000, n_records=40,
            ns=(25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800), repeats=8, n_val=2000, n_test=10000,
            digits_ns=(10, 20, 40, 80, 160, 320, 640), digits_repeats=10, digits_val=300, digits_test=600,
            digits_learning_rate=1.0,
            sweep_n=1024, sweep_widths=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192), sweep_network_max=4096,
            sweep_repeats=5,
            after_repeats=5, after_n0=400, kt_n=6400, kt_points=20, grid=81,
        ),
    },
    "13_one_step": {
        "ci": dict(
            digits_train_per_class=20, digits_probe_per_class=30, width=256, pretrain_steps=100, pretrain_lr=0.5,
            eta=0.1, eta_min=1e-4, eta_max=1.0, eta_points=9,
            toy_n=300, toy_n_test=2000, toy_dim=30, toy_width=256, toy_steps=3000, toy_lr=0.1, toy_batch=32,
            toy_records=60, toy_checkpoints=6, toy_paths=4, toy_frames=20,
            squeeze_logit_lr=0.5, squeeze_logit_steps=10,
            squeeze_contexts=30, squeeze_steps=30, squeeze_lr=0.02,
            dpo_pairs=20, dpo_steps=60, dpo_lr=0.02, dpo_beta=1.0,
            student_steps=2000, student_lr=1.0, student_repeats=20,
        ),
        "book": dict(
            digits_train_per_class=30, digits_probe_per_class=30, width=512, pretrain_steps=200, pretrain_lr=0.5,
            eta=0.1, eta_min=1e-4, eta_max=1.0, eta_points=13,
            toy_n=300, toy_n_test=2000, toy_dim=30, toy_width=512, toy_steps=4000, toy_lr=0.1, toy_batch=32,
            toy_records=120, toy_checkpoints=8, toy_paths=4, toy_frames=40,
            squeeze_logit_lr=0.5, squeeze_logit_steps=10,
            squeeze_contexts=100, squeeze_steps=40, squeeze_lr=0.02,
            dpo_pairs=60, dpo_steps=100, dpo_lr=0.02, dpo_beta=1.0,
            student_steps=3000, student_lr=1.0, student_repeats=40,
        ),
        "paper": dict(
            digits_train_per_class=60, digits_probe_per_class=60, width=1024, pretrain_steps=400, pretrain_lr=0.5,
            eta=0.1, eta_min=1e-5, eta_max=1.0, eta_points=16,
            toy_n=600, toy_n_test=4000, toy_dim=30, toy_width=1024, toy_steps=6000, toy_lr=0.1, toy_batch=32,
            toy_records=200, toy_checkpoints=10, toy_paths=4, toy_frames=60,
            squeeze_logit_lr=0.5, squeeze_logit_steps=10,
            squeeze_contexts=300, squeeze_steps=60, squeeze_lr=0.02,
            dpo_pairs=100, dpo_steps=150, dpo_lr=0.02, dpo_beta=1.0,
            student_steps=4000, student_lr=1.0, student_repeats=100,
        ),
    },
    "14_pseudo_ntk": {
        "ci": dict(
            n_train_per_class=5, n_test_per_class=10, heat_inputs=5,
            widths=(64, 128, 256, 512, 1024), seeds=5, show_widths=(64, 256, 1024), ridges=(0.0, 1.0, 10.0),
            cost_n=100, cost_width=256, cost_classes=(1, 2, 5, 10, 20), cost_repeats=3,
            after_n=40, train_steps=300,
        ),
        "book": dict(
            n_train_per_class=10, n_test_per_class=20, heat_inputs=6,
            widths=(64, 128, 256, 512, 1024, 2048, 4096), seeds=5, show_widths=(64, 512, 4096),
            ridges=(0.0, 1.0, 10.0),
            cost_n=200, cost_width=512, cost_classes=(1, 2, 5, 10, 20, 50), cost_repeats=5,
            after_n=50, train_steps=1000,
        ),
        "paper": dict(
            n_train_per_class=20, n_test_per_class=40, heat_inputs=6,
            widths=(64, 128, 256, 512, 1024, 2048, 4096, 8192), seeds=5, show_widths=(64, 512, 8192),
            ridges=(0.0, 1.0, 10.0),
            # cost_n 200 as at book: at 400 the k = 100 eNTK alone is (400, 400, 100, 100) float32 = 6.0 GiB.
            # The rule in _RULES budgets that output only, not XLA's temporaries (the chapter measures those).
            cost_n=200, cost_width=1024, cost_classes=(1, 2, 5, 10, 20, 50, 100), cost_repeats=5,
            after_n=100, train_steps=2000,
        ),
    },
    "15_lookahead": {
        # repeats: 20 at ci and book (8 before) give the paired t-test of look-ahead's
        # area-under-curve gain over random (claim 3a, t_0.99,19 = 2.54) power; 8 failed
        # ci seeds 9, 10, 11 (see the chapter's Reproducibility notes).
        "ci": dict(
            pool_per_class=20, test_per_class=20, width=256, lr=5.0, momentum=0.9, train_steps=200,
            retrain_labelled=20, retrain_candidates=40, retrain_steps=200, bootstrap=2000,
            rank_start=20, rank_updates=50, rank_sizes=(25, 50, 100, 199),
            initial=10, rounds=4, per_round=10, repeats=20,
        ),
        "book": dict(
            pool_per_class=50, test_per_class=30, width=256, lr=5.0, momentum=0.9, train_steps=300,
            retrain_labelled=30, retrain_candidates=40, retrain_steps=300, bootstrap=2000,
            rank_start=30, rank_updates=100, rank_sizes=(50, 100, 200, 400),
            initial=10, rounds=8, per_round=10, repeats=20,
        ),
        "paper": dict(
            pool_per_class=100, test_per_class=50, width=512, lr=5.0, momentum=0.9, train_steps=500,
            retrain_labelled=50, retrain_candidates=60, retrain_steps=500, bootstrap=2000,
            rank_start=50, rank_updates=200, rank_sizes=(50, 100, 200, 400, 800),
            initial=10, rounds=10, per_round=20, repeats=20,
        ),
    },
    "A_performance": {
        # The live measurement of appendix A (seconds at ci): an MLP 64-width-width-classes
        # on n random inputs, a rank-one update against a fresh solve at solve_n, and the update's
        # time from update_n to 2 * update_n (matrices of 128 MB and 512 MB, beyond any CPU cache).
        "ci": dict(width=128, classes=10, n=32, solve_n=2000, update_n=4000, repeats=5),
        "book": dict(width=128, classes=10, n=64, solve_n=2000, update_n=4000, repeats=7),
        "paper": dict(width=256, classes=10, n=128, solve_n=3000, update_n=4000, repeats=9),
    },
    "11_ntk_alignment": {
        "ci": dict(per_class=10, width=64, depth=3, steps=3000, lr=0.3, records=30, frames=8, seeds=2, linear_steps=60,
               sigma_w2=(1.0, 2.0, 2.2)),
        "book": dict(per_class=20, width=128, depth=4, steps=3000, lr=0.3, records=40, frames=10, seeds=3, linear_steps=80,
                 sigma_w2=(1.0, 2.0, 2.2)),
        "paper": dict(per_class=30, width=256, depth=6, steps=6000, lr=0.3, records=50, frames=16, seeds=5, linear_steps=100,
                  sigma_w2=(1.0, 2.0, 2.2)),
    },
    "12_collapse_ode": {
        "ci": dict(classes=4, per_class=5, feature_dim=8, t_end=300.0, n_times=40, tols=(1e-5, 1e-7, 1e-9),
                   misalign=(0.0, 1.0, 2.0, 4.0), net_per_class=10, width=64, depth=2, steps=2000, lr=0.3,
                   records=12, seeds=2, weight_decay=(0.0, 5e-4, 1.5e-3)),
        "book": dict(classes=5, per_class=6, feature_dim=10, t_end=300.0, n_times=60, tols=(1e-5, 1e-7, 1e-9),
                     misalign=(0.0, 1.0, 2.0, 4.0), net_per_class=20, width=128, depth=2, steps=4000, lr=0.3,
                     records=16, seeds=3, weight_decay=(0.0, 5e-4, 1.5e-3)),
        "paper": dict(classes=10, per_class=10, feature_dim=20, t_end=300.0, n_times=80, tols=(1e-5, 1e-7, 1e-9),
                      misalign=(0.0, 1.0, 2.0, 4.0), net_per_class=30, width=256, depth=3, steps=8000, lr=0.3,
                      records=20, seeds=5, weight_decay=(0.0, 5e-4, 1.5e-3)),
    },
    "03_infinite_width": {
        "ci": dict(
            arccos_depths=(1, 2, 3, 4, 5), arccos_n=16,
            conv_widths=(32, 64, 128, 256, 512, 1024), conv_seeds=16, conv_n=12,
            ens_width=256, ens_nets=64, ens_steps=2000, ens_frames=10,
            digits_train=20, digits_test=30, digits_width=512, digits_steps=300,
        ),
        "book": dict(
            arccos_depths=(1, 2, 3, 4, 5, 6, 7, 8), arccos_n=32,
            conv_widths=(32, 64, 128, 256, 512, 1024, 2048), conv_seeds=16, conv_n=16,
            ens_width=512, ens_nets=64, ens_steps=2000, ens_frames=20,
            digits_train=30, digits_test=50, digits_width=512, digits_steps=300,
        ),
        "paper": dict(
            arccos_depths=(1, 2, 3, 4, 5, 6, 7, 8, 10, 12), arccos_n=64,
            conv_widths=(64, 128, 256, 512, 1024, 2048, 4096), conv_seeds=20, conv_n=32,
            ens_width=1024, ens_nets=64, ens_steps=3000, ens_frames=30,
            digits_train=100, digits_test=70, digits_width=1024, digits_steps=1000,
        ),
    },
    "04_signal_propagation": {
        "ci": dict(
            mc_width=400, mc_depth=20, mc_seeds=256, grid_n=30, xi_n=12, anim_frames=10, traj_depth=30,
            check_depth=5, kappa_depth=100, cond_S=10, ov_S=6, ov_check_depths=(2, 4, 8),
        ),
        "book": dict(
            mc_width=700, mc_depth=30, mc_seeds=256, grid_n=60, xi_n=25, anim_frames=25, traj_depth=40,
            check_depth=8, kappa_depth=100, cond_S=10, ov_S=6, ov_check_depths=(2, 4, 8, 16),
        ),
        "paper": dict(
            mc_width=2000, mc_depth=50, mc_seeds=512, grid_n=100, xi_n=40, anim_frames=40, traj_depth=60,
            check_depth=12, kappa_depth=200, cond_S=10, ov_S=10, ov_check_depths=(2, 4, 8, 16, 32),
        ),
    },
    "05_finite_ntk": {
        # n_samples: 2000 at ci as at book (1000 before): at ci seed 8 the ordered phase's deepest
        # estimate read 1.15 +- 0.042 (Thm 3.2: 1.11; its other depths had errors of about 0.008).
        # alpha_samples: 4000 at ci and book (2000 and 3000 before): in a numpy re-simulation the gamma_0
        # slope test (claim 5) failed in 1.0 % of ci runs at 2000 draws, in 0.02 % at 4000.
        "ci": dict(
            width=20, depths=(2, 3, 4, 5, 6), n_samples=2000, n_boot=300, w_ordered=1.0, w_chaotic=3.0,
            anim_frames=10, theory_depth=20, lams=(0.1, 0.25, 0.5, 1.0), alphas=(0.1, 0.5, 2.0), alpha_depth=5,
            alpha_samples=4000, eq13_depths=(2, 4, 6), heat_depths=(2, 4, 6),
            heat_w=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0), heat_b_vars=(0.0, 1.0), heat_samples=600,
            fig2_widths=(20, 50, 100, 200),
            off_w=(1.0, 1.5, 1.8), off_cosines=(0.0, 0.5), off_depths=(2, 4, 8, 12), off_samples=2000,
            step_depths=(2, 4, 6),
            step_samples=1000, grid_width=32, grid_per_class=4, grid_steps=1000, grid_records=(10, 100, 1000),
            grid_depths=(2, 4, 8, 12), grid_seeds=3, grid_w_relu=(1.0, 1.5, 2.0, 2.5, 3.0),
            grid_w_tanh=(0.6, 1.0, 1.4, 1.8, 2.5, 3.5), grid_b_tanh=0.05,
        ),
        "book": dict(
            width=40, depths=(2, 4, 6, 8, 10, 12), n_samples=2000, n_boot=500, w_ordered=1.0, w_chaotic=3.0,
            anim_frames=25, theory_depth=40, lams=(0.1, 0.25, 0.5, 1.0), alphas=(0.1, 0.25, 0.5, 1.0, 2.0),
            alpha_depth=10, alpha_samples=4000, eq13_depths=(2, 4, 8, 12), heat_depths=(2, 4, 6, 8, 10, 12),
            heat_w=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0), heat_b_vars=(0.0, 1.0), heat_samples=600,
            fig2_widths=(20, 50, 100, 200),
            off_w=(1.0, 1.5, 1.8), off_cosines=(0.0, 0.5), off_depths=(2, 4, 8, 12, 16, 24), off_samples=2000,
            step_depths=(2, 4, 8, 12), step_samples=2000, grid_width=64, grid_per_class=8, grid_steps=3000,
            grid_records=(10, 100, 1000, 3000), grid_depths=(2, 4, 8, 12), grid_seeds=3,
            grid_w_relu=(1.0, 1.5, 2.0, 2.5, 3.0), grid_w_tanh=(0.6, 1.0, 1.4, 1.8, 2.5, 3.5), grid_b_tanh=0.05,
        ),
        "paper": dict(
            width=100, depths=(2, 5, 10, 15, 20, 25, 30), n_samples=4000, n_boot=1000, w_ordered=1.0,
            w_chaotic=3.0, anim_frames=40, theory_depth=100, lams=(0.1, 0.25, 0.5, 1.0),
            alphas=(0.1, 0.25, 0.5, 1.0, 2.0), alpha_depth=25, alpha_samples=8000, eq13_depths=(2, 5, 10, 20, 30),
            heat_depths=(2, 5, 10, 15, 20, 25, 30), heat_w=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
            heat_b_vars=(0.0, 0.3, 1.0), heat_samples=2000, fig2_widths=(20, 50, 100, 200, 500),
            off_w=(1.0, 1.5, 1.8), off_cosines=(0.0, 0.5),
            off_depths=(2, 4, 8, 16, 32, 48), off_samples=4000, step_depths=(2, 5, 10, 20, 30), step_samples=4000, grid_width=256,
            grid_per_class=13, grid_steps=10000, grid_records=(10, 100, 1000, 10000), grid_depths=(2, 4, 8, 12, 16, 20),
            grid_seeds=3, grid_w_relu=(1.0, 1.5, 2.0, 2.5, 3.0), grid_w_tanh=(0.6, 1.0, 1.4, 1.8, 2.5, 3.5),
            grid_b_tanh=0.05,
        ),
    },
}


# ----------------------------------------------------------- feasibility of every preset
#: Images in the smallest class of scikit-learn's digits (digit 8); ``tests/test_presets.py``
#: checks this against the data. Kept here as a number: reading a preset must not load data.
DIGITS_MIN_PER_CLASS = 174
#: Even and odd digits in the whole set (891 even, 906 odd).
DIGITS_PARITY = {"even": 891, "odd": 906}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _scalars(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, (tuple, list)):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return [(name, value)]


def _check_field(name: str, value: Any) -> str | None:
    """Every size is a positive int; every real is finite and >= 0; every tuple is non-empty."""
    import math

    if isinstance(value, (tuple, list)) and not value:
        return f"{name} is empty"
    for label, v in _scalars(name, value):
        if isinstance(v, bool) or isinstance(v, str):
            continue
        if _is_int(v):
            if v < 1:
                return f"{label} = {v} is not a positive size"
        elif isinstance(v, float):
            if not math.isfinite(v) or v < 0:
                return f"{label} = {v} is not a finite non-negative number"
        else:
            return f"{label} = {v!r} is not plain data (int, float, str, bool or a tuple of them)"
    return None


def _need(ok: bool, message: str) -> str | None:
    return None if ok else message


def _records(v: dict, steps: str, records: str | int) -> str | None:
    """``record_schedule(steps, records)`` needs ``records >= 2`` distinct points in ``[0, steps]``."""
    n = records if _is_int(records) else v[records]
    label = records if isinstance(records, str) else f"the {records} record points"
    return _need(2 <= n <= v[steps] + 1, f"{label} = {n} record points do not fit {steps} = {v[steps]} "
                                           f"(need 2 <= records <= steps + 1)")


def _digits(v: dict, *parts: str | int) -> str | None:
    """Per-class draws from the digits: their sum must not exceed the smallest class (174)."""
    total = sum(p if _is_int(p) else v[p] for p in parts)
    names = " + ".join(p if isinstance(p, str) else str(p) for p in parts)
    return _need(total <= DIGITS_MIN_PER_CLASS, f"{names} = {total} images per class; the smallest digits class "
                                                f"has {DIGITS_MIN_PER_CLASS}")


def _parity(v: dict, ns: str, val: str, test: str) -> str | None:
    total = max(v[ns]) + v[val] + v[test]
    return _need((total + 1) // 2 <= DIGITS_PARITY["even"] and total // 2 <= DIGITS_PARITY["odd"],
                 f"max({ns}) + {val} + {test} = {total} digits; the parity split has {DIGITS_PARITY['even']} even "
                 f"and {DIGITS_PARITY['odd']} odd")


def _within(v: dict, sub: str, steps: str) -> str | None:
    return _need(all(1 <= r <= v[steps] for r in v[sub]), f"{sub} = {v[sub]} must lie in [1, {steps} = {v[steps]}]")


def _subset(v: dict, sub: str, of: str) -> str | None:
    return _need(set(v[sub]) <= set(v[of]), f"{sub} = {v[sub]} must be a subset of {of} = {v[of]}")


def _increasing(v: dict, name: str) -> str | None:
    x = v[name]
    return _need(all(a < b for a, b in zip(x, x[1:])), f"{name} = {x} must be strictly increasing")


#: What each chapter's fields imply, beyond positive sizes: record points that fit their
#: steps, data sizes the data sets have, sub-lists of lists, orderings.
_RULES: dict[str, list] = {
    "01_lazy": [lambda v: _records(v, "train_steps", "anim_frames"), lambda v: _increasing(v, "train_widths"),
                lambda v: _need(len(v["train_nets"]) == len(v["train_widths"]),
                                "train_nets must give one count per entry of train_widths"),
                lambda v: _need(len(v["jac_nets"]) == len(v["jac_widths"]),
                                "jac_nets must give one count per entry of jac_widths")],
    "02_ntk_flow": [lambda v: _records(v, "ellipse_steps", "ellipse_frames"), lambda v: _records(v, "lin_steps", 12),
                    lambda v: _digits(v, 20, 50), lambda v: _increasing(v, "flow_widths")],
    "03_infinite_width": [lambda v: _records(v, "ens_steps", "ens_frames"), lambda v: _records(v, "digits_steps", 10),
                          lambda v: _digits(v, "digits_train", "digits_test"), lambda v: _increasing(v, "conv_widths")],
    "04_signal_propagation": [
        lambda v: _need(v["check_depth"] <= v["mc_depth"], f"check_depth = {v['check_depth']} exceeds mc_depth = "
                                                           f"{v['mc_depth']}"),
        lambda v: _need(max(v["ov_check_depths"]) <= v["mc_depth"],
                        f"ov_check_depths = {v['ov_check_depths']} exceed mc_depth = {v['mc_depth']}")],
    "05_finite_ntk": [lambda v: _digits(v, "grid_per_class", 1), lambda v: _within(v, "grid_records", "grid_steps"),
                      lambda v: _increasing(v, "grid_records"),
                      lambda v: _need(v["grid_seeds"] >= 3 and v["grid_seeds"] % 2 == 1,
                                      f"grid_seeds = {v['grid_seeds']} must be odd and >= 3: a cell is summarised by "
                                      "its median network, which must be one network and robust to one odd draw"),
                      lambda v: _need(v["w_ordered"] < 2.0 < v["w_chaotic"],
                                      "w_ordered must be below and w_chaotic above ReLU's edge of chaos (2)")],
    "06_ntk_trace": [lambda v: _digits(v, "train_per_class", 50), lambda v: _records(v, "train_steps", "train_records"),
                     lambda v: _records(v, "ablation_steps", "ablation_records"),
                     lambda v: _need(v["trace_n"] <= 10 * (v["train_per_class"] + 50),
                                     "trace_n exceeds the images of the split")],
    "07_trace_margin": [lambda v: _digits(v, "per_class", 50), lambda v: _records(v, "steps", "records"),
                        lambda v: _need(len(set(v["classes"])) == len(v["classes"]) == 2
                                        and all(0 <= c <= 9 for c in v["classes"]),
                                        f"classes = {v['classes']} must be two distinct digits"),
                        lambda v: _need(v["anim_frames"] <= v["records"], "anim_frames exceeds records")],
    "08_grokking": [lambda v: _records(v, "steps", "records"), lambda v: _records(v, "tf_steps", "tf_records"),
                    lambda v: _need(v["tf_steps"] % (v["tf_records"] - 1) == 0
                                    and v["tf_max_steps"] >= v["tf_steps"]
                                    and v["tf_max_steps"] % (v["tf_steps"] // (v["tf_records"] - 1)) == 0,
                                    "tf_records - 1 must divide tf_steps, and tf_max_steps (the cap of the "
                                    "transformer's run) must be >= tf_steps and a multiple of the record spacing"),
                    lambda v: _records(v, "digits_steps", "digits_records"),
                    lambda v: _records(v, "digits_baseline_steps", 21),
                    lambda v: _digits(v, "digits_train_per_class", "digits_test_per_class"),
                    lambda v: _need(0 < v["train_fraction"] < 1 and 0 < v["tf_fraction"] < 1,
                                    "train_fraction and tf_fraction must lie in (0, 1)"),
                    lambda v: _need(v["p"] >= 2 and v["tf_p"] >= 2, "p and tf_p must be moduli >= 2"),
                    lambda v: _need(v["tf_d_model"] % v["tf_heads"] == 0, "tf_d_model must be a multiple of tf_heads"),
                    lambda v: _need(v["acc_rise"] < v["acc_jump"] <= 1 and v["digits_acc_rise"] < v["digits_acc_jump"]
                                    <= 1, "acc_rise < acc_jump <= 1 (and the digits_ pair) are accuracies")],
    "09_semisup": [lambda v: _records(v, "steps", "records"), lambda v: _records(v, "sweep_steps", "sweep_records"),
                   lambda v: _digits(v, "n_labelled", "n_test"), lambda v: _digits(v, max(v["sweep_labelled"]), "n_test"),
                   lambda v: _need(all(0 < t < 1 for t in v["taus"]), "taus must lie in (0, 1)"),
                   lambda v: _need(0 < v["threshold"] <= 1, "threshold must lie in (0, 1]"),
                   lambda v: _need(v["batch_size"] <= 10 * v["n_labelled"],
                                   f"batch_size = {v['batch_size']} exceeds the 10 * n_labelled labelled images"),
                   lambda v: _need(v["mu"] * v["batch_size"] + v["n_probe"] <= 1797 - 10 * (v["n_labelled"] + v["n_test"]),
                                   "mu * batch_size and n_probe exceed the unlabelled images")],
    "10_scaling_laws": [lambda v: _records(v, "steps", "n_records"), lambda v: _increasing(v, "ns"),
                        lambda v: _increasing(v, "digits_ns"), lambda v: _increasing(v, "sweep_widths"),
                        lambda v: _parity(v, "digits_ns", "digits_val", "digits_test"),
                        lambda v: _need(v["momentum"] < 1, "momentum must lie in [0, 1)"),
                        lambda v: _need(v["after_n0"] <= max(v["ns"]), "after_n0 exceeds max(ns)")],
    "11_ntk_alignment": [lambda v: _records(v, "steps", "records"), lambda v: _digits(v, "per_class", 10),
                         lambda v: _need(v["frames"] <= v["records"], "frames exceeds records")],
    "12_collapse_ode": [lambda v: _records(v, "steps", "records"), lambda v: _digits(v, "net_per_class", 10),
                        lambda v: _need(2 <= v["classes"] <= 10, "classes must lie in [2, 10]"),
                        lambda v: _need(v["per_class"] >= 2, "per_class must be >= 2"),
                        lambda v: _need(v["feature_dim"] >= v["classes"] + 1, "feature_dim must be >= classes + 1"),
                        lambda v: _need(v["n_times"] >= 2, "n_times must be >= 2"),
                        lambda v: _need(v["weight_decay"][0] == 0.0 and list(v["weight_decay"]) == sorted(v["weight_decay"]),
                                        "weight_decay must start at 0.0 and increase")],
    "13_one_step": [lambda v: _records(v, "toy_steps", "toy_records"), lambda v: _records(v, "dpo_steps", 21),
                    lambda v: _digits(v, "digits_train_per_class", "digits_probe_per_class"),
                    lambda v: _need(v["eta_min"] < v["eta"] < v["eta_max"], "eta must lie in (eta_min, eta_max)"),
                    lambda v: _need(v["eta_points"] >= 2, "eta_points must be >= 2"),
                    lambda v: _need(v["toy_checkpoints"] <= v["toy_records"]
                                    and v["toy_frames"] <= v["toy_records"],
                                    "toy_checkpoints and toy_frames must not exceed toy_records"),
                    lambda v: _need(v["toy_batch"] <= v["toy_n"], "toy_batch exceeds toy_n")],
    "14_pseudo_ntk": [lambda v: _digits(v, "n_train_per_class", "n_test_per_class"),
                      lambda v: _subset(v, "show_widths", "widths"), lambda v: _increasing(v, "widths"),
                      lambda v: _need(v["heat_inputs"] <= 10 * v["n_train_per_class"], "heat_inputs exceeds the images"),
                      lambda v: _need(4 * v["cost_n"] ** 2 * max(v["cost_classes"]) ** 2 <= 2**31,
                                      f"cost_n = {v['cost_n']} and max(cost_classes) = {max(v['cost_classes'])} give "
                                      f"a float32 eNTK of {4 * v['cost_n'] ** 2 * max(v['cost_classes']) ** 2 / 2**30:.1f} "
                                      "GiB in the cost section, over its 2 GiB budget")],
    "15_lookahead": [lambda v: _digits(v, "pool_per_class", "test_per_class"),
                     lambda v: _need(max(v["rank_sizes"]) <= 10 * v["pool_per_class"],
                                     f"rank_sizes = {v['rank_sizes']} exceed the pool of 10 * pool_per_class images"),
                     lambda v: _need(v["initial"] + v["rounds"] * v["per_round"] <= 10 * v["pool_per_class"],
                                     "initial + rounds * per_round exceeds the pool"),
                     lambda v: _need(v["retrain_labelled"] + v["retrain_candidates"] <= 10 * v["pool_per_class"],
                                     "retrain_labelled + retrain_candidates exceeds the pool"),
                     lambda v: _need(v["momentum"] < 1, "momentum must lie in [0, 1)")],
}


def check_values(chapter: str, preset: str, values: Mapping[str, Any]) -> None:
    """Refuse a preset that cannot run, before any work: the message names chapter, preset and field.

    Checks every field (sizes are positive ints, reals finite and >= 0, tuples non-empty)
    and the chapter's rules (:data:`_RULES`): record points that fit their steps, data
    sizes the data sets have (digits per class <= 174), sub-lists, orderings.

    Raises:
        ValueError: the first infeasible field.
    """
    for name, value in values.items():
        problem = _check_field(name, value)
        if problem:
            raise ValueError(f"preset {preset!r} of chapter {chapter!r}: {problem}")
    for rule in _RULES.get(chapter, ()):
        try:
            problem = rule(values)
        except KeyError as err:
            raise ValueError(f"preset {preset!r} of chapter {chapter!r} has no field {err}") from None
        if problem:
            raise ValueError(f"preset {preset!r} of chapter {chapter!r}: {problem}")


def chapters() -> tuple[str, ...]:
    """Names of the chapters that have presets."""
    return tuple(CHAPTERS)


def config(chapter: str, preset: str | None = None, seed_value: int | None = None) -> Config:
    """Return the sizes of ``chapter`` at ``preset`` and the key source for the book seed.

    Args:
        chapter: chapter key such as ``"01_lazy"``.
        preset: ``"ci"``, ``"book"`` or ``"paper"``; ``None`` reads ``$NTKBOOK_PRESET``.
        seed_value: the book seed; ``None`` reads ``$NTKBOOK_SEED`` (default 0).

    Raises:
        ValueError: unknown chapter, preset or an invalid seed, or a preset that cannot
            run (:func:`check_values`: the message names the field).
    """
    name = current() if preset is None else validate(preset)
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; expected one of {', '.join(CHAPTERS)}")
    s = seed() if seed_value is None else validate_seed(seed_value)
    check_values(chapter, name, CHAPTERS[chapter][name])
    return Config(chapter, name, CHAPTERS[chapter][name], s)
