"""Progress bars for long loops, and a mode for the static book.

``$NTKBOOK_PROGRESS`` chooses how loops report progress:

- ``auto`` (default): ``tqdm.auto``, a live bar in Jupyter or a terminal;
- ``summary``: no bar, one line printed when the loop ends (steps, seconds,
  last postfix). The book build uses it: a stored widget bar would show its
  first frame ("0 %") forever in the static HTML;
- ``off``: silent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

ENV_VAR = "NTKBOOK_PROGRESS"
MODES = ("auto", "summary", "off")
T = TypeVar("T")


def mode() -> str:
    """The progress mode from ``$NTKBOOK_PROGRESS`` (``auto`` if unset)."""
    value = os.environ.get(ENV_VAR, "auto").strip() or "auto"
    if value not in MODES:
        raise ValueError(f"${ENV_VAR} must be one of {', '.join(MODES)}, got {value!r}")
    return value


class _Summary:
    """A tqdm stand-in that prints one line when closed."""

    def __init__(self, total: int | None, desc: str | None):
        self.total, self.desc, self.n = total, desc, 0
        self.postfix: dict[str, Any] = {}
        self.start = time.perf_counter()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **kwargs: Any) -> None:
        self.postfix = kwargs

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        steps = f"{self.n}" if self.total is None else f"{self.n}/{self.total}"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc or 'done'}: {steps} in {time.perf_counter() - self.start:.1f} s{extra}")

    def __enter__(self) -> _Summary:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(total: int | None = None, desc: str | None = None, *, enabled: bool = True) -> Any:
    """A progress bar with ``update``, ``set_postfix`` and ``close`` (also a context manager)."""
    how = mode()
    if how == "summary" and enabled:
        return _Summary(total, desc)
    return tqdm(total=total, desc=desc, disable=(how == "off" or not enabled), leave=True)


def finish_early(b: Any) -> None:
    """Mark a bar as complete at its current count: a loop that ended early by design (``train.fit``'s
    ``stop_when``) is not an interrupted one, which a notebook bar would show in red."""
    n = b.n
    b.total = n
    widgets = getattr(b, "container", None)  # tqdm.notebook: the bar widget keeps its own maximum
    if widgets is not None:
        widgets.children[1].max = n


def track(iterable: Iterable[T], desc: str | None = None, total: int | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` with a progress bar (``tqdm``-style)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with bar(total, desc) as b:
        for item in iterable:
            yield item
            b.update(1)
