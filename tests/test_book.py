"""Structure of the book: what every chapter must carry, checked without running it."""

import importlib.util
import json
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
