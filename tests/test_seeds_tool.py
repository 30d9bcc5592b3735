"""tools/seeds.py (``make seeds``): runs notebooks under several seeds and records failures."""

import json
import pathlib
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import seeds  # noqa: E402


def _chapter(folder: pathlib.Path, name: str, *sources: str) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise RuntimeError('the Colab cell must be skipped')", metadata={"tags": ["skip-execution"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_failure_line_reads_the_arrow_of_the_cell_frame():
    tb = (
        "\x1b[0;31mAssertionError\x1b[0m   Traceback (most recent call last)\n"
        "Cell \x1b[0;32mIn[27], line 4\x1b[0m\n"
        "\x1b[1;32m      3\x1b[0m x \x1b[38;5;241m=\x1b[39m \x1b[38;5;241m1\x1b[39m\n"
        "\x1b[0;32m----> 4\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m x \x1b[38;5;241m<\x1b[39m \x1b[38;5;241m0\x1b[39m\n"
        "File lib.py:9, in f()\n"
        "----> 9     raise ValueError\n"
    )
    assert seeds.failure_line(tb) == "assert x < 0"
    assert seeds.failure_line("no traceback here") == ""


def test_runs_every_seed_and_records_the_first_failing_assert(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _chapter(
        book, "01_toy",
        "import os\nseed = int(os.environ['NTKBOOK_SEED'])\npreset = os.environ['NTKBOOK_PRESET']",
        "assert preset == 'ci'\nassert seed != 1, 'a claim that fails for seed 1'\nassert seed != 2",
    )
    _chapter(book, "02_other", "import os\nassert os.environ['NTKBOOK_SEED'] in {'0', '1', '2'}")
    out = tmp_path / "seeds.json"
    out.write_text(json.dumps({"description": "old", "runs": [
        {"chapter": "01_toy", "preset": "ci", "seed": 1, "status": "pass"},  # replaced by the new run
        {"chapter": "01_toy", "preset": "book", "seed": 0, "status": "pass"},  # kept
    ]}))
    assert seeds.main(["--book", str(book), "--out", str(out), "--seeds", "0 1", "2", "--jobs", "2"]) == 0
    runs = {(r["chapter"], r["preset"], r["seed"]): r for r in json.loads(out.read_text())["runs"]}
    assert set(runs) == {(c, "ci", s) for c in ("01_toy", "02_other") for s in (0, 1, 2)} | {("01_toy", "book", 0)}
    assert runs["01_toy", "ci", 0]["status"] == "pass"
    bad = runs["01_toy", "ci", 1]
    assert bad["status"] == "fail" and bad["cell"] == 2 and bad["verification_cell"]
    assert bad["line"].startswith("assert seed != 1") and "fails for seed 1" in bad["error"]
    assert runs["01_toy", "ci", 2]["line"] == "assert seed != 2"
    assert all(runs["02_other", "ci", s]["status"] == "pass" for s in (0, 1, 2))
    assert {"date", "commit", "dirty", "seconds"} <= set(bad)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        seeds.main(["--seeds", "-1", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="no notebook named 99_none"):
        seeds.main(["--chapters", "99_none", "--out", str(tmp_path / "x.json")])


def test_keep_writes_the_executed_notebooks_with_their_outputs(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _chapter(book, "01_toy", "import os\nprint('seed', os.environ['NTKBOOK_SEED'])",
             "assert os.environ['NTKBOOK_SEED'] != '1', 'fails for seed 1'")
    keep = tmp_path / "kept"
    seeds.main(["--book", str(book), "--out", str(tmp_path / "s.json"), "--seeds", "0 1", "--jobs", "1",
                "--keep", str(keep)])
    assert sorted(p.name for p in keep.iterdir()) == ["01_toy-ci-0.ipynb", "01_toy-ci-1.ipynb"]
    for seed in (0, 1):
        cells = nbformat.read(keep / f"01_toy-ci-{seed}.ipynb", as_version=4).cells
        assert cells[1].outputs[0]["text"] == f"seed {seed}\n"
    assert cells[2].outputs[0]["output_type"] == "error"  # a failed run is kept too, with its traceback
