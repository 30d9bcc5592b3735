"""The built book, opened page by page in headless Chromium (see integration/browser.py).

Needs a built book and the browser set-up, so it is not part of the fast unit
tests in ``tests/``; ``make browser`` (a step of ``make test``) installs what it
needs and runs it on ``_build/html``. By hand, on any build::

    .venv/bin/python -m pytest integration/test_browser.py --html-dir path/to/html

On failure, the failing pages are photographed (offending elements outlined in
red) into ``<build>/browser-failures/``; every page is photographed into
``<build>/browser-screenshots/`` in any case.
"""

import pathlib
import posixpath
import re
import sys

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import browser  # noqa: E402

ROOT = browser.ROOT


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        html_dir = metafunc.config.getoption("html_dir").resolve()
        found = browser.pages(html_dir) if html_dir.is_dir() else []
        metafunc.parametrize("page", found, ids=[p.removesuffix(".html") for p in found])


@pytest.fixture(scope="session")
def html_dir(pytestconfig) -> pathlib.Path:
    path = pytestconfig.getoption("html_dir").resolve()
    assert (path / "index.html").is_file(), f"no built book at {path}: run `make book` or `make test` first"
    return path


@pytest.fixture(scope="session")
def reports(pytestconfig, html_dir):
    build = html_dir.parent
    result = browser.check_site(html_dir, repo=ROOT, chromium=pytestconfig.getoption("chromium"),
                                shots=build / "browser-screenshots", failures=build / "browser-failures")
    pytestconfig._ntkbook_browser_reports = result  # printed by conftest.pytest_terminal_summary
    return result


def test_page_renders_completely(page, reports):
    report = reports[page]
    lines = "\n".join(f"  - {p}" for p in report.problems)
    where = f"\n  screenshot: {report.failure_screenshot}" if report.failure_screenshot else ""
    assert not report.problems, f"{page}: {len(report.problems)} problem(s)\n{lines}{where}"


def test_every_page_of_the_toc_was_checked(html_dir, reports):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]
    for f in files:
        assert f"{f}.html" in reports, f"{f} is in _toc.yml but {f}.html was not built or not checked"
    chapters = sorted(p.relative_to(ROOT).with_suffix(".html").as_posix() for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    assert chapters and all(c in reports for c in chapters), "a chapter of book/ has no page in the build"


def test_cdn_scripts_match_the_checked_local_copies(html_dir):
    """Scripts from outside the site are exactly the npm files the browser check serves (same hash)."""
    cdn = browser.LocalCDN()
    script = re.compile(r"<script\b[^>]*\bsrc=\"(https?://[^\"]+)\"[^>]*>")
    seen = {}
    for page in browser.pages(html_dir):
        for tag in script.finditer((html_dir / page).read_text(encoding="utf-8")):
            seen.setdefault(tag.group(1), tag.group(0))
    assert seen, "no CDN scripts at all: MathJax should be one"
    for url, tag in seen.items():
        local = cdn.local_file(url)
        assert local is not None, f"{url}: not a pinned npm package of integration/package.json"
        found = re.search(r'integrity="([^"]+)"', tag)
        assert found, f"{url} is loaded without an integrity hash"
        assert found.group(1) == browser.integrity(local), (
            f"{url}: the integrity hash in _config.yml is not that of the npm file {local}")


def test_the_check_catches_a_broken_build(html_dir, reports, tmp_path):
    """The same check on a copy of the build with one defect of each kind must report each of them.

    Shows the check can fail, on the pages this build actually has: a figure's
    file removed, a chapter stripped of its figures, links to a missing anchor
    and a missing page, the widget state dropped, an animation without its
    buttons, MathJax that does not load.
    """
    import shutil

    broken = tmp_path / "html"
    shutil.copytree(html_dir, broken)
    chapters = [p for p in reports if browser.CHAPTER.match(p) and reports[p].counts.get("figures")]
    assert len(chapters) >= 2, "need two chapter pages with figures to break"
    first, second = chapters[0], chapters[1]
    widget_page = next(p for p in reports if reports[p].counts.get("widgets"))
    anim_page = next(p for p in reports if reports[p].counts.get("animations"))
    math_pages = [p for p in reports if reports[p].counts.get("math")]
    math_page = next((p for p in math_pages if p not in (first, second, widget_page)), math_pages[0])
    link_page = next(p for p in reports if reports[p].counts.get("links") and p not in (first, math_page))

    def edit(page, pattern, replacement, count=0):
        file = broken / page
        text, n = re.subn(pattern, replacement, file.read_text(encoding="utf-8"), count=count, flags=re.S)
        assert n, f"mutation {pattern!r} found nothing in {page}"
        file.write_text(text, encoding="utf-8")

    # A figure's file is missing.
    figure = re.search(r'<img[^>]+src="([^"]*_images/[^"]+)"', (broken / first).read_text(encoding="utf-8")).group(1)
    (broken / first).parent.joinpath(figure).resolve().unlink()
    # A chapter without any figure (static images, animation frames, plots inside widgets).
    edit(second, r"<img\b[^>]*>", "")
    edit(second, r'<script type="application/vnd.jupyter.widget-state\+json">.*?</script>', "")
    # Links to an anchor and a page that do not exist.
    target = posixpath.relpath(first, posixpath.dirname(link_page))
    edit(link_page, r"(<article[^>]*>)", rf'\1<p><a href="{target}#no-such-anchor">a</a> <a href="no-such-page.html">b</a></p>',
         count=1)
    # The widget state is not embedded; an animation lost its buttons; MathJax does not load.
    if widget_page != second:
        edit(widget_page, r'<script type="application/vnd.jupyter.widget-state\+json">.*?</script>', "")
    edit(anim_page, r'<div class="anim-buttons">.*?</div>', "<div></div>", count=1)
    edit(math_page, r'(<script[^>]*integrity=")sha384-[^"]+("[^>]*mathjax)', r"\1sha384-AAAA\2")

    expected: dict[str, list[str]] = {}
    for page, messages in [(first, ["image did not load", "HTTP 404"]), (second, ["shows no rendered figure"]),
                           (link_page, ["link to a missing anchor", "link to a missing file"]),
                           (widget_page, ["was not rendered"]), (anim_page, ["lacks its controls"]),
                           (math_page, ["integrity", "was not typeset"])]:
        expected.setdefault(page, []).extend(messages)
    failures = tmp_path / "failures"
    found = browser.check_site(broken, repo=ROOT, failures=failures, only=sorted(expected))
    for page, messages in expected.items():
        problems = "\n".join(map(str, found[page].problems))
        for message in messages:
            assert message in problems, f"{page}: expected a problem {message!r}, got:\n{problems}"
        shot = found[page].failure_screenshot
        assert shot and shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG", f"{page}: no failure screenshot"
