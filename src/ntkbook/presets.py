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
    "03_infinite_width": {
        "ci": dict(
            arccos_depths=(1, 2, 3, 4, 5), arccos_n=16,
            conv_widths=(64, 128, 256, 512, 1024), conv_seeds=6, conv_n=12,
            ens_width=256, ens_nets=32, ens_steps=2000, ens_frames=10,
            digits_train=20, digits_test=30, digits_width=512, digits_steps=300,
        ),
        "book": dict(
            arccos_depths=(1, 2, 3, 4, 5, 6, 7, 8), arccos_n=32,
            conv_widths=(64, 128, 256, 512, 1024, 2048), conv_seeds=8, conv_n=16,
            ens_width=512, ens_nets=32, ens_steps=2000, ens_frames=20,
            digits_train=30, digits_test=50, digits_width=512, digits_steps=300,
        ),
        "paper": dict(
            arccos_depths=(1, 2, 3, 4, 5, 6, 7, 8, 10, 12), arccos_n=64,
            conv_widths=(64, 128, 256, 512, 1024, 2048, 4096), conv_seeds=20, conv_n=32,
            ens_width=1024, ens_nets=64, ens_steps=3000, ens_frames=30,
            digits_train=100, digits_test=100, digits_width=1024, digits_steps=1000,
        ),
    },
    "04_signal_propagation": {
        "ci": dict(
            mc_width=400, mc_depth=20, mc_seeds=16, grid_n=30, anim_frames=10, traj_depth=30,
            check_depth=5, kappa_depth=100, cond_S=10, ov_S=6, ov_check_depths=(2, 4, 8),
        ),
        "book": dict(
            mc_width=1000, mc_depth=30, mc_seeds=24, grid_n=60, anim_frames=25, traj_depth=40,
            check_depth=8, kappa_depth=100, cond_S=10, ov_S=6, ov_check_depths=(2, 4, 8, 16),
        ),
        "paper": dict(
            mc_width=2000, mc_depth=50, mc_seeds=64, grid_n=100, anim_frames=40, traj_depth=60,
            check_depth=12, kappa_depth=200, cond_S=10, ov_S=10, ov_check_depths=(2, 4, 8, 16, 32),
        ),
    },
    "05_finite_ntk": {
        "ci": dict(
            width=20, depths=(2, 3, 4, 5, 6), n_samples=1000, n_boot=300, w_ordered=1.0, w_chaotic=3.0,
            anim_frames=10, theory_depth=20, lams=(0.1, 0.25, 0.5, 1.0), alphas=(0.1, 0.5, 2.0), alpha_depth=5,
            off_w=(1.0, 1.5), off_cosines=(0.0, 0.5), off_depths=(2, 4, 8, 12), step_depths=(2, 4, 8),
            step_samples=1000,
        ),
        "book": dict(
            width=40, depths=(2, 4, 6, 8, 10, 12), n_samples=2000, n_boot=500, w_ordered=1.0, w_chaotic=3.0,
            anim_frames=25, theory_depth=40, lams=(0.1, 0.25, 0.5, 1.0), alphas=(0.1, 0.25, 0.5, 1.0, 2.0),
            alpha_depth=10, off_w=(1.0, 1.5), off_cosines=(0.0, 0.5), off_depths=(2, 4, 8, 12, 16, 24),
            step_depths=(2, 4, 8, 12), step_samples=2000,
        ),
        "paper": dict(
            width=100, depths=(2, 5, 10, 15, 20, 25, 30), n_samples=4000, n_boot=1000, w_ordered=1.0,
            w_chaotic=3.0, anim_frames=40, theory_depth=100, lams=(0.1, 0.25, 0.5, 1.0),
            alphas=(0.1, 0.25, 0.5, 1.0, 2.0), alpha_depth=25, off_w=(1.0, 1.5), off_cosines=(0.0, 0.5),
            off_depths=(2, 4, 8, 16, 32, 48), step_depths=(2, 5, 10, 20), step_samples=4000,
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
