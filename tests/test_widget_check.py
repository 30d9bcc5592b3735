"""tools/widget_check.py: every live widget is moved through its range, and a broken one fails."""

import json
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import widget_check  # noqa: E402

SETUP = """\
import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
"""

GOOD = """\
def show_good(a, kind):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, a] if kind == "line" else [a, 0])
    plt.show()
display(widgets.interactive(show_good, a=widgets.IntSlider(value=1, min=0, max=10),
                            kind=widgets.Dropdown(options=["line", "flip"])))
"""

RAISES = """\
def show_raises(x):
    if x > 0.9:
        raise ValueError("x out of the data's range")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar([0], [x])
    plt.show()
display(widgets.interactive(show_raises, x=widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1)))
"""

DEAD = """\
def show_dead(a, b):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, a])  # b is never used: its slider is wired to nothing
    plt.show()
display(widgets.interactive(show_dead, a=widgets.IntSlider(value=1, min=1, max=3),
                            b=widgets.IntSlider(value=0, min=0, max=4)))
"""


def _run(tmp_path, name, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    env = dict(os.environ, NTKBOOK_WIDGET_CHECK="1", NTKBOOK_WIDGET_REPORT=str(tmp_path / "report"),
               PYTHONPATH=os.pathsep.join([str(ROOT / "tools"), os.environ.get("PYTHONPATH", "")]))
    env.pop("MPLBACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "nbclient_patch", "-p", "widget_check",
         "--nbmake", "--nbmake-timeout=120", str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    report = json.loads((tmp_path / "report" / f"{name}.json").read_text())
    return proc, report


def test_good_widgets_pass_and_broken_ones_are_caught(tmp_path):
    proc, report = _run(tmp_path, "good", [SETUP, GOOD])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["failures"] == []
    assert [w["states"] for w in report["widgets"]] == [3 * 2]  # min/mid/max x both options

    proc, report = _run(tmp_path, "broken", [SETUP, GOOD, RAISES, DEAD])
    assert proc.returncode != 0  # nbmake reports the chapter as failed
    assert "show_dead" in proc.stdout  # and names the widget in its summary
    failures = "\n".join(report["failures"])
    assert "x out of the data's range" in failures and "'x': 1.0" in failures
    assert "moving 'b'" in failures and "never changes the output" in failures
    assert "show_good" not in failures and "moving 'a'" not in failures
    assert sorted(w["states"] for w in report["widgets"]) == [3, 6, 9]


def test_states_per_control():
    import ipywidgets as W

    assert widget_check.control_states(W.IntSlider(value=3, min=0, max=10)) == [("value", 0), ("value", 5), ("value", 10)]
    assert widget_check.control_states(W.Dropdown(options=[("a", 1), ("b", 2), ("c", 3)])) == [("index", i) for i in range(3)]
    assert widget_check.control_states(W.SelectionSlider(options=[10, 20, 30, 40])) == [("index", 0), ("index", 1), ("index", 3)]
    assert widget_check.control_states(W.FloatLogSlider(value=4, base=2, min=0, max=7, step=0.25)) == [
        ("value", 1.0), ("value", 2**3.5), ("value", 128.0)]
    assert widget_check.control_states(W.Checkbox()) == [("value", False), ("value", True)]


def test_summary_fails_on_a_failed_or_missing_report(tmp_path):
    assert widget_check.summarise(tmp_path)[1] is False  # nothing ran: not a pass
    (tmp_path / "a.json").write_text(json.dumps({"chapter": "a", "widgets": [{"states": 3, "slowest_s": 0.1}], "failures": []}))
    table, ok = widget_check.summarise(tmp_path)
    assert ok and "3 states" in table
    (tmp_path / "b.json").write_text(json.dumps({"chapter": "b", "widgets": [], "failures": ["boom"]}))
    table, ok = widget_check.summarise(tmp_path)
    assert not ok and "boom" in table
