"""Open every page of the built book in headless Chromium and list what is wrong.

Used by ``integration/test_browser.py`` (run by ``make test`` after the book is
built); it can also be run by hand on any build folder::

    .venv/bin/python integration/browser.py _build/html

which prints one line per problem and exits 1 if there are any.

How a page is checked: ``_build/html`` is served on a loopback port; the
browser may fetch only from that server and from the CDN addresses of the npm
packages pinned in ``integration/package.json``, which are answered from the
local copies that ``npm ci`` installed (``integration/node_modules``). Every
other request is refused and reported, so the check never touches the network
and notices when a page starts loading something new. The pages carry
Subresource Integrity hashes for those scripts, so the browser also checks that
the local copies are the files the published book loads.

Each page is opened in a fresh browser context (no cache, no storage) and must
show:

1. no console error, no failed request inside the site, no request outside it
   that has no local copy;
2. every ``img`` loaded (natural width > 0); on a chapter page (``book/NN_*``)
   at least one loaded image in a cell output (a figure, an animation frame, a
   plot inside a widget);
3. every math element typeset by MathJax, no MathJax error (``mjx-merror``,
   e.g. an undefined macro or package), and math elements wherever the page's
   markdown source has ``$...$``;
4. every widget view rendered by the widget manager with visible controls, a
   widget view wherever the page's source creates widgets, and no widget's
   Python repr (``IntSlider(...)``) in an output;
5. every animation (matplotlib ``to_jshtml``) with a first frame, a frame
   slider, its buttons with visible icons, and "Next frame" changing the frame;
6. every link inside the site reaching an existing file and, for a page, an
   existing anchor;
7. on a chapter page, the Colab launch link to the chapter's own notebook in
   the repository and branch of ``_config.yml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import html.parser
import http.server
import json
import pathlib
import posixpath
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = pathlib.Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "integration" / "node_modules"
# The CDN addresses the pages load from, and the npm package (name, version, file) each stands for.
MIRRORS = [
    re.compile(r"^https://cdn\.jsdelivr\.net/npm/(?P<name>(@[^/@]+/)?[^/@]+)@(?P<version>[^/]+)/(?P<path>[^?#]*)"),
    # matplotlib's JavaScript animations (to_jshtml) link Font Awesome 4 from here.
    re.compile(r"^https://maxcdn\.bootstrapcdn\.com/(?P<name>font-awesome)/(?P<version>[^/]+)/(?P<path>[^?#]*)"),
]
# Chromium flags for a headless run that contacts nothing by itself. Playwright
# adds --headless and a fresh temporary --user-data-dir of its own.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 860}
# A widget whose state did not reach the page shows its Python repr instead,
# e.g. "interactive(children=(SelectionSlider(options=..." .
WIDGET_REPR = re.compile(
    r"\b(interactive|[A-Z]\w*(Slider|Box|Dropdown|Button|Buttons|Text|Output|Checkbox|Play|Tab|Accordion))\(")
# A source creates an ipywidgets control or an interactive view.
CREATES_WIDGET = re.compile(r"\bwidgets\.[A-Z]\w*\(|\binteract(ive)?(_output|_manual)?\(")
# Math in a markdown source: $...$, $$...$$ or an amsmath environment.
HAS_MATH = re.compile(r"\$\$|(?<![\\$])\$[^\s$][^$\n]*\$|\\begin\{(equation|align|gather)")
CHAPTER = re.compile(r"^book/\d\d_[^/]+\.html$")
REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.I)
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", ".doctrees"}

# Read everything the checks need from the page in one go, after waiting for
# MathJax and the widget manager. Returns plain JSON.
PAGE_FACTS_JS = """
async () => {
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((done) => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 10000);
  })));
  const math = Array.from(document.querySelectorAll('.math'));
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const anims = Array.from(document.querySelectorAll('div.animation'));
  const outputs = Array.from(document.querySelectorAll('.cell_output, .output')).map((el) => el.innerText);
  return {
    title: document.title,
    images: imgs.map((img, i) => ({i, src: (img.getAttribute('src') || '').slice(0, 120), alt: img.alt || '',
      natural: img.naturalWidth, output: !!img.closest('.cell_output, .output'),
      animation: !!img.closest('.animation'), visible: visible(img)})),
    math: {elements: math.length,
           typeset: math.filter((el) => el.querySelector('mjx-container')).length,
           untypeset: math.map((el, i) => [i, el]).filter(([, el]) => !el.querySelector('mjx-container')).map(([i]) => i),
           errors: document.querySelectorAll('mjx-merror').length,
           containers: document.querySelectorAll('mjx-container').length,
           loaded: !!(window.MathJax && window.MathJax.startup && window.MathJax.startup.document)},
    widgets: views.map((view, i) => {
      const area = view.previousElementSibling;
      const rendered = !!(area && area.classList.contains('widget-subarea') && area.querySelector('.jupyter-widgets'));
      const controls = rendered ? area.querySelectorAll('input, select, button, .slider, .widget-slider').length : 0;
      return {i, rendered, controls, visible: rendered && visible(area),
              images: rendered ? Array.from(area.querySelectorAll('img')).filter((im) => im.naturalWidth > 0).length : 0};
    }),
    animations: anims.map((anim, i) => {
      const img = anim.querySelector('img');
      const slider = anim.querySelector('input.anim-slider');
      const buttons = Array.from(anim.querySelectorAll('.anim-buttons button'));
      return {i, image: img ? img.naturalWidth : 0, slider: slider ? Number(slider.max) : -1,
              buttons: buttons.length,
              icons: buttons.filter((b) => { const ic = b.querySelector('svg, i'); return ic && visible(ic); }).length,
              titles: buttons.map((b) => b.title)};
    }),
    links: Array.from(document.querySelectorAll('a[href]')).map((a, i) => ({i, href: a.getAttribute('href'), url: a.href})),
    outputs: outputs.join(' | '),
  };
}
"""

# Called once the page has loaded (so every script has run or failed): wait, at
# most `limit` ms, for MathJax's first typesetting pass and for the widget
# manager to render every widget view. No waiting for what cannot happen (no
# MathJax object, no widget state); what is still missing then is reported.
WAIT_JS = """
async (limit) => {
  const t0 = Date.now();
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  if (document.querySelector('.math') && mathjax) await Promise.race([mathjax.catch(() => null), sleep(limit)]);
  const views = () => Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const state = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
  if (!state || !window.require) return;
  while (!views().every((s) => s.previousElementSibling && s.previousElementSibling.querySelector('.jupyter-widgets'))
         && Date.now() - t0 < limit) await sleep(100);
}
"""

# Step an animation one frame forward and report whether its image changed.
ANIMATION_STEPS_JS = """
async (i) => {
  const anim = document.querySelectorAll('div.animation')[i];
  const img = anim.querySelector('img');
  const next = anim.querySelector('button[title="Next frame"]');
  if (!img || !next) return false;
  const before = img.src;
  next.click();
  await new Promise((done) => setTimeout(done, 200));
  return before !== img.src;
}
"""

MARK_JS = """
([selector, indices]) => {
  const all = document.querySelectorAll(selector);
  for (const i of indices) { if (all[i]) all[i].setAttribute('data-check-failed', ''); }
}
"""
MARK_CSS = "[data-check-failed] { outline: 4px solid #d00 !important; outline-offset: 3px; }"


@dataclasses.dataclass
class Problem:
    """One thing wrong with a page; ``selector``/``index`` locate the element to highlight."""

    message: str
    selector: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass
class PageReport:
    page: str
    problems: list[Problem] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    screenshot: pathlib.Path | None = None
    failure_screenshot: pathlib.Path | None = None

    def add(self, message: str, selector: str | None = None, index: int | None = None) -> None:
        self.problems.append(Problem(message, selector, index))


# --- the site and the local CDN ------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output readable
        pass


@contextmanager
def serve(html_dir: pathlib.Path) -> Iterator[str]:
    """Serve ``html_dir`` on a free loopback port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def installed_packages(node_modules: pathlib.Path = NODE_MODULES) -> dict[str, str]:
    """``{name: version}`` of the packages ``integration/package.json`` asks for, as installed."""
    wanted = json.loads((node_modules.parent / "package.json").read_text())["dependencies"]
    found = {}
    for name in wanted:
        meta = node_modules / name / "package.json"
        if meta.exists():
            found[name] = json.loads(meta.read_text())["version"]
    return found


