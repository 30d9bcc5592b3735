"""Keep notebook execution from stalling after a widget cell (jupyter/nbclient#312).

The symptom, measured here: after a cell that displays an ipywidget, the
executor sometimes waits exactly its cell timeout (300 s at ``ci``, 1200 s at
``book``) although the kernel finished the cell long before and sits idle; then
it carries on as if nothing happened. The kernel had sent its reply; the
client did not notice it until the timeout.

Why: ``jupyter_client``'s asynchronous ``ZMQSocketChannel.get_msg`` waits with
one ``socket.poll(timeout)``. pyzmq's asyncio poll is driven by the socket's
edge-triggered file descriptor; when the readiness edge for a message is
consumed while no poll is registered (several channels and futures on one loop,
many comm messages in a burst), the poll is not woken again, and only its final
check of the socket's events at the timeout finds the message.

The fix: wait in short slices. Each slice ends with that final check, so a
missed edge costs at most ``SLICE`` seconds instead of the whole timeout, and the
overall timeout still holds. Nothing else about message handling changes.

Use: ``import nbclient_patch; nbclient_patch.apply()`` before executing
(``tools/seeds.py`` does), or load it as a pytest plugin for nbmake:
``pytest -p nbclient_patch --nbmake ...`` with ``tools/`` on ``PYTHONPATH``
(the Makefile does).

The guard: ``python tools/nbclient_patch.py FOLDER`` reads the executed
notebooks in FOLDER and fails if, in any of them, the kernel sat idle for more
than :data:`STALL_S` seconds between replying to one cell and starting the
next (read from the timestamps nbclient records in each cell's metadata), so a
stall that the patch does not prevent is reported instead of hidden.
"""

from __future__ import annotations

import pathlib
import sys
import time
from queue import Empty
from typing import Any

SLICE = 0.5  # seconds: the most a missed readiness edge can cost
STALL_S = 60.0  # seconds idle between two cells that count as a stall
_original = None


async def _get_msg_in_slices(self: Any, timeout: float | None = None) -> dict[str, Any]:
    """``ZMQSocketChannel.get_msg`` that polls in slices of at most :data:`SLICE` seconds."""
    assert self.socket is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        wait = SLICE if remaining is None else min(SLICE, remaining)
        if await self.socket.poll(int(wait * 1000)):
            return await self._recv()
        if remaining is not None and remaining <= wait:
            raise Empty


def apply() -> bool:
    """Install the sliced wait on jupyter_client's asynchronous channel; idempotent.

    Returns:
        True if the patch is (now) installed.
    """
    global _original
    from jupyter_client import channels

    if channels.AsyncZMQSocketChannel.get_msg is _get_msg_in_slices:
        return True
    _original = channels.AsyncZMQSocketChannel.get_msg
    channels.AsyncZMQSocketChannel.get_msg = _get_msg_in_slices  # type: ignore[method-assign]
    return True


def remove() -> None:
    """Restore jupyter_client's own ``get_msg`` (for tests)."""
    global _original
    from jupyter_client import channels

    if _original is not None:
        channels.AsyncZMQSocketChannel.get_msg = _original  # type: ignore[method-assign]
        _original = None


def pytest_configure(config: Any) -> None:  # pytest plugin hook: patch before nbmake starts kernels
    apply()


def max_gap(nb: Any) -> float:
    """Longest time, in seconds, between the kernel replying to one code cell and starting the next.

    Read from the kernel-side timestamps nbclient records in each executed cell's
    ``metadata.execution``. Between two cells the kernel has nothing to do, so a
    long gap is time the executor spent waiting on nothing. 0 if fewer than two
    cells carry timestamps.
    """
    from dateutil.parser import isoparse

    times = []
    for c in nb.cells:
        ex = c.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" in ex and "shell.execute_reply" in ex:
            times.append((isoparse(ex["iopub.status.busy"]), isoparse(ex["shell.execute_reply"])))
    gaps = [(b[0] - a[1]).total_seconds() for a, b in zip(times, times[1:])]
    return round(max(gaps), 2) if gaps else 0.0


def check_folder(folder: pathlib.Path, limit: float = STALL_S) -> list[str]:
    """One line per executed notebook under ``folder`` whose longest gap exceeds ``limit`` seconds."""
    import nbformat

    problems = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        gap = max_gap(nbformat.read(path, as_version=4))
        if gap > limit:
            problems.append(f"{path}: the executor waited {gap:.0f} s between two cells with the kernel idle")
    return problems


if __name__ == "__main__":
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "_stage/book")
    found = check_folder(folder)
    print("\n".join(found) or f"no execution stalls (> {STALL_S:.0f} s idle between cells) in {folder}")
    sys.exit(1 if found else 0)
