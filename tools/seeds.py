"""Execute chapters under several book seeds and record which claims survive.

``make seeds [SEEDS="0 1 2 3 4 5"] [PRESET=ci] [CHAPTERS=01_lazy,02_ntk_flow]`` runs
this script. Every (chapter, seed) is executed from the top in a fresh kernel
with ``NTKBOOK_PRESET`` and ``NTKBOOK_SEED`` set, ``--jobs`` at a time (default
2), and one row per run is written to ``benchmarks/results/seeds.json``:
pass, fail or timeout, the wall time, and for a failure the cell, the source
line that raised (the first failing ``assert`` when the verification cell
fails) and the error. Rows are stamped with the date, the commit and whether
the working tree had uncommitted changes; a new run of the same (chapter,
preset, seed) replaces the old row and leaves the others. Appendix B renders
the file.

This is a measurement, not a test: ``make test`` runs the default seed only.
A cell that times out is retried once in a fresh kernel, as ``make test`` does.
The executor waits for kernel messages in short slices (``tools/nbclient_patch.py``,
jupyter/nbclient#312), and each row records the longest gap between the kernel
finishing one cell and starting the next (``max_gap_s``): a gap of more than a
minute means the executor waited on nothing, and is reported.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
RESULTS = ROOT / "benchmarks" / "results" / "seeds.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# IPython marks the line that raised with an arrow: "----> 12 assert x < 1".
ARROW = re.compile(r"^-*>\s*(\d+)\s?(.*)$")


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain", "--", "book", "src"))}


def failure_line(traceback_text: str) -> str:
    """The source line of the chapter cell that raised, from an IPython traceback.

    The cell's own frame is the first one with an arrow; later frames are inside
    libraries. Continuation lines of a multi-line statement are not included.
    """
    for line in ANSI.sub("", traceback_text).splitlines():
        m = ARROW.match(line.strip())
        if m:
            return m.group(2).strip()
    return ""




def run_one(notebook: str, preset: str, seed: int, timeout: int, retries: int = 1, patch: bool = True,
            keep: str | None = None) -> dict[str, Any]:
    """Execute one chapter at one preset and seed in a fresh kernel; return its row. With ``keep``, the
    executed notebook (with its outputs, also of a failed run) is written to
    ``keep/<chapter>-<preset>-<seed>.ipynb``, for reading what the run printed."""
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    sys.path.insert(0, str(ROOT / "tools"))
    import nbclient_patch
    from nbclient_patch import STALL_S, max_gap

    if patch:
        nbclient_patch.apply()

    path = pathlib.Path(notebook)
    os.environ.update(NTKBOOK_PRESET=preset, NTKBOOK_SEED=str(seed), NTKBOOK_PROGRESS="off")
    os.environ.pop("MPLBACKEND", None)
    row: dict[str, Any] = {"chapter": path.stem, "preset": preset, "seed": seed}
    for attempt in range(retries + 1):
        nb = nbformat.read(path, as_version=4)
        # Executed code cells, numbered from 1 as the kernel numbers them (In [n]).
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "skip-execution" not in c.metadata.get("tags", [])]
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        try:
            client.execute()
            gap = max_gap(nb)
            row.update(status="pass", seconds=round(time.perf_counter() - start, 1), max_gap_s=gap)
            if gap > STALL_S:
                row.update(status="stall", error=f"the executor waited {gap:.0f} s between two cells with the kernel idle")
            return row
        except CellTimeoutError as err:
            row.update(status="timeout", seconds=round(time.perf_counter() - start, 1), error=str(err).splitlines()[0][:300])
            row["attempts"] = attempt + 1
            continue
        except (CellExecutionError, DeadKernelError) as err:
            seconds = round(time.perf_counter() - start, 1)
            cell = next((i for i in code if nb.cells[i].get("outputs") and any(o.get("output_type") == "error" for o in nb.cells[i].outputs)), None)
            text = str(err)
            ename = getattr(err, "ename", type(err).__name__)
            evalue = ANSI.sub("", str(getattr(err, "evalue", ""))).strip()
            row.update(
                status="fail",
                seconds=seconds,
                max_gap_s=max_gap(nb),
                cell=None if cell is None else code.index(cell) + 1,
                verification_cell=cell == code[-1] if cell is not None else False,
                line=failure_line(text),
                error=f"{ename}: {evalue}"[:300] if evalue else ename,
            )
            return row
        finally:
            if keep is not None:
                pathlib.Path(keep).mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, str(pathlib.Path(keep) / f"{path.stem}-{preset}-{seed}.ipynb"))
    return row


def load(path: pathlib.Path = RESULTS) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"description": "make seeds: chapters executed under several NTKBOOK_SEED values (tools/seeds.py)", "runs": []}


def merge(results: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace the rows of the same (chapter, preset, seed); keep every other row; sort."""
    fresh = {(r["chapter"], r["preset"], r["seed"]) for r in rows}
    kept = [r for r in results.get("runs", []) if (r["chapter"], r["preset"], r["seed"]) not in fresh]
    order = {"ci": 0, "book": 1, "paper": 2}
    results["runs"] = sorted(kept + rows, key=lambda r: (order.get(r["preset"], 9), r["chapter"], r["seed"]))
    return results


