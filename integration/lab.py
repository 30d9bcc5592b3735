"""Run a chapter the way a reader does locally: JupyterLab, a browser, a slider moved.

``make lab-check`` (part of ``make test``) runs :func:`check_chapter`:

1. JupyterLab from ``make lab``'s environment starts on a free loopback port
   with a random token, on a temporary copy of ``book/`` (the repository is
   never written), with its own settings folder: notebook windowing off (so
   every cell is in the page), no news, no update check. The kernel inherits
   ``NTKBOOK_PRESET=ci``.
2. Headless Chromium (Debian's, driven by Playwright, offline like the static
   browser check) opens the chapter and runs all cells from the Run menu.
3. When every code cell has an execution count and the kernel is idle, the
   page must show no traceback. Then the first slider of the first widget is
   moved one step with the keyboard, as a reader would, and the widget's figure
   must change within a minute, again with no traceback.
4. Screenshots before and after the move go to ``_build/lab-screenshots/``.

Run by hand: ``python integration/lab.py [--chapter 01_lazy.ipynb]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "integration"))
from browser import CHROMIUM_FLAGS  # noqa: E402

SHOTS = ROOT / "_build" / "lab-screenshots"
RUN_TIMEOUT_S = 900
MOVE_TIMEOUT_S = 60
ERROR_MARKERS = ("Traceback (most recent call last)", "WidgetCheckError")


@dataclass
class LabReport:
    chapter: str
    code_cells: int = 0
    run_seconds: float = 0.0
    move_seconds: float = 0.0
    slider: str = ""
    problems: list[str] = field(default_factory=list)
    shots: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(jupyter: pathlib.Path, root: pathlib.Path, settings: pathlib.Path, port: int, token: str,
              log: pathlib.Path) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port, serving ``root``; returns once its API answers."""
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = dict(os.environ, NTKBOOK_PRESET="ci", JUPYTER_CONFIG_DIR=str(settings / "config"),
               JUPYTER_RUNTIME_DIR=str(settings / "runtime"))
    env.pop("NTKBOOK_PROGRESS", None)
    cmd = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={settings / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # CI and this project's machines run as root
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}; its log: {log}\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"JupyterLab did not answer on port {port} within 120 s; its log: {log}")


def page_errors(page) -> list[str]:
    """Tracebacks shown anywhere in the notebook's outputs."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t.strip().splitlines()[-1][:300] for t in texts if any(m in t for m in ERROR_MARKERS)]


def widget_figure(page, index: int = 0) -> str:
    """The src of the image inside the ``index``-th widget output ('' if none yet)."""
    imgs = page.locator(".jupyter-widgets .widget-output img, .jupyter-widgets.widget-output img")
    return imgs.nth(index).get_attribute("src") or "" if imgs.count() > index else ""


def check_chapter(chapter: str = "01_lazy.ipynb", *, jupyter: pathlib.Path | None = None,
                  chromium: str = "/usr/bin/chromium", shots: pathlib.Path = SHOTS) -> LabReport:
    from playwright.sync_api import sync_playwright

    jupyter = jupyter or pathlib.Path(sys.executable).parent / "jupyter"
    if not (pathlib.Path(sys.executable).parent / "jupyter-lab").exists():
        raise FileNotFoundError("JupyterLab is not installed in this environment (run `make lab-deps`)")
    report = LabReport(chapter)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    stem = pathlib.Path(chapter).stem
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        shutil.copytree(ROOT / "book", tmp / "book")
        port, token = free_port(), secrets.token_hex(16)
        lab = start_lab(jupyter, tmp / "book", tmp / "settings", port, token, shots / "jupyterlab.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{chapter}?token={token}&reset")
                page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
                page.locator("#jp-main-statusbar").get_by_text("Idle").first.wait_for(timeout=120_000)
                report.code_cells = page.locator(".jp-Notebook .jp-CodeCell").count()
                t0 = time.monotonic()
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
                prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
                deadline = time.monotonic() + RUN_TIMEOUT_S
                while time.monotonic() < deadline:
                    texts = prompts.all_inner_texts()
                    done = all(t.strip() not in ("[ ]:", "[*]:", "") for t in texts)
                    if done and page.locator("#jp-main-statusbar").get_by_text("Idle").count():
                        break
                    if page_errors(page):
                        break
                    time.sleep(2)
                else:
                    report.problems.append(f"not every cell ran within {RUN_TIMEOUT_S} s")
                report.run_seconds = round(time.monotonic() - t0, 1)
                report.problems += [f"after Run All: {e}" for e in page_errors(page)]
                page.screenshot(path=str(shots / f"{stem}-after-run.png"))
                report.shots.append(str(shots / f"{stem}-after-run.png"))

                slider = page.locator(".jupyter-widgets .noUi-handle").first
                if not report.problems and slider.count() == 0:
                    report.problems.append("no widget slider on the page after Run All")
                elif not report.problems:
                    box = slider.locator("xpath=ancestor::div[contains(@class, 'widget-slider')][1]")
                    label = box.locator(".widget-label").first
                    report.slider = (label.inner_text() if label.count() else "") or "slider"
                    box.scroll_into_view_if_needed()
                    before = widget_figure(page)
                    t1 = time.monotonic()
                    slider.focus()
                    page.keyboard.press("Home")  # one move: to the other end of its range
                    while time.monotonic() - t1 < MOVE_TIMEOUT_S:
                        now = widget_figure(page)
                        if now and now != before:
                            break
                        time.sleep(0.5)
                    else:
                        report.problems.append(f"the widget's figure did not change within {MOVE_TIMEOUT_S} s "
                                               f"after moving '{report.slider}'")
                    report.move_seconds = round(time.monotonic() - t1, 1)
                    time.sleep(1)
                    report.problems += [f"after the move: {e}" for e in page_errors(page)]
                    widget = slider.locator("xpath=ancestor::div[contains(@class, 'widget-interact')][1]")
                    target = widget if widget.count() else box
                    target.screenshot(path=str(shots / f"{stem}-widget.png"))
                    report.shots.append(str(shots / f"{stem}-widget.png"))
                browser.close()
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.kill()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="01_lazy.ipynb")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    report = check_chapter(args.chapter, chromium=args.chromium)
    print(report)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
