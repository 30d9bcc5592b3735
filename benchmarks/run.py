"""Run the benchmarks and record the results as JSON, with the machine they ran on.

Usage (from the repository root, or ``make bench`` / ``make bench-quick``)::

    python -m benchmarks.run                    # full sizes, every section (about an hour on 2 cores)
    python -m benchmarks.run --size quick       # the kernel sections at small sizes (under 5 minutes)
    python -m benchmarks.run --sections entk,trace --size full

Each section is stored under its name in ``--out`` (default
``benchmarks/results/latest.json``) together with the size, the machine
description and the date, replacing only the sections that were run; the file
is written atomically. Appendix A renders that file.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "latest.json"
SIZES = ("tiny", "quick", "full")


def _sections(only_chapters: list[str] | None = None,
              chapter_presets: tuple[str, ...] | None = None,
              cell_timeout: int = 1800) -> dict[str, Callable[[str], Any]]:
    from . import chapters, entk

    sections: dict[str, Callable[[str], Any]] = {
        "entk": entk.implementations,
        "blocking": entk.blocking,
    }
    try:  # sections that need modules other chapters add
        from . import trace

        sections["trace"] = trace.run
        sections["fd_sweep"] = trace.fd_sweep_run
    except ImportError:
        pass
    try:
        from . import pntk

        sections["pntk"] = pntk.run
    except ImportError:
        pass

    def chapter_times(size: str) -> Any:
        if size == "tiny":  # the smoke test: one chapter at the ci preset
            return [chapters.run("ci", only=only_chapters or [chapters.chapter_files()[0].stem], timeout=cell_timeout)]
        presets = chapter_presets or (("ci",) if size == "quick" else ("ci", "book"))
        return [chapters.run(p, only=only_chapters, timeout=cell_timeout) for p in presets]

    sections["chapters"] = chapter_times
    return sections




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="full", choices=SIZES, help="problem sizes (default: full)")
    parser.add_argument("--sections", default=None,
                        help="comma-separated sections (default: all; at --size quick all but 'chapters')")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="JSON file to update")
    parser.add_argument("--chapters", default=None,
                        help="comma-separated chapters (e.g. 05_finite_ntk) to re-time; their rows replace the "
                             "matching rows of the chapters section already in --out, the others are kept")
    parser.add_argument("--presets", default=None,
                        help="with --chapters: the presets to time them at (default: ci and book; ci at --size quick)")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds one cell of a timed chapter may run before the chapter fails (default 1800; "
                             "the paper preset's longest cells need more on a CPU)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")

    os.environ.setdefault("NTKBOOK_PROGRESS", "summary")
    from . import harness

    only = [c.strip() for c in args.chapters.split(",") if c.strip()] if args.chapters else None
    if only is not None:
        from . import chapters

        if args.sections not in (None, "chapters"):
            parser.error("--chapters re-times chapters only: leave --sections out or give --sections chapters")
        args.sections = "chapters"
        try:
            chapters.chapter_files(only)
        except ValueError as err:
            parser.error(f"--chapters: {err}")
    presets_ = tuple(p.strip() for p in args.presets.split(",") if p.strip()) if args.presets else None
    if presets_ is not None:
        if only is None:
            parser.error("--presets goes with --chapters (a full chapters section times ci and book)")
        from ntkbook import presets as _presets

        for p in presets_:
            try:
                _presets.validate(p)
            except ValueError as err:
                parser.error(f"--presets: {err}")
    available = _sections(only, presets_, args.timeout)
    if args.sections is None:
        names = [n for n in available if not (args.size == "quick" and n == "chapters")]
    else:
        names = [n.strip() for n in args.sections.split(",") if n.strip()]
        unknown = [n for n in names if n not in available]
        if unknown:
            parser.error(f"--sections: unknown {unknown}; expected some of {sorted(available)}")

    results: dict[str, Any] = {"sections": {}}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    mach = harness.machine()
    for name in names:
        print(f"[bench] {name} ({args.size}) ...", flush=True)
        t0 = time.perf_counter()
        value = available[name](args.size)
        seconds = time.perf_counter() - t0
        print(f"[bench] {name} done in {seconds:.0f} s", flush=True)
        previous = results["sections"].get(name)
        if only is not None and previous is not None and previous.get("size") == args.size:
            from . import chapters

            # Which machine: the section's block describes the first full run; a re-timed row carries its own
            # date, commit and this machine's float32 GEMM rate, which tells two CPUs of one model name apart.
            stamp = {"date": mach.get("date"), "git_commit": mach.get("git_commit"),
                     "gemm_flops_per_s": harness.gemm_rate()["flops_per_s"]}
            previous["result"] = chapters.merge(previous["result"], value, stamp)
        else:
            results["sections"][name] = {"size": args.size, "seconds": seconds, "machine": mach, "result": value}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1, sort_keys=True, default=float) + "\n")
        tmp.replace(args.out)  # after every section, so a long run keeps what it measured
    print(f"[bench] results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