def chapters(names: str | None, book: pathlib.Path = BOOK) -> list[pathlib.Path]:
    allnb = sorted(book.glob("[0-9A-Z]*_*.ipynb"))
    if not names:
        return [p for p in allnb if p.stem[:2].isdigit()]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    found = {p.stem: p for p in allnb}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SystemExit(f"--chapters: no notebook named {', '.join(missing)} in {book}; have {', '.join(found)}")
    return [found[n] for n in wanted]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="ci", choices=("ci", "book", "paper"))
    ap.add_argument("--seeds", nargs="+", default=["0", "1", "2", "3", "4", "5"], help="seeds, e.g. 0 1 2 (or one quoted string)")
    ap.add_argument("--chapters", default=None, help="comma-separated chapter names (default: every numbered chapter)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=None, help="seconds per cell (default 300 at ci, 1200 otherwise)")
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    ap.add_argument("--book", type=pathlib.Path, default=BOOK, help="folder of the notebooks (default book/)")
    ap.add_argument("--no-patch", action="store_true", help="execute without tools/nbclient_patch.py (to measure stalls)")
    ap.add_argument("--keep", default=None, help="folder for the executed notebooks (<chapter>-<preset>-<seed>.ipynb)")
    args = ap.parse_args(argv)
    seeds: list[int] = []
    for tok in " ".join(args.seeds).split():
        if not tok.isdigit():
            ap.error(f"--seeds: {tok!r} is not a non-negative integer")
        seeds.append(int(tok))
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    timeout = args.timeout or (300 if args.preset == "ci" else 1200)
    notebooks = chapters(args.chapters, args.book)
    stamp = {"date": dt.date.today().isoformat(), **_commit()}
    jobs = [(str(nb), args.preset, s) for s in seeds for nb in notebooks]
    print(f"make seeds: {len(notebooks)} chapter(s) x seeds {seeds} at {args.preset}, {args.jobs} at a time", flush=True)
    rows = []
    # Each job runs in its own process (its own environment variables and kernel).
    with cf.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, nb, p, s, timeout, 1, not args.no_patch, args.keep): (nb, s) for nb, p, s in jobs}
        for fut in cf.as_completed(futures):
            row = {**fut.result(), **stamp}
            rows.append(row)
            where = f" cell {row.get('cell')}: {row.get('line') or row.get('error')}" if row["status"] != "pass" else ""
            print(f"  {row['chapter']:<24} seed {row['seed']:>3}  {row['status']:<7} {row['seconds']:7.1f} s"
                  f"  (longest gap between cells {row.get('max_gap_s', float('nan')):.1f} s){where}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(merge(load(args.out), [row]), indent=1) + "\n")
            tmp.replace(args.out)
    failed = [r for r in rows if r["status"] != "pass"]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed  (written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
