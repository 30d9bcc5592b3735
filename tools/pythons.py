"""Install the pinned stack on every promised Python found here and run the unit tests on it.

``make pythons`` (a measurement, not part of ``make test``: each interpreter
costs an install and a full unit-test run). For each version that
``pyproject.toml`` promises (``tools/check_python.py``), the interpreter is
looked up as ``python3.X`` on ``PATH`` or under ``~/.pyenv/versions/3.X.*``;
a fresh virtual environment in ``_build/pythons/3.X`` gets exactly what
``make venv`` installs, then ``pytest tests`` runs in it. An interpreter that
is not found is reported as such, not as a pass. One row per version goes to
``benchmarks/results/pythons.json``: found, install ok, unit tests passed /
failed, seconds, the interpreter's full version.

A version the project does not promise (3.10) is checked the other way round:
``tools/check_python.py`` must refuse it before anything installs.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_python  # noqa: E402


def find_interpreter(version: str) -> str | None:
    """Path of a ``python{version}``, from PATH or pyenv's versions folder."""
    for cand in sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True):
        return cand
    exe = shutil.which(f"python{version}")
    if exe:
        try:
            subprocess.run([exe, "-c", "pass"], check=True, capture_output=True, timeout=30)
            return exe
        except (subprocess.SubprocessError, OSError):  # a pyenv shim without that version
            return None
    return None


def run(cmd: list[str], log: pathlib.Path, timeout: float) -> int:
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode


def check_version(version: str, tests: list[str], out_dir: pathlib.Path) -> dict:
    row: dict = {"version": version, "date": datetime.date.today().isoformat()}
    exe = find_interpreter(version)
    if exe is None:
        return {**row, "found": False}
    full = subprocess.run([exe, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True).stdout.strip()
    row.update(found=True, interpreter=full)
    venv = out_dir / version
    log = out_dir / f"{version}.log"
    shutil.rmtree(venv, ignore_errors=True)
    log.unlink(missing_ok=True)
    py = str(venv / "bin" / "python")
    t0 = time.perf_counter()
    steps = [
        [exe, str(ROOT / "tools" / "check_python.py")],
        [exe, "-m", "venv", str(venv)],
        [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [py, "-m", "pip", "install", "--quiet", "-r", "requirements-dev.txt"],
        [py, "-m", "pip", "install", "--quiet", "--no-deps", "-r", "requirements-nodeps.txt"],
        [py, "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."],
    ]
    for cmd in steps:
        if run(cmd, log, 1800) != 0:
            return {**row, "install": False, "failed_step": " ".join(cmd[1:4]), "seconds": round(time.perf_counter() - t0)}
    row["install"] = True
    row["install_seconds"] = round(time.perf_counter() - t0)
    t1 = time.perf_counter()
    code = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], log, 7200)
    text = log.read_text()
    summary = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    row.update(
        tests=" ".join(tests),
        unit_tests_ok=code == 0,
        summary=summary[-1].strip("= ") if summary else "",
        test_seconds=round(time.perf_counter() - t1),
    )
    return row


def main(argv: list[str] | None = None) -> int:
    text = (ROOT / "pyproject.toml").read_text()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--versions", nargs="+", default=check_python.promised_versions(text))
    p.add_argument("--tests", nargs="+", default=["tests"])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pythons.json"))
    p.add_argument("--work", default=str(ROOT / "_build" / "pythons"))
    args = p.parse_args(argv)
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for v in args.versions:
        row = check_version(v, args.tests, work)
        print(json.dumps(row), flush=True)
        rows.append(row)
    # The unpromised neighbour below the range must be refused before installing.
    lo, _ = check_python.supported_range(text)
    below = f"{lo[0]}.{lo[1] - 1}"
    exe = find_interpreter(below)
    if exe:
        r = subprocess.run([exe, str(ROOT / "tools" / "check_python.py")], capture_output=True, text=True)
        rows.append({"version": below, "found": True, "refused": r.returncode != 0, "message": r.stderr.strip()})
        print(json.dumps(rows[-1]), flush=True)
    out = pathlib.Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else []
    keep = [r for r in old if r["version"] not in {x["version"] for x in rows}]
    out.write_text(json.dumps(sorted(keep + rows, key=lambda r: r["version"]), indent=1) + "\n")
    ok = all(r.get("unit_tests_ok", False) for r in rows if r["version"] in args.versions and r.get("found"))
    ok &= all(r.get("refused", True) for r in rows if r["version"] not in args.versions)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
