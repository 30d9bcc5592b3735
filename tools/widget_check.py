"""Move every live widget of an executed chapter through its range, in the chapter's own kernel.

nbmake executes each ``interactive`` once, at its initial values; a callback that
raises at another slider position, or a slider wired to nothing, would pass.
This module closes that gap. Loaded as a pytest plugin next to nbmake
(``pytest -p widget_check --nbmake ...`` with ``tools/`` on ``PYTHONPATH``) and
switched on by ``NTKBOOK_WIDGET_CHECK=1``, it replaces nbmake's notebook client
by one that, after the chapter's last code cell has run, asks the same kernel to
call :func:`exercise`:

* every live ``ipywidgets.interactive`` is found; each of its controls gets a
  few states: sliders their minimum, middle and maximum; dropdowns, toggles and
  radio buttons every option; check boxes both values;
* with two or three controls every combination is tried (at most
  :data:`MAX_STATES` per widget; beyond that one control at a time from the
  initial state, plus the all-first and all-last corners);
* for each state the controls are set and the widget's own ``update`` runs,
  so the call goes through ipywidgets' wiring exactly as a slider move does;
* a state fails if the callback raises or writes a traceback; a control fails
  if no move of it, in any combination of the others, changes what the widget
  shows (figures are compared as rendered PNG bytes, text as text).

Failures become an error output on the last cell, so nbmake reports the
chapter as failed. Per chapter (widgets found, states tried, the slowest
state, seconds) a JSON report goes to ``$NTKBOOK_WIDGET_REPORT`` (default
``_build/widget-report``); ``python tools/widget_check.py [FOLDER]`` prints the
table and fails if any chapter failed.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import pathlib
import sys
import time
from typing import Any

MARKER = "NTKBOOK-WIDGET-REPORT:"
MAX_STATES = 64  # per widget; full products of up to three controls stay below this
TIMEOUT_S = 900  # for the whole exercise of one chapter
ENABLE = "NTKBOOK_WIDGET_CHECK"
REPORT_ENV = "NTKBOOK_WIDGET_REPORT"


# ----------------------------------------------------------------------------
# Kernel side
# ----------------------------------------------------------------------------
def control_states(control: Any) -> list[tuple[str, Any]]:
    """The (attribute, value) settings to try for one control, first one included."""
    import ipywidgets as W

    if isinstance(control, (W.Dropdown, W.ToggleButtons, W.RadioButtons, W.Select)):
        return [("index", i) for i in range(len(control.options))]
    if isinstance(control, (W.SelectionSlider,)):
        n = len(control.options)
        return [("index", i) for i in sorted({0, (n - 1) // 2, n - 1})]
    if isinstance(control, (W.Checkbox, W.ToggleButton)):
        return [("value", False), ("value", True)]
    if isinstance(control, W.FloatLogSlider):
        lo, hi, step = control.min, control.max, control.step
        mid = lo + round((hi - lo) / 2 / step) * step
        return [("value", control.base**e) for e in sorted({lo, mid, hi})]
    if isinstance(control, W.IntSlider):
        return [("value", v) for v in sorted({control.min, (control.min + control.max) // 2, control.max})]
    if isinstance(control, W.FloatSlider):
        lo, hi, step = control.min, control.max, control.step or (control.max - control.min) / 2
        mid = lo + round((hi - lo) / 2 / step) * step
        return [("value", float(v)) for v in sorted({lo, mid, hi})]
    return [("value", control.value)]  # a control we do not know how to move: its current value


def _signature(captured: Any, figures: list[Any]) -> str:
    """A digest of everything a call displayed: images as PNG bytes, the rest as text."""
    h = hashlib.sha256()
    for out in captured.outputs:
        for mime, data in sorted(out.data.items()):
            h.update(mime.encode())
            h.update(data if isinstance(data, bytes) else str(data).encode())
    for fig in figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=30, metadata={"Software": None})
        h.update(buf.getvalue())
    h.update(captured.stdout.encode())
    return h.hexdigest()


def exercise(max_states: int = MAX_STATES) -> dict[str, Any]:
    """Drive every live ``interactive`` through its states; return a JSON-able report."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.utils.capture import capture_output
    from ipywidgets.widgets.widget import _instances

    t0 = time.perf_counter()
    widgets = [w for w in list(_instances.values()) if isinstance(w, W.interactive)]
    report: dict[str, Any] = {"widgets": [], "failures": []}
    for number, w in enumerate(widgets):
        name = f"widget {number + 1} ({getattr(w.f, '__name__', 'callback')})"
        controls = list(w.kwargs_widgets)
        per_control = [control_states(c) for c in controls]
        initial = [(c.index if s[0][0] == "index" else c.value) for c, s in zip(controls, per_control)]
        n_product = 1
        for s in per_control:
            n_product *= len(s)
        if n_product <= max_states:
            combos = list(itertools.product(*[range(len(s)) for s in per_control]))
        else:  # one control at a time from the first state, plus both corners
            combos = {tuple(0 for _ in per_control), tuple(len(s) - 1 for s in per_control)}
            for j, s in enumerate(per_control):
                for k in range(len(s)):
                    combos.add(tuple(k if i == j else 0 for i in range(len(per_control))))
            combos = sorted(combos)

        calls: list[dict[str, Any]] = []
        original_f = w.f

        def recorder(**kwargs: Any) -> Any:
            before = set(plt.get_fignums())
            rec: dict[str, Any] = {"error": None}
            start = time.perf_counter()
            with capture_output() as cap:
                try:
                    original_f(**kwargs)
                except Exception as exc:  # noqa: BLE001 - reported, not swallowed
                    import traceback

                    rec["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            new = [plt.figure(n) for n in plt.get_fignums() if n not in before]
            rec["seconds"] = time.perf_counter() - start
            rec["signature"] = _signature(cap, new)
            for fig in new:
                plt.close(fig)
            if rec["error"] is None and "Traceback (most recent call last)" in cap.stderr:
                rec["error"] = cap.stderr.strip().splitlines()[-1]
            calls.append(rec)

        states: list[dict[str, Any]] = []
        w.f = recorder
        try:
            for combo in combos:
                for c, s, k in zip(controls, per_control, combo):
                    setattr(c, s[k][0], s[k][1])  # may call update with a partial state: ignored
                calls.clear()
                w.update()
                rec = calls[-1]
                states.append({"combo": combo, **rec})
                if rec["error"]:
                    values = {c._kwarg: c.get_interact_value() for c in controls}
                    report["failures"].append(f"{name} at {values}: {rec['error']}")
        finally:
            w.f = original_f
            for c, s, v in zip(controls, per_control, initial):
                setattr(c, s[0][0], v)
            w.update()

        # A control that never changes what is shown, whatever the others are, is wired to nothing.
        for j, c in enumerate(controls):
            if len(per_control[j]) < 2:
                continue
            groups: dict[tuple, set[str]] = {}
            for st in states:
                if st["error"] is None:
                    rest = st["combo"][:j] + st["combo"][j + 1 :]
                    groups.setdefault(rest, set()).add(st["signature"])
            if groups and all(len(sigs) == 1 for sigs in groups.values()):
                report["failures"].append(
                    f"{name}: moving '{c._kwarg}' through {[s[1] for s in per_control[j]]} never changes the output"
                )
        report["widgets"].append(
            {
                "name": name,
                "controls": [c._kwarg for c in controls],
                "states": len(states),
                "slowest_s": round(max((st["seconds"] for st in states), default=0.0), 3),
            }
        )
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def exercise_and_print() -> None:
    """Kernel entry point: print the report on one marked line for the client to read."""
    print(MARKER + json.dumps(exercise()))


# ----------------------------------------------------------------------------
# Client side: a notebook client that exercises the widgets after the last cell
# ----------------------------------------------------------------------------
def _client_class() -> type:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    class WidgetCheckingClient(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):  # type: ignore[no-untyped-def]
            result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
            if code and cell_index == code[-1]:
                await self._exercise(cell)
            return result

        async def _exercise(self, cell: Any) -> None:
            chunks: list[str] = []

            def hook(msg: dict[str, Any]) -> None:
                if msg["msg_type"] == "stream":
                    chunks.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    chunks.append("\n".join(msg["content"]["traceback"]))

            reply = await self.kc.execute_interactive(
                "import widget_check as _ntkbook_wc; _ntkbook_wc.exercise_and_print()",
                output_hook=hook,
                timeout=TIMEOUT_S,
                store_history=False,
            )
            text = "".join(chunks)
            lines = [ln for ln in text.splitlines() if ln.startswith(MARKER)]
            if reply["content"]["status"] != "ok" or not lines:
                report: dict[str, Any] = {"widgets": [], "failures": [f"the widget check itself failed: {text[-2000:]}"]}
            else:
                report = json.loads(lines[-1][len(MARKER) :])
            name = pathlib.Path(getattr(self, "_ntkbook_name", "") or "notebook").stem
            out = pathlib.Path(os.environ.get(REPORT_ENV, "_build/widget-report"))
            out.mkdir(parents=True, exist_ok=True)
            report["chapter"] = name
            (out / f"{name}.json").write_text(json.dumps(report, indent=1))
            if report["failures"]:
                msg = "widget check failed:\n" + "\n".join(report["failures"])
                cell.outputs.append(
                    nbformat.v4.new_output("error", ename="WidgetCheckError", evalue=msg, traceback=[msg])
                )
                raise CellExecutionError(msg, "WidgetCheckError", msg)

    return WidgetCheckingClient


def pytest_configure(config: Any) -> None:  # pytest plugin hook
    if os.environ.get(ENABLE, "0") != "1":
        return
    from nbmake import nb_run

    base = _client_class()

    class Named(base):  # type: ignore[misc, valid-type]
        pass

    original_execute = nb_run.NotebookRun.execute

    def execute(self: Any) -> Any:  # remember which notebook the client runs, for the report's name
        Named._ntkbook_name = pathlib.Path(str(self.filename)).stem
        return original_execute(self)

    nb_run.NotebookClient = Named
    nb_run.NotebookRun.execute = execute


# ----------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------
def summarise(folder: pathlib.Path) -> tuple[str, bool]:
    """A table of the reports in ``folder`` and whether every chapter passed."""
    rows, ok = [], True
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        states = sum(w["states"] for w in r["widgets"])
        slowest = max((w["slowest_s"] for w in r["widgets"]), default=0.0)
        ok &= not r["failures"]
        rows.append(
            f"{r['chapter']:<24} {len(r['widgets']):>3} widgets {states:>4} states  slowest {slowest:6.2f} s"
            f"  total {r.get('seconds', 0):6.1f} s  {'FAIL' if r['failures'] else 'ok'}"
        )
        rows.extend(f"    {f}" for f in r["failures"])
    return "\n".join(rows) or f"no widget reports in {folder}", ok and bool(rows)


if __name__ == "__main__":
    table, passed = summarise(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "_build/widget-report"))
    print(table)
    sys.exit(0 if passed else 1)
