"""Plot style, a colour-blind-safe palette and animation helpers.

The only module of the library that imports matplotlib. Colours are the
Okabe-Ito palette (Okabe & Ito 2008), distinguishable under the common forms of
colour-vision deficiency; sequential maps use ``viridis``, signed quantities
the diverging ``RdBu_r`` centred at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
SEQUENTIAL = "viridis"
DIVERGING = "RdBu_r"


def use_style() -> None:
    """Apply the book's matplotlib style (call once per chapter)."""
    mpl.rcParams.update(
        {
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "figure.dpi": 96,
            "figure.figsize": (6.4, 4.0),
            "figure.constrained_layout.use": True,
            "image.cmap": SEQUENTIAL,
            "animation.html": "jshtml",
            "animation.embed_limit": 40.0,  # MB
        }
    )


def color(i: int) -> str:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def small_multiples(n: int, ncols: int = 3, *, panel_size: tuple[float, float] = (3.2, 2.6), **kwargs: Any):
    """A grid of ``n`` panels; returns ``(fig, axes)`` with ``axes`` flat and unused panels hidden."""
    if n < 1 or ncols < 1:
        raise ValueError(f"need n >= 1 and ncols >= 1, got n={n}, ncols={ncols}")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             squeeze=False, **kwargs)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def loglog_with_fit(ax, x: Sequence[float], y: Sequence[float], fit: Any, *, label: str, color: str | None = None,
                    marker: str = "o", fit_label: bool = True) -> None:
    """Scatter ``(x, y)`` on log-log axes with the fitted power law (a :class:`~ntkbook.metrics.PowerLawFit`)."""
    x = np.asarray(x, float)
    line = ax.loglog(x, y, marker, color=color, label=label, ls="none")[0]
    xs = np.geomspace(x.min(), x.max(), 50)
    text = f"slope {fit.exponent:+.2f}" if fit_label else None
    ax.loglog(xs, fit.prefactor * xs**fit.exponent, "-", color=line.get_color(), alpha=0.7, label=text)


def heatmap(ax, matrix: Any, *, signed: bool = False, title: str | None = None, colorbar: bool = True, **kwargs: Any):
    """Show a matrix; ``signed=True`` uses a diverging map centred at zero."""
    m = np.asarray(matrix)
    if signed:
        vmax = kwargs.pop("vmax", float(np.max(np.abs(m))) or 1.0)
        kwargs.setdefault("cmap", DIVERGING)
        kwargs.update(vmin=-vmax, vmax=vmax)
    im = ax.imshow(m, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
    return im


def ellipse_points(kernel: Any, center: Sequence[float] = (0.0, 0.0), *, level: float = 1.0, n: int = 200) -> np.ndarray:
    """Points of the contour ``{u : (u - c)^T K (u - c) = level^2}`` of a 2x2 PSD matrix.

    The axes point along the eigenvectors of ``K`` with half-lengths
    ``level / sqrt(lambda_i)``: the long axis is the slow direction of kernel
    gradient flow. Returns an ``(n, 2)`` array.
    """
    k = np.asarray(kernel, float)
    if k.shape != (2, 2):
        raise ValueError(f"kernel must be 2x2, got {k.shape}")
    lam, vec = np.linalg.eigh(0.5 * (k + k.T))
    if lam.min() <= 0:
        raise ValueError(f"kernel must be positive definite, eigenvalues {lam}")
    theta = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(theta), np.sin(theta)])
    return (vec @ ((level / np.sqrt(lam))[:, None] * circle)).T + np.asarray(center, float)


def animate(fig, update: Callable[[int], Any], frames: int | Sequence[Any], *, interval: int = 150):
    """Render ``update(frame)`` over ``frames`` as an embedded JavaScript animation.

    Returns an ``IPython.display.HTML`` object (display it, or let it be the
    cell's value); the figure is closed so the static copy is not shown twice.
    Works in the static book, where widgets cannot run callbacks.
    """
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    anim = FuncAnimation(fig, update, frames=frames, interval=interval, blit=False)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(html)
