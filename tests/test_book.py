"""Structure of the book: what every chapter must carry, checked without running it."""

import ast
import importlib.util
import json
import os
import pathlib
import re

import pytest
import yaml

from ntkbook import presets

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("colab_cell", ROOT / "tools" / "colab_cell.py")
colab_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab_cell)


def _cells(nb: pathlib.Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [ch["file"] for ch in part.get("chapters", [])]
    return files


def test_there_are_chapters():
    assert len(CHAPTERS) >= 2


def test_toc_lists_only_existing_pages_and_every_chapter():
    files = _toc_files()
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f"_toc.yml lists missing page {f}"
    for nb in CHAPTERS:
        assert nb.relative_to(ROOT).with_suffix("").as_posix() in files, f"{nb.name} is not in _toc.yml"


def test_config_has_what_the_build_relies_on():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "force"  # the Makefile switches it "off" in the staged copy
    assert re.search(r"^\s*execute_notebooks:", (ROOT / "_config.yml").read_text(), re.M)
    assert cfg["execute"]["timeout"] >= 300
    assert cfg["repository"]["branch"] == "main"
    assert cfg["bibtex_bibfiles"] == ["references.bib"]
    assert cfg["only_build_toc_files"] is True


def test_every_chapter_starts_with_the_generated_colab_cell():
    assert colab_cell.check(ROOT) == []
    for nb in CHAPTERS:
        first = _cells(nb)[0]
        assert {"skip-execution", "remove-cell"} <= set(first["metadata"].get("tags", [])), nb.name


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_outputs_are_stripped(nb):
    for cell in _cells(nb):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{nb.name} has stored outputs"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_reads_its_preset(nb):
    code = [_src(c) for c in _cells(nb)[1:] if c["cell_type"] == "code"]
    assert "from ntkbook import" in code[0], f"{nb.name}: first code cell must import ntkbook"
    assert f'presets.config("{nb.stem}")' in code[0], f"{nb.name}: first code cell must read presets.config({nb.stem!r})"
    assert nb.stem in presets.CHAPTERS
    assert "MPLBACKEND" not in "".join(code) and 'use("Agg")' not in "".join(code)


# A literal key or seed inside a chapter would not move with $NTKBOOK_SEED.
LITERAL_RANDOMNESS = re.compile(
    r"\b(?:random\.PRNGKey|random\.key\b|default_rng|np\.random\.seed|RandomState|random_state\s*=)\s*\(?"
)


def literal_randomness(nb: pathlib.Path) -> list[str]:
    """Lines of a chapter's code that draw randomness without going through ``cfg.key``/``cfg.rng``."""
    return [
        line.strip()
        for c in _cells(nb)[1:]
        if c["cell_type"] == "code"
        for line in _src(c).splitlines()
        if LITERAL_RANDOMNESS.search(line)
    ]


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_every_random_draw_comes_from_the_book_seed(nb):
    assert literal_randomness(nb) == [], f"{nb.name}: use cfg.key(stream) / cfg.rng(stream) instead"


def test_literal_randomness_check_can_fail(tmp_path):
    for line in ("k = jax.random.PRNGKey(0)", "rng = np.random.default_rng(3)", "jax.random.key(1)",
                 "clf = SVC(random_state=0)"):
        nb = _notebook(tmp_path, "from ntkbook import presets", line)
        assert literal_randomness(nb), line
    assert literal_randomness(_notebook(tmp_path, "from ntkbook import presets", "k = cfg.key(0)")) == []


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ends_by_verifying_its_claims(nb):
    cells = _cells(nb)
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    last = _src(cells[code[-1]])
    asserts = re.findall(r"^\s*assert\b", last, re.M)
    assert len(asserts) >= 3, f"{nb.name}: the last code cell must assert the chapter's claims"
    heading = [_src(c) for c in cells[: code[-1]] if c["cell_type"] == "markdown"][-1]
    assert "What this chapter verified" in heading
    assert "#" in last, "tolerances must be justified in comments"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_header_states_measured_run_times_and_sources(nb):
    text = "".join(_src(c) for c in _cells(nb) if c["cell_type"] == "markdown")
    assert "Run time" in text and "`ci`" in text and "`book`" in text
    assert "RUNTIME_" not in text, f"{nb.name}: run-time placeholder left in the header"
    assert "{cite}" in text


def test_every_citation_exists_in_the_bibliography():
    bib = (ROOT / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    pages = CHAPTERS + sorted((ROOT / "book").glob("*.md"))
    for page in pages:
        text = page.read_text()
        for group in re.findall(r"\{cite[tp]?\}`([^`]+)`", text):
            for key in group.split(","):
                assert key.strip() in keys, f"{page.name} cites unknown key {key!r}"


def test_bibliography_parses_with_unique_keys():
    # What sphinxcontrib-bibtex will read: a merge that interleaves two entries fails here,
    # in a second, instead of in the HTML build.
    from pybtex.database import parse_file

    bib = ROOT / "references.bib"
    db = parse_file(str(bib))
    keys = re.findall(r"^@\w+\{([^,]+),", bib.read_text(), flags=re.M)
    assert len(keys) == len(set(keys)) == len(db.entries), "duplicate or unparsed bibliography entries"
    for key, entry in db.entries.items():
        assert "title" in entry.fields and "year" in entry.fields, f"{key} lacks a title or year"


# --- static interactivity: every widget has a counterpart the static book can show -------------

# An ipywidgets control, or an interactive view built from controls or a function.
WIDGET_CONTROL = re.compile(r"\bwidgets\.[A-Z]\w*\(")
INTERACTIVE_VIEW = re.compile(r"\b(?:widgets\.)?interact(?:ive)?(?:_output|_manual)?\(")
STATIC_COUNTERPART = re.compile(r"\bplotting\.(animate|small_multiples)\(")
HIDDEN_OUTPUT = {"remove-output", "remove-cell", "skip-execution"}


def _code_cells(nb: pathlib.Path) -> list[dict]:
    return [c for c in _cells(nb)[1:] if c["cell_type"] == "code"]


def _python(cell: dict) -> ast.Module:
    # IPython magics and shell escapes are not Python.
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in _src(cell).splitlines()]
    return ast.parse("\n".join(lines))


def _is_animate(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "animate"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "plotting")


def _shown_animations(tree: ast.Module) -> tuple[int, int]:
    """(calls of plotting.animate, those whose result is shown: the cell's last expression or display(...))."""
    calls = [n for n in ast.walk(tree) if _is_animate(n)]
    shown = set()
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        shown |= {id(n) for n in ast.walk(tree.body[-1]) if _is_animate(n)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "display":
            shown |= {id(n) for arg in node.args for n in ast.walk(arg) if _is_animate(n)}
    return len(calls), len(shown & {id(n) for n in calls})


def widget_pairing_problems(nb: pathlib.Path) -> list[str]:
    """Why a chapter's widgets lack static counterparts in the rendered book (empty if they do not)."""
    cells = _code_cells(nb)
    views = sum(len(INTERACTIVE_VIEW.findall(_src(c))) for c in cells)
    controls = any(WIDGET_CONTROL.search(_src(c)) or INTERACTIVE_VIEW.search(_src(c)) for c in cells)
    needed = max(views, 1) if controls else 0
    problems, static = [], 0
    for i, cell in enumerate(cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        src = _src(cell)
        if (WIDGET_CONTROL.search(src) or INTERACTIVE_VIEW.search(src)) and tags & HIDDEN_OUTPUT:
            problems.append(f"code cell {i} creates widgets but its output is hidden ({sorted(tags & HIDDEN_OUTPUT)})")
        if not STATIC_COUNTERPART.search(src):
            continue
        if tags & HIDDEN_OUTPUT:
            problems.append(f"code cell {i}: its animation/small multiples are hidden ({sorted(tags & HIDDEN_OUTPUT)})")
            continue
        calls, shown = _shown_animations(_python(cell))
        if shown < calls:
            problems.append(f"code cell {i}: plotting.animate(...) is neither the cell's last expression nor "
                            "passed to display(), so the static page shows nothing")
        static += shown + len(re.findall(r"\bplotting\.small_multiples\(", src))
    if static < needed:
        problems.append(f"{views} interactive widget view(s) but only {static} shown animation(s) or small-multiples "
                        "figure(s): each widget needs a static counterpart (plotting.animate or small multiples)")
    return problems


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_every_widget_has_a_static_counterpart(nb):
    assert widget_pairing_problems(nb) == []


def _notebook(tmp_path, *sources, tags=()) -> pathlib.Path:
    cells = [{"cell_type": "code", "metadata": {}, "source": "# colab"}]
    cells += [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": s} for s in sources]
    path = tmp_path / "99_test.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    return path


def test_widget_pairing_check_can_fail(tmp_path):
    slider = "display(widgets.interactive(show, w=widgets.IntSlider(1, 0, 5)))"
    # A widget and nothing static.
    assert widget_pairing_problems(_notebook(tmp_path, slider))
    # An animation that is built but not shown does not count.
    assert widget_pairing_problems(_notebook(tmp_path, slider, "html = plotting.animate(fig, f, 3)\nx = 1"))
    # Two interactive views need two counterparts.
    assert widget_pairing_problems(_notebook(tmp_path, slider + "\n" + slider, "plotting.animate(fig, f, 3)"))
    # A counterpart whose output is removed from the page does not count.
    assert widget_pairing_problems(_notebook(tmp_path, slider, "plotting.animate(fig, f, 3)", tags=["remove-output"]))
    # These pair.
    assert widget_pairing_problems(_notebook(tmp_path, slider, "plotting.animate(fig, f, 3)")) == []
    assert widget_pairing_problems(_notebook(tmp_path, slider, "display(plotting.animate(fig, f, 3))\nx = 1")) == []
    assert widget_pairing_problems(_notebook(tmp_path, slider, "fig, axes = plotting.small_multiples(4)")) == []
    assert widget_pairing_problems(_notebook(tmp_path, "x = 1")) == []


# --- the Colab setup cell --------------------------------------------------------------------


def test_colab_cell_installs_before_anything_imports_jax():
    src = colab_cell.cell_source(ROOT)
    tree = ast.parse(src)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in getattr(n, "names", [])} | {n.module.split(".")[0] for n in ast.walk(tree)
                                                      if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"sys", "os", "subprocess", "importlib"}, imported
    assert f"JAX {colab_cell.pin(ROOT / 'requirements.txt', 'jax')}" in src
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert f'PACKAGE = "git+{repo["url"]}@{repo["branch"]}"' in src


def test_colab_cell_install_locations_can_be_replaced():
    src = colab_cell.cell_source(ROOT)
    local = colab_cell.with_source(src, requirements="/tmp/checkout/", package="/tmp/checkout")
    assert 'REQUIREMENTS = "/tmp/checkout/"' in local and 'PACKAGE = "/tmp/checkout"' in local
    assert "github" not in local.split("import subprocess")[1]
    with pytest.raises(ValueError, match="requirements must end with '/'"):
        colab_cell.with_source(src, requirements="/tmp/checkout", package="/tmp/checkout")
    with pytest.raises(ValueError, match="PACKAGE on exactly one line"):
        colab_cell.with_source(src.replace("    PACKAGE =", "    PKG ="), requirements="/x/", package="/x")
    with pytest.raises(ValueError, match="quotes"):
        colab_cell.with_source(src, requirements='/x"/', package="/x")


def test_pin_reads_exact_versions_only(tmp_path):
    req = tmp_path / "r.txt"
    req.write_text("# comment\njaxlib==0.4.38\njax == 0.4.38  # pinned\nnumpy>=2\n")
    assert colab_cell.pin(req, "jax") == "0.4.38"
    with pytest.raises(ValueError, match="does not pin numpy exactly"):
        colab_cell.pin(req, "numpy")


# --- the scripts the pages load from CDNs ----------------------------------------------------

CDN_URL = re.compile(r"https://cdn\.jsdelivr\.net/npm/((?:@[^/@\s]+/)?[^/@\s]+)@([^/\s\"']+)/")


def test_cdn_versions_in_the_config_are_the_npm_copies_the_browser_check_uses():
    config = (ROOT / "_config.yml").read_text()
    package = json.loads((ROOT / "integration" / "package.json").read_text())["dependencies"]
    lock = json.loads((ROOT / "integration" / "package-lock.json").read_text())["packages"]
    found = CDN_URL.findall(config)
    assert {name for name, _ in found} >= {"mathjax", "requirejs", "@jupyter-widgets/html-manager"}, found
    for name, version in found:
        assert package.get(name) == version, f"_config.yml loads {name}@{version}; integration/package.json has {package.get(name)}"
        assert lock[f"node_modules/{name}"]["version"] == version, f"package-lock.json is stale for {name}"
    for name, version in package.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: pin an exact version, not {version!r}"
        assert lock[f"node_modules/{name}"]["version"] == version, f"package-lock.json is stale for {name}"
    cfg = yaml.safe_load(config)["sphinx"]["config"]
    scripts = {cfg["mathjax_path"]: cfg["mathjax_options"], **cfg["nb_ipywidgets_js"]}
    for url, attrs in scripts.items():
        assert CDN_URL.match(url), f"{url}: load CDN scripts from cdn.jsdelivr.net/npm (mirrored by the browser check)"
        assert attrs.get("integrity", "").startswith("sha384-") and attrs.get("crossorigin") == "anonymous", url


# --- the Sphinx fixes (tools/html_fixes.py) ----------------------------------------------------


def _html_fixes():
    spec = importlib.util.spec_from_file_location("html_fixes", ROOT / "tools" / "html_fixes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _FakeBuilder:
    def __init__(self):
        self._js_files = []

    def add_js_file(self, filename, **kwargs):
        from sphinx.builders.html._assets import _JavaScript

        if (js := _JavaScript(filename, **kwargs)) not in self._js_files:
            self._js_files.append(js)


def test_html_fixes_drop_repeated_inline_scripts_and_prepare_the_widget_manager():
    from types import SimpleNamespace

    from sphinx.builders.html._assets import _JavaScript

    fixes = _html_fixes()
    mathjax = "https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-mml-chtml.js"
    manager = "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js"
    app = SimpleNamespace(builder=_FakeBuilder(), config=SimpleNamespace(mathjax_path=mathjax))
    thebe = "const THEBE_JS_URL = 'x'"
    # Sphinx 7.4's two copies of one inline script differ only in filename None vs "".
    scripts = [_JavaScript(None, body=thebe), _JavaScript("", body=thebe), _JavaScript(mathjax, defer="defer"),
               _JavaScript("https://cdn.jsdelivr.net/npm/requirejs@2.3.8/require.js"), _JavaScript(manager)]
    context = {"script_files": scripts}
    fixes.fix_page_scripts(app, "book/01", "page.html", context, None)
    out = context["script_files"]
    bodies = [js.attributes.get("body", "") for js in out]
    assert bodies.count(thebe) == 1
    i = [js.filename for js in out].index(manager)
    assert "require.config" in bodies[i - 1] and '"https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/dist"' in bodies[i - 1]
    assert "MathJax" in bodies[i - 2] and "Hub" in bodies[i - 2]
    assert app.builder._js_files == []  # the helper scripts were taken back from the builder
    # A page without widgets gets neither.
    context = {"script_files": [_JavaScript(mathjax, defer="defer")]}
    fixes.fix_page_scripts(app, "book/intro", "page.html", context, None)
    assert len(context["script_files"]) == 1


def test_config_loads_the_html_fixes_and_the_build_copies_them():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["local_extensions"] == {"html_fixes": "tools"}
    assert cfg["sphinx"]["config"]["html_context"]["default_mode"] in {"auto", "light", "dark"}
    assert cfg["repository"]["path_to_book"] == "", "Colab links must be book/NN.ipynb, not ./book/NN.ipynb"


# --- the two commands, CI and the GitHub workflows ----------------------------------------------


def _make_dry_run(*args: str) -> str:
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    run = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "MAKEFLAGS": ""})
    assert run.returncode == 0, run.stderr
    return run.stdout


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def test_make_test_runs_every_step_and_ci_runs_exactly_make_test():
    assert re.search(r"^exec make test$", (ROOT / ".ci" / "run").read_text(), re.M)
    plan = _make_dry_run("-B", "test")
    steps = ["pytest tests -q", "NTKBOOK_PRESET=ci", "jupyter-book build _stage --path-output . -W",
             "integration/test_browser.py", "integration/test_colab_setup.py"]
    positions = [plan.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(steps, positions))
    assert "cp tools/*.py _stage/tools/" in plan


@pytest.mark.parametrize("preset", ["book", "paper"])
def test_make_book_builds_at_a_chosen_preset(preset):
    assert preset in presets.NAMES
    plan = _make_dry_run("-B", "book", *([f"PRESET={preset}"] if preset != "book" else []))
    assert f"NTKBOOK_PRESET={preset} " in plan and "jupyter-book build _stage" in plan


WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _workflow(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def _runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_and_calls_only_makefile_targets(path):
    wf = yaml.safe_load(path.read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert triggers and wf["jobs"], path.name
    for job in wf["jobs"].values():
        assert job["runs-on"] and job["steps"], path.name
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{path.name}: a step needs exactly one of run/uses: {step}"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
    for run in _runs(wf):
        for target in re.findall(r"^\s*make\s+([a-z][\w-]*)", run, re.M):
            assert target in _make_targets(), f"{path.name} runs `make {target}`, which the Makefile lacks"
        for preset in re.findall(r"PRESET=(\w+)", run):
            assert preset in presets.NAMES, f"{path.name}: unknown preset {preset}"


def test_publishing_workflows():
    book = _workflow("book.yml")
    on = book.get("on", book.get(True))
    assert on["push"]["branches"] == ["main"]
    assert "make book" in _runs(book) and "make browser" in _runs(book)
    steps = [s for job in book["jobs"].values() for s in job["steps"]]
    assert any(s.get("uses", "").startswith("actions/upload-pages-artifact@") and s["with"]["path"] == "_build/html"
               for s in steps)
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps)
    assert book["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}

    assert ".ci/run" in _runs(_workflow("test.yml"))


def test_paper_workflow_executes_every_chapter_in_a_job_of_its_own():
    # The whole paper preset takes longer on a CPU than one hosted job may run (6 h), so
    # paper.yml runs one job per chapter and builds the HTML from their executed copies.
    paper = _workflow("paper.yml")
    on = paper.get("on", paper.get(True))
    cron = on["schedule"][0]["cron"]
    assert len(cron.split()) == 5, cron
    chapter, book = paper["jobs"]["chapter"], paper["jobs"]["book"]
    numbered = [p.stem for p in CHAPTERS]
    assert sorted(chapter["strategy"]["matrix"]["chapter"]) == numbered
    assert chapter["strategy"]["fail-fast"] is False
    runs = [s["run"] for s in chapter["steps"] if "run" in s]
    assert any(r.startswith("make notebooks PRESET=paper NOTEBOOKS=${{ matrix.chapter }}") for r in runs), runs
    # Only a chapter that passed is uploaded as executed-<chapter>, which the book job downloads.
    run_step = next(s for s in chapter["steps"] if "make notebooks" in s.get("run", ""))
    assert run_step["timeout-minutes"] < chapter["timeout-minutes"]
    assert run_step["run"].index("make notebooks") < run_step["run"].index("_done/")
    ups = [s for s in chapter["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    executed = [s for s in ups if s["with"]["name"].startswith("executed-")]
    assert len(executed) == 1 and "if" not in executed[0] and executed[0]["with"]["path"].startswith("_done/")
    assert book["needs"] == "chapter" and "cancelled()" in book["if"]
    down = next(s for s in book["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert down["with"]["pattern"] == "executed-*" and down["with"]["merge-multiple"] is True
    book_runs = "\n".join(s["run"] for s in book["steps"] if "run" in s)
    # The appendices' make notebooks rebuilds _stage, so the executed chapters are copied in after it.
    order = ['make notebooks PRESET=paper NOTEBOOKS="A_performance B_reproducibility"',
             f"cp {down['with']['path']}/*.ipynb _stage/book/", "make html", "make browser",
             "needs.chapter.result"]
    positions = [book_runs.find(step) for step in order]
    assert -1 not in positions and positions == sorted(positions), dict(zip(order, positions))


def test_make_notebooks_can_execute_named_notebooks_only():
    plan = _make_dry_run("-B", "notebooks", "PRESET=paper", "NOTEBOOKS=07_trace_margin A_performance.ipynb")
    assert "_stage/book/07_trace_margin.ipynb _stage/book/A_performance.ipynb" in plan
    whole_book = re.compile(r"--durations=0 \\\n\s*_stage/book\s*$", re.M)  # pytest's last argument
    assert not whole_book.search(plan)
    assert whole_book.search(_make_dry_run("-B", "notebooks"))


# --- The teaching layer (CONTRIBUTING.md), for the chapters that have been refereed ---
# Chapters join this list when they have been reworked to the conventions.
REFEREED = ["01_lazy", "02_ntk_flow", "03_infinite_width", "04_signal_propagation", "05_finite_ntk", "06_ntk_trace",
            "07_trace_margin", "08_grokking", "09_semisup", "10_scaling_laws", "11_ntk_alignment",
            "12_collapse_ode", "13_one_step", "14_pseudo_ntk", "15_lookahead", "A_performance"]
DIRECTIVE = re.compile(r"^(:{3,}|`{3,})\{(exercise|solution|prf:[a-z]+|admonition)\}([^\n]*)\n((?::[a-z-]+:[^\n]*\n)*)", re.M)


def teaching_problems(nb: pathlib.Path) -> list[str]:
    """What a refereed chapter lacks of the teaching layer; empty if nothing."""
    cells = _cells(nb)
    md = "\n".join(_src(c) for c in cells if c["cell_type"] == "markdown")
    found = [(m.group(2), m.group(3).strip(), m.group(4)) for m in DIRECTIVE.finditer(md)]
    exercises = [title for kind, title, _ in found if kind == "exercise"]
    solutions = [opts for kind, _, opts in found if kind == "solution"]
    problems = []
    if not 2 <= len(exercises) <= 4:
        problems.append(f"{len(exercises)} exercises (2-4 expected)")
    if not any("try this" in t.lower() for t in exercises):
        problems.append("no 'Try this' exercise")
    if len(solutions) != len(exercises) or not all(":class: dropdown" in o for o in solutions):
        problems.append("every exercise needs a solution with :class: dropdown")
    if not any(kind.startswith("prf:") for kind, _, _ in found):
        problems.append("no theorem/definition block ({prf:theorem} ...)")
    repro = [opts for kind, title, opts in found if kind == "admonition" and title.startswith("Reproducibility notes")]
    if len(repro) != 1 or ":class: dropdown" not in repro[0]:
        problems.append("needs one collapsed 'Reproducibility notes' admonition")
    if not any("hide-input" in c.get("metadata", {}).get("tags", []) for c in cells if c["cell_type"] == "code"):
        problems.append("no plotting cell is collapsed (hide-input)")
    return problems


@pytest.mark.parametrize("name", REFEREED)
def test_refereed_chapters_carry_the_teaching_layer(name):
    assert teaching_problems(ROOT / "book" / f"{name}.ipynb") == []


def test_teaching_layer_check_can_fail(tmp_path):
    nb = _notebook(tmp_path, "from ntkbook import presets")
    problems = teaching_problems(nb)
    assert len(problems) == 5, problems  # all but the solutions check (no exercise, no solution)
    # an exercise whose solution is not collapsed, and only one exercise
    data = json.loads(nb.read_text())
    data["cells"].append({"cell_type": "markdown", "metadata": {}, "source":
                          ":::{exercise} Try this: x\n:label: ex-t\n\nDo x.\n:::\n\n:::{solution} ex-t\n\nDone.\n:::\n"})
    nb.write_text(json.dumps(data))
    problems = teaching_problems(nb)
    assert "1 exercises (2-4 expected)" in problems and any("dropdown" in p for p in problems), problems
    assert "no 'Try this' exercise" not in problems


def test_exercise_and_theorem_labels_are_unique_across_the_book():
    labels = []
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        md = "\n".join(_src(c) for c in _cells(nb) if c["cell_type"] == "markdown")
        labels += re.findall(r"^:label:\s*(\S+)", md, re.M)
    assert len(labels) == len(set(labels)), sorted(l for l in labels if labels.count(l) > 1)
