"""tools/nbclient_patch.py: the executor waits for kernel messages in short slices."""

import asyncio
import pathlib
import sys
import time
from queue import Empty

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
import nbclient_patch  # noqa: E402


class FakeSocket:
    """A socket whose message is only seen by the poll that *ends* after ``ready_at`` (a missed wake-up)."""

    def __init__(self, ready_at: float):
        self.ready_at = ready_at
        self.polls: list[int] = []

    async def poll(self, timeout_ms):
        self.polls.append(timeout_ms)
        await asyncio.sleep(timeout_ms / 1000)
        return 1 if time.monotonic() >= self.ready_at else 0


class FakeChannel:
    def __init__(self, socket):
        self.socket = socket

    async def _recv(self):
        return {"msg_type": "execute_reply"}


def test_a_message_that_arrives_during_a_long_wait_is_seen_within_one_slice():
    t0 = time.monotonic()
    ch = FakeChannel(FakeSocket(ready_at=t0 + 0.7))
    msg = asyncio.run(nbclient_patch._get_msg_in_slices(ch, timeout=30))
    elapsed = time.monotonic() - t0
    assert msg["msg_type"] == "execute_reply"
    # jupyter_client's own get_msg would poll once for 30 s; the sliced one finds it after <= one extra slice
    assert elapsed < 0.7 + nbclient_patch.SLICE + 0.3
    assert max(ch.socket.polls) <= nbclient_patch.SLICE * 1000


def test_the_overall_timeout_still_holds():
    ch = FakeChannel(FakeSocket(ready_at=float("inf")))
    t0 = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(nbclient_patch._get_msg_in_slices(ch, timeout=1.2))
    assert 1.1 < time.monotonic() - t0 < 1.2 + nbclient_patch.SLICE
    assert all(ms <= nbclient_patch.SLICE * 1000 for ms in ch.socket.polls)


def test_apply_installs_on_jupyter_clients_async_channel_and_is_idempotent():
    from jupyter_client import channels

    original = channels.AsyncZMQSocketChannel.get_msg
    try:
        assert nbclient_patch.apply() and nbclient_patch.apply()
        assert channels.AsyncZMQSocketChannel.get_msg is nbclient_patch._get_msg_in_slices
    finally:
        nbclient_patch.remove()
    assert channels.AsyncZMQSocketChannel.get_msg is original


def _timed_notebook(path, gaps):
    """A notebook whose cells carry nbclient's timestamps, with the given idle gaps (s) between cells."""
    import datetime as dt

    import nbformat

    nb = nbformat.v4.new_notebook()
    t = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.timezone.utc)
    for gap in [0.0, *gaps]:
        t += dt.timedelta(seconds=gap)
        busy, t = t, t + dt.timedelta(seconds=3)
        cell = nbformat.v4.new_code_cell("pass")
        cell.metadata["execution"] = {"iopub.status.busy": busy.isoformat(), "shell.execute_reply": t.isoformat()}
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return nb


def test_the_stall_guard_reads_the_gaps_between_cells(tmp_path):
    quiet = _timed_notebook(tmp_path / "quiet.ipynb", [0.01, 2.0, 0.5])
    stalled = _timed_notebook(tmp_path / "stalled.ipynb", [0.01, 300.0, 0.5])
    assert nbclient_patch.max_gap(quiet) == 2.0
    assert nbclient_patch.max_gap(stalled) == 300.0
    problems = nbclient_patch.check_folder(tmp_path)
    assert len(problems) == 1 and "stalled.ipynb" in problems[0] and "300 s" in problems[0]
