"""Sphinx extension: fixes to the HTML pages that Jupyter Book 1 writes.

Loaded through ``sphinx.local_extensions`` in ``_config.yml``. Each fix removes
a console error (or a failed request) that the browser check,
``integration/test_browser.py``, found on the pages; that check fails on any
console error, so it notices if a fix stops working.

1. Repeated inline scripts. Sphinx 7.4 writes an inline ``<script>`` (a body,
   no file) twice when an extension registers it after the builder started:
   the builder keeps its own copy (file name ``None``) and adds the
   application's copy (file name ``""``) again before writing, and the two do
   not compare equal. sphinx-thebe registers ``const THEBE_JS_URL = ...`` that
   way: "Identifier 'THEBE_JS_URL' has already been declared" on every page.
2. Where the widget manager finds its own files. ``embed-amd.js`` defines
   itself as the AMD module ``@jupyter-widgets/html-manager/dist/libembed-amd``
   and loads its fonts relative to that module's URL, which require.js resolves
   against the page (``book/@jupyter-widgets/...``: 404). We map the module
   name to the CDN folder it was loaded from.
3. MathJax 3 versus the widget manager. The widget manager typesets widget
   labels with the MathJax 2 call ``MathJax.Hub.Queue(["Typeset", MathJax.Hub,
   element])``; MathJax 3 has no ``Hub`` ("Cannot read properties of undefined
   (reading 'Queue')", jupyter-widgets/ipywidgets#3829). We provide that one
   call on top of MathJax 3's ``typesetPromise``.
"""

from __future__ import annotations

import json
from typing import Any

WIDGET_MANAGER = "/@jupyter-widgets/html-manager@"
AMD_MODULE_DIR = "@jupyter-widgets/html-manager/dist"

# Fix 3. Installed on the MathJax configuration object (for calls made before
# MathJax has loaded) and, through startup.ready, on the MathJax object that
# replaces it. Typesetting is chained on MathJax.startup.promise, as the
# MathJax 3 documentation asks for typesetting after start-up.
MATHJAX2_HUB_QUEUE = """\
(() => {
  const pending = [];
  const typeset = (element) => {
    const mj = window.MathJax;
    if (mj && mj.typesetPromise && mj.startup && mj.startup.promise) {
      mj.startup.promise = mj.startup.promise.then(() => mj.typesetPromise(element ? [element] : undefined));
    } else {
      pending.push(element);
    }
  };
  const Hub = {Queue: (...jobs) => jobs.forEach((job) => {
    if (Array.isArray(job) && job[0] === "Typeset") typeset(job[2]);
  })};
  const config = (window.MathJax = window.MathJax || {});
  config.Hub = Hub;
  const startup = (config.startup = config.startup || {});
  const ready = startup.ready;
  startup.ready = () => {
    if (ready) ready(); else window.MathJax.startup.defaultReady();
    window.MathJax.Hub = Hub;
    pending.splice(0).forEach(typeset);
  };
})();"""


def _filename(script: Any) -> str:
    return getattr(script, "filename", script) or ""


def _key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {})
    return _filename(script), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _new_inline_script(app, body: str) -> Any:
    """An inline script object of the builder's own type (appended by the builder, then taken back)."""
    app.builder.add_js_file("", body=body)
    script = app.builder._js_files.pop()
    if getattr(script, "attributes", {}).get("body") != body:  # the builder skipped it as a duplicate
        app.builder._js_files.append(script)
        raise RuntimeError("html_fixes: could not create an inline script (did Sphinx change?)")
    return script


def fix_page_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    # 1. Keep the first of several identical <script> entries.
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # 2. and 3. On pages that embed widgets.
    manager = next((i for i, s in enumerate(unique) if WIDGET_MANAGER in _filename(s)), None)
    if manager is not None:
        url = _filename(unique[manager])
        folder = url[: url.rindex("/")]
        paths = f"require.config({{paths: {json.dumps({AMD_MODULE_DIR: folder})}}});"
        unique.insert(manager, _new_inline_script(app, paths))
        mathjax = app.config.mathjax_path
        if any(_filename(s) == mathjax for s in unique):
            unique.insert(manager, _new_inline_script(app, MATHJAX2_HUB_QUEUE))
    context["script_files"] = unique


def setup(app) -> dict:
    # Late (a high priority number), so that the scripts other handlers add to a page are seen.
    app.connect("html-page-context", fix_page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