class LocalCDN:
    """Answers requests for CDN addresses (``MIRRORS``) from node_modules.

    Only the exact versions installed are served; any other outside request is
    refused and remembered in ``refused`` (the page's check reports it).
    """

    def __init__(self, node_modules: pathlib.Path = NODE_MODULES):
        self.node_modules = node_modules
        self.packages = installed_packages(node_modules)
        self.refused: list[str] = []

    def local_file(self, url: str) -> pathlib.Path | None:
        """The installed file a CDN address stands for, or None if there is none."""
        for pattern in MIRRORS:
            if found := pattern.match(url):
                break
        else:
            return None
        name, version, path = found["name"], found["version"], urllib.parse.unquote(found["path"])
        if self.packages.get(name) != version:
            return None
        base = (self.node_modules / name).resolve()
        file = (base / path).resolve()
        return file if file.is_file() and base in file.parents else None

    def handle(self, route) -> None:
        url = route.request.url
        file = self.local_file(url)
        if file is None:
            self.refused.append(url)
            route.abort("blockedbyclient")
            return
        ctype = {".js": "application/javascript", ".css": "text/css", ".woff": "font/woff",
                 ".woff2": "font/woff2", ".ttf": "font/ttf", ".svg": "image/svg+xml",
                 ".json": "application/json"}.get(file.suffix, "application/octet-stream")
        # The CDN sends CORS headers; <script crossorigin integrity=...> needs them.
        route.fulfill(status=200, body=file.read_bytes(), content_type=ctype,
                      headers={"Access-Control-Allow-Origin": "*"})


