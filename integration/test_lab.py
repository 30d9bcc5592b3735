"""Chapter 01 run in JupyterLab in headless Chromium, one slider moved (see integration/lab.py)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lab  # noqa: E402


def test_chapter_01_runs_in_jupyterlab_and_its_widget_responds(request):
    report = lab.check_chapter("01_lazy.ipynb", chromium=request.config.getoption("--chromium"))
    print(f"\n{report.chapter}: {report.code_cells} code cells run in {report.run_seconds} s; "
          f"moved '{report.slider}', figure changed after {report.move_seconds} s; screenshots {report.shots}")
    assert report.code_cells > 10
    assert not report.problems, "\n".join(report.problems)
    assert report.slider and pathlib.Path(report.shots[-1]).stat().st_size > 10_000


def test_a_page_with_a_traceback_is_reported():
    """The error scan itself can fail: a fake page whose outputs hold a traceback."""

    class Loc:
        def __init__(self, texts):
            self.texts = texts

        def all_inner_texts(self):
            return self.texts

    class Page:
        def __init__(self, texts):
            self.texts = texts

        def locator(self, _):
            return Loc(self.texts)

    assert lab.page_errors(Page(["fine", "UserWarning: x"])) == []
    bad = lab.page_errors(Page(["Traceback (most recent call last):\n  ...\nValueError: width out of range"]))
    assert bad == ["ValueError: width out of range"]
