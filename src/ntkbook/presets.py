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
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

ENV_VAR = "NTKBOOK_PRESET"
DEFAULT = "book"
NAMES: tuple[str, ...] = ("ci", "book", "paper")


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


class Config(Mapping[str, Any]):
    """A chapter's sizes for one preset: a read-only mapping with attribute access."""

    def __init__(self, chapter: str, preset: str, values: Mapping[str, Any]):
        self._chapter = chapter
        self._preset = preset
        self._values = dict(values)

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
        return f"Config({self._chapter!r}, preset={self._preset!r}: {body})"


# Every chapter defines the same keys in all three presets (a unit test checks).
# Values are plain Python data: ints, floats, tuples, strings.
CHAPTERS: dict[str, dict[str, dict[str, Any]]] = {
    "01_lazy": {
        "ci": dict(
            init_widths=(10, 100, 1000), init_draws=400,
            train_widths=(10, 32, 100, 316), train_nets=(16, 16, 16, 8), train_steps=1000,
            anim_widths=(10, 100, 316), anim_frames=12,
            tanh_widths=(10, 100, 1000, 10000), tanh_seeds=3,
            alphas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), alpha_frames=10,
        ),
        "book": dict(
            init_widths=(10, 100, 1000), init_draws=400,
            train_widths=(10, 32, 100, 316, 1000), train_nets=(100, 100, 100, 50, 20), train_steps=1000,
            anim_widths=(10, 100, 1000), anim_frames=25,
            tanh_widths=(10, 32, 100, 316, 1000, 3162, 10000), tanh_seeds=8,
            alphas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0), alpha_frames=20,
        ),
        "paper": dict(
            init_widths=(10, 100, 1000, 4000), init_draws=1000,
            train_widths=(10, 32, 100, 316, 1000, 3162), train_nets=(100, 100, 100, 100, 50, 10), train_steps=2000,
            anim_widths=(10, 100, 1000), anim_frames=40,
            tanh_widths=(10, 32, 100, 316, 1000, 3162, 10000, 31623), tanh_seeds=20,
            alphas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0), alpha_frames=30,
        ),
    },
    "02_ntk_flow": {
        "ci": dict(
            ntk_n=16, ntk_hidden=(256, 256),
            flow_widths=(64, 128, 256, 512), flow_nets=4, flow_steps=300,
            ellipse_width=100, ellipse_alphas=(0.1, 0.32, 1.0, 3.2, 10.0), ellipse_seeds=3,
            ellipse_steps=300, ellipse_frames=12,
            lin_widths=(64, 256, 1024), lin_steps=200,
        ),
        "book": dict(
            ntk_n=32, ntk_hidden=(512, 512),
            flow_widths=(64, 128, 256, 512, 1024, 2048), flow_nets=8, flow_steps=300,
            ellipse_width=100, ellipse_alphas=(0.1, 0.18, 0.32, 0.56, 1.0, 1.8, 3.2, 5.6, 10.0), ellipse_seeds=6,
            ellipse_steps=300, ellipse_frames=25,
            lin_widths=(128, 512, 2048), lin_steps=300,
        ),
        "paper": dict(
            ntk_n=64, ntk_hidden=(1024, 1024),
            flow_widths=(64, 128, 256, 512, 1024, 2048, 4096), flow_nets=16, flow_steps=500,
            ellipse_width=100, ellipse_alphas=(0.1, 0.18, 0.32, 0.56, 1.0, 1.8, 3.2, 5.6, 10.0, 18.0), ellipse_seeds=12,
            ellipse_steps=500, ellipse_frames=40,
            lin_widths=(128, 512, 2048, 4096), lin_steps=500,
        ),
    },
    "06_ntk_trace": {
        "ci": dict(
            cost_hidden=(512, 512, 512), cost_n=64, cost_probes=128,
            wide_outputs=(10, 100, 1000), wide_n=64, wide_probes=16, cnn_channels=(64, 64, 64),
            bias_hidden=(256, 256), bias_n=64, bias_probes=128,
            bias_eps=(0.1, 0.03, 0.01, 0.003, 0.001, 0.0003), f32_eps=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
            train_per_class=100, train_hidden=(256, 256), train_steps=500, train_records=26,
            trace_n=120, kernel_n=60, output_probes=4,
            ablation_hidden=(128, 128), ablation_steps=250, ablation_records=11,
        ),
        "book": dict(
            cost_hidden=(512, 512, 512), cost_n=256, cost_probes=512,
            wide_outputs=(10, 100, 1000), wide_n=128, wide_probes=32, cnn_channels=(64, 64, 64),
            bias_hidden=(256, 256), bias_n=64, bias_probes=256,
            bias_eps=(0.1, 0.03, 0.01, 0.003, 0.001, 0.0003), f32_eps=(1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5),
            train_per_class=120, train_hidden=(512, 512), train_steps=1200, train_records=41,
            trace_n=240, kernel_n=100, output_probes=8,
            ablation_hidden=(256, 256), ablation_steps=800, ablation_records=21,
        ),
        "paper": dict(
            cost_hidden=(512, 512, 512), cost_n=512, cost_probes=2048,
            wide_outputs=(10, 100, 1000), wide_n=256, wide_probes=64, cnn_channels=(64, 64, 64),
            bias_hidden=(256, 256), bias_n=128, bias_probes=1024,
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
        ),
        "book": dict(
            classes=(3, 5), per_class=60, width=64, lr=0.5, steps=100000, records=30,
            anim_frames=15,
        ),
        "paper": dict(
            classes=(3, 5), per_class=120, width=128, lr=0.5, steps=1000000, records=40,
            anim_frames=20,
        ),
    },
    "08_grokking": {
        "ci": dict(
            p=47, train_fraction=0.5, hidden=(128, 128), lr=3e-3, weight_decay=1.0, steps=4000, records=41,
            trace_n=128, perturb_eps=0.1, perturb_probes=4, acc_jump=0.9, settle_rtol=0.05,
            tf_p=47, tf_fraction=0.5, tf_d_model=64, tf_heads=4, tf_steps=2000, tf_lr=3e-3, tf_records=21,
            anim_frames=10,
        ),
        "book": dict(
            p=97, train_fraction=0.4, hidden=(256, 256), lr=1e-3, weight_decay=1.0, steps=6000, records=61,
            trace_n=256, perturb_eps=0.1, perturb_probes=8, acc_jump=0.9, settle_rtol=0.05,
            tf_p=47, tf_fraction=0.5, tf_d_model=64, tf_heads=4, tf_steps=4000, tf_lr=3e-3, tf_records=41,
            anim_frames=20,
        ),
        "paper": dict(
            p=113, train_fraction=0.3, hidden=(512, 512), lr=1e-3, weight_decay=1.0, steps=20000, records=81,
            trace_n=512, perturb_eps=0.1, perturb_probes=16, acc_jump=0.9, settle_rtol=0.05,
            tf_p=113, tf_fraction=0.3, tf_d_model=128, tf_heads=4, tf_steps=20000, tf_lr=1e-3, tf_records=81,
            anim_frames=30,
        ),
    },
}


def chapters() -> tuple[str, ...]:
    """Names of the chapters that have presets."""
    return tuple(CHAPTERS)


def config(chapter: str, preset: str | None = None) -> Config:
    """Return the sizes of ``chapter`` at ``preset`` (default: :func:`current`).

    Args:
        chapter: chapter key such as ``"01_lazy"``.
        preset: ``"ci"``, ``"book"`` or ``"paper"``; ``None`` reads ``$NTKBOOK_PRESET``.

    Raises:
        ValueError: unknown chapter or preset.
    """
    name = current() if preset is None else validate(preset)
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; expected one of {', '.join(CHAPTERS)}")
    return Config(chapter, name, CHAPTERS[chapter][name])