def integrity(file: pathlib.Path) -> str:
    import base64
    import hashlib

    return "sha384-" + base64.b64encode(hashlib.sha384(file.read_bytes()).digest()).decode()


# --- what the pages should contain ------------------------------------------------------------


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value or "")


def page_ids(file: pathlib.Path) -> set[str]:
    """Every ``id`` (and ``<a name>``) in an HTML file: the anchors a link may target."""
    parser = _IdCollector()
    parser.feed(file.read_text(encoding="utf-8", errors="replace"))
    return parser.ids


def pages(html_dir: pathlib.Path) -> list[str]:
    """Every HTML page of the build, as paths relative to ``html_dir``."""
    found = []
    for file in sorted(html_dir.rglob("*.html")):
        rel = file.relative_to(html_dir)
        if not SKIP_DIRS & set(rel.parts[:-1]):
            found.append(rel.as_posix())
    return found


def source_of(page: str, repo: pathlib.Path) -> pathlib.Path | None:
    """The repository file a page was built from (``book/01_lazy.html`` -> ``book/01_lazy.ipynb``)."""
    for ext in (".ipynb", ".md"):
        candidate = repo / pathlib.PurePosixPath(page).with_suffix(ext)
        if candidate.exists():
            return candidate
    return None


def markdown_and_code(source: pathlib.Path) -> tuple[str, str]:
    if source.suffix == ".md":
        return source.read_text(), ""
    cells = json.loads(source.read_text())["cells"]
    text = {"markdown": [], "code": []}
    for cell in cells:
        src = cell.get("source", "")
        text.setdefault(cell["cell_type"], []).append("".join(src) if isinstance(src, list) else src)
    return "\n".join(text["markdown"]), "\n".join(text["code"])


def repository(repo: pathlib.Path) -> dict:
    import yaml

    return yaml.safe_load((repo / "_config.yml").read_text())["repository"]


# --- checking one page --------------------------------------------------------------------------


