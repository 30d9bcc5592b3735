"""Benchmark 5: each chapter's wall time at a preset, executed one at a time by nbmake.

Chapters run serially in a scratch copy of ``book/`` (the sources are never
executed in place), so each time is the chapter alone on the machine, import
of JAX included, as a reader running it top to bottom would see it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]


def chapter_files(only: list[str] | None = None, book_dir: pathlib.Path = ROOT / "book") -> list[pathlib.Path]:
    """The chapters of the book (``book/NN_*.ipynb``), optionally only those named."""
    files = sorted(pathlib.Path(book_dir).glob("[0-9][0-9]_*.ipynb"))
    if only is not None:
        unknown = set(only) - {f.stem for f in files}
        if unknown:
            raise ValueError(f"only names unknown chapters {sorted(unknown)}; have {[f.stem for f in files]}")
        files = [f for f in files if f.stem in only]
    return files


def run(preset: str, only: list[str] | None = None, *, timeout: int = 1800,
        book_dir: pathlib.Path = ROOT / "book") -> dict[str, Any]:
    """Execute the chapters at ``preset`` one after another; wall time and outcome of each.

    ``book_dir`` is copied whole (chapters may read files beside them) and the
    copy is executed; ``only`` restricts the run to the chapters named. ``timeout``
    is nbmake's limit per cell, in seconds: a cell that runs longer fails its chapter.
    """
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive int of seconds per cell, got {timeout!r}")
    from ntkbook import presets

    presets.validate(preset)  # an unknown preset raises here, before anything runs
    files = chapter_files(only, book_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ntkbook-bench-") as tmp:
        stage = pathlib.Path(tmp) / "book"
        shutil.copytree(book_dir, stage)
        env = {**os.environ, "NTKBOOK_PRESET": preset, "NTKBOOK_PROGRESS": "off"}
        env.pop("MPLBACKEND", None)
        for f in files:
            report = pathlib.Path(tmp) / f"{f.stem}.xml"
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--nbmake",
                   "--overwrite", f"--nbmake-timeout={timeout}", f"--junitxml={report}", str(stage / f.name)]
            load_before = os.getloadavg()[0]  # other work on the machine inflates the time: record it
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
            case = ET.parse(report).getroot().find(".//testcase") if report.exists() else None
            rows.append({
                "chapter": f.stem,
                "preset": preset,
                "seconds": float(case.get("time")) if case is not None else None,
                "passed": proc.returncode == 0,
                "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
                "cell_timeout_s": timeout,
                **({} if proc.returncode == 0 else {"error": proc.stdout[-2000:]}),
            })
    return {"preset": preset, "rows": rows}


def merge(old: list[dict[str, Any]] | None, new: list[dict[str, Any]], stamp: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace, in the results ``old``, the rows of the chapters re-timed in ``new``.

    Rows are matched by preset and chapter; a re-timed row carries ``stamp`` (when
    and at which commit it was measured), the others keep the run they came from.
    Presets absent from ``old`` are added.
    """
    merged = [{"preset": block["preset"], "rows": [dict(r) for r in block["rows"]]} for block in (old or [])]
    for block in new:
        target = next((b for b in merged if b["preset"] == block["preset"]), None)
        if target is None:
            target = {"preset": block["preset"], "rows": []}
            merged.append(target)
        for row in block["rows"]:
            row = {**row, "remeasured": stamp}
            idx = next((i for i, r in enumerate(target["rows"]) if r["chapter"] == row["chapter"]), None)
            if idx is None:
                target["rows"].append(row)
                target["rows"].sort(key=lambda r: r["chapter"])
            else:
                target["rows"][idx] = row
    return merged
