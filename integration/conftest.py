"""Options of the integration checks (run by ``make test``; see integration/browser.py)."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    group = parser.getgroup("ntkbook integration")
    group.addoption("--html-dir", type=pathlib.Path, default=ROOT / "_build" / "html",
                    help="the built book to check (default: _build/html)")
    group.addoption("--chromium", default="/usr/bin/chromium", help="the Chromium executable")


def pytest_terminal_summary(terminalreporter, config):
    """After the browser check, one line per page: what was found on it."""
    reports = getattr(config, "_ntkbook_browser_reports", None)
    if not reports:
        return
    terminalreporter.section("pages checked in Chromium")
    for page, report in reports.items():
        counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
        status = f"{len(report.problems)} problem(s)" if report.problems else "ok"
        terminalreporter.line(f"{page:32s} {status:14s} {counts}")