def check_page(context, base: str, page: str, html_dir: pathlib.Path, repo: pathlib.Path,
               ids: dict[str, set[str]], cdn: LocalCDN, shots: pathlib.Path | None,
               failures: pathlib.Path | None) -> PageReport:
    """Load ``page`` in ``context`` and check what the module docstring lists (1.-7.)."""
    report = PageReport(page)
    redirect = REDIRECT.search((html_dir / page).read_text(encoding="utf-8", errors="replace")[:2000])
    if redirect:  # e.g. index.html -> book/intro.html: the target must exist (it is checked as a page itself)
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), redirect.group(1)))
        if not (html_dir / target).is_file():
            report.add(f"redirects to a missing page {target!r}")
        report.counts.update(redirect=1)
        return report
    browser_page = context.new_page()
    console: list[str] = []
    browser_page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    browser_page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
    bad_responses: list[str] = []
    browser_page.on("response", lambda r: bad_responses.append(f"{r.status} {r.url}")
                    if r.url.startswith(base) and r.status >= 400 else None)
    refused_before = len(cdn.refused)
    browser_page.route(re.compile(r"^(?!" + re.escape(base) + ").*"), cdn.handle)

    browser_page.goto(f"{base}/{page}", wait_until="load", timeout=60_000)
    # MathJax typesets after load and the widget manager renders views after load: wait for both.
    browser_page.evaluate(WAIT_JS, 30_000)
    browser_page.wait_for_timeout(300)  # let animations show their first frame
    facts = browser_page.evaluate(PAGE_FACTS_JS)

    # 1. Nothing went wrong while loading: console errors, missing files, outside requests.
    for message in console:
        report.add(f"console error: {message[:300]}")
    for response in bad_responses:
        report.add(f"HTTP {response}")
    for url in cdn.refused[refused_before:]:
        report.add(f"requested a resource from outside the site that has no local copy: {url}")

    # 2. Images: every one loaded.
    for img in facts["images"]:
        if img["natural"] == 0:
            report.add(f"image did not load (naturalWidth 0): src={img['src']!r} alt={img['alt']!r}", "img", img["i"])
    figures = [img for img in facts["images"] if img["output"] and img["natural"] > 0]
    report.counts.update(images=len(facts["images"]), figures=len(figures))
    chapter = bool(CHAPTER.match(page))
    if chapter and not figures:
        report.add("chapter page shows no rendered figure (no loaded <img> in any cell output)")

    # 3. Math: typeset everywhere, no MathJax errors (e.g. an undefined macro).
    source = source_of(page, repo)
    markdown, code = markdown_and_code(source) if source else ("", "")
    math = facts["math"]
    report.counts.update(math=math["containers"])
    if source and HAS_MATH.search(markdown) and math["elements"] == 0:
        report.add(f"{source.name} has math but the page has no math elements")
    if math["elements"]:
        if not math["loaded"]:
            report.add("MathJax did not load")
        for i in math["untypeset"][:5]:
            report.add(f"math element {i} was not typeset by MathJax", ".math", i)
        if len(math["untypeset"]) > 5:
            report.add(f"... {len(math['untypeset']) - 5} more math elements not typeset")
    if math["errors"]:
        report.add(f"{math['errors']} MathJax error(s) (mjx-merror), e.g. an undefined macro", "mjx-merror", 0)

    # 4. Widgets: their state is embedded and the widget manager rendered each view with its controls.
    widgets = facts["widgets"]
    report.counts.update(widgets=len(widgets))
    if source and CREATES_WIDGET.search(code) and not widgets:
        report.add(f"{source.name} creates widgets but the page embeds no widget view (widget state missing?)")
    for w in widgets:
        if not w["rendered"]:
            report.add(f"widget view {w['i']} was not rendered", 'script[type="application/vnd.jupyter.widget-view+json"]',
                       w["i"])
        elif not (w["controls"] and w["visible"]):
            report.add(f"widget view {w['i']} rendered without visible controls")
    if repr_match := WIDGET_REPR.search(facts["outputs"]):
        start = max(repr_match.start() - 20, 0)
        report.add(f"an output shows a widget's Python repr instead of the widget: ...{facts['outputs'][start:start + 80]!r}")

    # 5. Animations: a first frame, a slider with several frames, buttons with icons that work.
    anims = facts["animations"]
    report.counts.update(animations=len(anims))
    for a in anims:
        where = ("div.animation", a["i"])
        if a["image"] == 0:
            report.add(f"animation {a['i']} shows no frame", *where)
        if a["slider"] < 1:
            report.add(f"animation {a['i']} has no frame slider (or a single frame)", *where)
        if a["buttons"] < 7 or "Next frame" not in a["titles"]:
            report.add(f"animation {a['i']} lacks its controls (buttons: {a['titles']})", *where)
        elif a["icons"] < a["buttons"]:
            report.add(f"animation {a['i']}: {a['buttons'] - a['icons']} control buttons have no visible icon", *where)
        elif a["slider"] >= 1 and a["image"] and not browser_page.evaluate(ANIMATION_STEPS_JS, a["i"]):
            report.add(f"animation {a['i']}: 'Next frame' does not change the frame", *where)

    # 6. Links inside the site: the file exists and so does the anchor.
    internal = 0
    for link in facts["links"]:
        url = urllib.parse.urlsplit(link["url"])
        if not link["url"].startswith(base) or link["href"] in ("#", ""):
            continue
        internal += 1
        path = posixpath.normpath(urllib.parse.unquote(url.path)).lstrip("/")
        target = html_dir / path
        if target.is_dir():
            target, path = target / "index.html", posixpath.join(path, "index.html")
        if not target.is_file():
            report.add(f"link to a missing file: {link['href']!r}", "a[href]", link["i"])
        elif url.fragment and path.endswith(".html"):
            anchors = ids.setdefault(path, page_ids(target))
            if urllib.parse.unquote(url.fragment) not in anchors:
                report.add(f"link to a missing anchor: {link['href']!r} (no id {url.fragment!r} in {path})",
                           "a[href]", link["i"])
    report.counts.update(links=internal)

    # 7. Chapters open in Colab from their own notebook in the configured repository.
    if chapter and source and source.suffix == ".ipynb":
        repo_cfg = repository(repo)
        want = ("https://colab.research.google.com/github/"
                + repo_cfg["url"].rstrip("/").removeprefix("https://github.com/")
                + f"/blob/{repo_cfg.get('branch', 'main')}/{source.relative_to(repo).as_posix()}")
        colab = [link["url"] for link in facts["links"] if link["url"].startswith("https://colab.research.google.com/")]
        if want not in colab:
            report.add(f"no Colab launch link to {want} (found {colab})")

    if shots is not None:
        report.screenshot = shots / (page.replace("/", "__").removesuffix(".html") + ".png")
        browser_page.screenshot(path=str(report.screenshot))
        if chapter:  # close-ups of the first widget and the first animation (README pictures)
            for what, selector in (("widget", ".widget-subarea"), ("animation", "div.animation")):
                element = browser_page.locator(selector).first
                if element.count():
                    element.scroll_into_view_if_needed()
                    browser_page.evaluate("(y) => window.scrollBy(0, y)", -120)
                    browser_page.screenshot(path=str(report.screenshot.with_name(
                        f"{report.screenshot.stem}--{what}.png")))
    if report.problems and failures is not None:
        report.failure_screenshot = _failure_screenshot(browser_page, report, failures)
    browser_page.close()
    return report


def _failure_screenshot(browser_page, report: PageReport, folder: pathlib.Path) -> pathlib.Path:
    """Outline the offending elements in red and photograph the first of them (or the top of the page)."""
    browser_page.add_style_tag(content=MARK_CSS)
    marked = [p for p in report.problems if p.selector is not None]
    for problem in marked:
        browser_page.evaluate(MARK_JS, [problem.selector, [problem.index]])
    browser_page.evaluate("() => window.scrollTo(0, 0)")
    first = browser_page.locator("[data-check-failed]").first
    if first.count():
        try:
            first.scroll_into_view_if_needed(timeout=2000)
            browser_page.evaluate("() => window.scrollBy(0, -150)")
        except Exception:  # noqa: BLE001 - an invisible element: photograph the top of the page
            pass
    path = folder / (report.page.replace("/", "__").removesuffix(".html") + ".png")
    browser_page.screenshot(path=str(path))
    return path


# --- checking a whole build ---------------------------------------------------------------------


def check_site(html_dir: pathlib.Path, *, repo: pathlib.Path = ROOT, chromium: str = "/usr/bin/chromium",
               node_modules: pathlib.Path = NODE_MODULES, shots: pathlib.Path | None = None,
               failures: pathlib.Path | None = None, only: list[str] | None = None) -> dict[str, PageReport]:
    """Check every page of ``html_dir`` (or the pages in ``only``); returns ``{page: PageReport}``.

    Screenshots of every page go to ``shots`` and of failing pages to ``failures``
    (both emptied first; ``None`` to take none).
    """
    from playwright.sync_api import sync_playwright

    html_dir = pathlib.Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"no built book at {html_dir} (run `make book` or `make test` first)")
    if not pathlib.Path(chromium).is_file():
        raise FileNotFoundError(f"Chromium not found at {chromium} (`make browser-deps` installs Debian's chromium)")
    cdn = LocalCDN(node_modules)
    missing = set(json.loads((node_modules.parent / "package.json").read_text())["dependencies"]) - set(cdn.packages)
    if missing:
        raise FileNotFoundError(f"local CDN copies missing in {node_modules}: {sorted(missing)} "
                                "(`make browser-deps` runs npm ci in integration/)")
    for folder in (shots, failures):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
    ids: dict[str, set[str]] = {}
    reports = {}
    with serve(html_dir) as base, sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True,
                                    downloads_path=tmp)
        try:
            for page in only if only is not None else pages(html_dir):
                # A fresh context per page: no cache, cookies or localStorage carried over.
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                try:
                    reports[page] = check_page(context, base, page, html_dir, repo, ids, cdn, shots, failures)
                finally:
                    context.close()
        finally:
            browser.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=pathlib.Path, nargs="?", default=ROOT / "_build" / "html")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--repo", type=pathlib.Path, default=ROOT, help="the checkout the book was built from")
    args = parser.parse_args(argv)
    build = args.html_dir.resolve().parent
    reports = check_site(args.html_dir, repo=args.repo, chromium=args.chromium,
                         shots=build / "browser-screenshots", failures=build / "browser-failures")
    bad = 0
    for page, report in reports.items():
        counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
        print(f"{'FAIL' if report.problems else 'ok  '} {page}  ({counts})")
        for problem in report.problems:
            print(f"       - {problem}")
        if report.failure_screenshot:
            print(f"       screenshot: {report.failure_screenshot}")
        bad += bool(report.problems)
    print(f"{len(reports)} pages, {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
