"""Run neural-tangents' own tests, for the parts the book uses, on the pinned and patched stack.

``make nt-upstream`` (a measurement, not part of ``make test``: about twenty
minutes on 2 cores). The neural-tangents 0.6.5 wheel installs its test suite
as a top-level ``tests`` package beside ``neural_tangents`` in site-packages.
This script copies it to a temporary directory, adds a ``conftest.py`` that
imports ``ntkbook`` and ``ntkbook.kernels`` first (so the patches of
:mod:`ntkbook._compat` are in place, as in every chapter), and runs the files
for the modules the book calls: batching, Monte Carlo, predict, the elementwise
nonlinearities of ``stax``, and the empirical NTK. ``empirical_test.py`` imports
Flax, which the book does not install: the script installs a pinned Flax (and
the pure-Python packages it imports) with ``pip --target`` into
``.cache/nt_upstream_flax`` and puts it on the path of that one file's run
only, so the project environment is untouched. ``--files`` runs a subset and
replaces only those rows of an existing result. One JSON document goes to
``benchmarks/results/nt_upstream.json``: passed / failed / skipped per file,
the failing test ids with the first line of their error, the versions and the
commit. The known failure (``testNTKMeanCovPrediction0``, a kernel traced
inside ``jax.vmap``) is documented in :func:`ntkbook._compat.patch_predict`
and pinned by ``tests/test_neural_tangents.py``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "nt_upstream.json"
FILES = ("batching_test.py", "monte_carlo_test.py", "predict_test.py", "stax/elementwise_test.py", "empirical_test.py")
NOT_RUN: dict[str, str] = {}
# Flax for empirical_test.py only (its Flax models: FlaxOtherTest, FlaxCnnTest): a release of the pinned JAX's
# time whose requirement (jax >= 0.4.27) the pin meets, and the packages `flax.linen` imports. Flax's other
# requirements (orbax-checkpoint, tensorstore) are not installed: the tests do not import them; optax,
# PyYAML, numpy and typing-extensions come from the project environment.
FLAX_FILES = {"empirical_test.py"}
FLAX_PINS = ("flax==0.10.2", "msgpack==1.1.0", "rich==13.9.4", "markdown-it-py==3.0.0", "mdurl==0.1.2")
FLAX_DIR = ROOT / ".cache" / "nt_upstream_flax"
CONFTEST = (
    "import ntkbook  # noqa: F401  (patches 1-3, before neural_tangents is imported)\n"
    "import ntkbook.kernels  # noqa: F401  (patch 4: nt.predict on the pinned SciPy)\n"
)


def upstream_tests() -> pathlib.Path:
    """The ``tests`` directory that the neural-tangents wheel installs beside the package."""
    spec = importlib.util.find_spec("neural_tangents")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("neural_tangents is not installed: run `make venv` first")
    tests = pathlib.Path(list(spec.submodule_search_locations)[0]).parent / "tests"
    missing = [f for f in FILES if not (tests / f).is_file()]
    if missing:
        raise SystemExit(f"neural-tangents' tests not found next to the package ({tests}): missing {missing}")
    return tests


def flax_path() -> pathlib.Path:
    """A folder holding the pinned Flax (installed once with ``pip --target``, no dependencies resolved)."""
    stamp = FLAX_DIR / "pins.txt"
    if not (stamp.is_file() and stamp.read_text() == "\n".join(FLAX_PINS)):
        shutil.rmtree(FLAX_DIR, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(FLAX_DIR), *FLAX_PINS],
                       check=True)
        stamp.write_text("\n".join(FLAX_PINS))
    return FLAX_DIR


def run(timeout: float, files: tuple[str, ...] = FILES) -> dict:
    unknown = [f for f in files if f not in FILES]
    if unknown:
        raise SystemExit(f"--files: unknown {unknown}; choose from {list(FILES)}")
    src = upstream_tests()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nt_upstream_") as tmp:
        work = pathlib.Path(tmp)
        shutil.copytree(src, work / "tests")
        (work / "conftest.py").write_text(CONFTEST)
        for name in files:
            xml = work / f"{name.replace('/', '_')}.xml"
            path = [str(ROOT / "src")] + ([str(flax_path())] if name in FLAX_FILES else [])
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/{name}", f"--junitxml={xml}"],
                cwd=work, capture_output=True, text=True, timeout=timeout,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
            )
            seconds = round(time.perf_counter() - t0, 1)
            if not xml.is_file():
                rows.append({"file": name, "error": proc.stdout[-2000:] + proc.stderr[-2000:], "seconds": seconds})
                continue
            suite = ET.parse(xml).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            failed, skip_reasons = [], {}
            for case in suite.iter("testcase"):
                skip = case.find("skipped")
                if skip is not None:  # upstream skips its large tests on CPU (test_utils.skip_test)
                    why = (skip.get("message") or "").splitlines()[0][:120] if skip.get("message") else ""
                    skip_reasons[why] = skip_reasons.get(why, 0) + 1
                bad = case.find("failure") if case.find("failure") is not None else case.find("error")
                if bad is not None:
                    first = (bad.get("message") or "").splitlines()[0][:200] if bad.get("message") else ""
                    failed.append({"test": case.get("name"), "error": first})
            total, skipped = int(suite.get("tests")), int(suite.get("skipped"))
            rows.append({"file": name, "passed": total - skipped - len(failed), "failed": len(failed),
                         "skipped": skipped, "skip_reasons": skip_reasons, "failures": failed, "seconds": seconds})
            if name in FLAX_FILES:
                rows[-1]["flax"] = FLAX_PINS[0].split("==")[1]
            print(f"{name:26s} passed {rows[-1]['passed']:3d}  failed {len(failed)}  skipped {skipped}  ({seconds} s)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    versions = {p: importlib.metadata.version(p) for p in ("neural-tangents", "jax", "jaxlib", "scipy")}
    return {"description": "neural-tangents 0.6.5's own tests for the modules the book uses, on the pinned stack "
                           "with ntkbook's patches (tools/nt_upstream.py)",
            "date": datetime.date.today().isoformat(), "commit": commit, "python": sys.version.split()[0],
            "versions": versions, "files": rows, "not_run": NOT_RUN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per test file")
    parser.add_argument("--files", nargs="+", default=list(FILES), help="a subset of the files (rows of --out replaced)")
    args = parser.parse_args()
    result = run(args.timeout, tuple(args.files))
    if set(args.files) != set(FILES) and args.out.is_file():
        # keep the other files' rows, and say which run each row comes from
        old = json.loads(args.out.read_text())
        for row in result["files"]:
            row.update(date=result["date"], commit=result["commit"])
        kept = [r for r in old["files"] if r["file"] not in args.files]
        for row in kept:
            row.setdefault("date", old["date"])
            row.setdefault("commit", old["commit"])
        result["files"] = sorted(kept + result["files"], key=lambda r: FILES.index(r["file"]) if r["file"] in FILES else 99)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    bad = sum(r.get("failed", 0) for r in result["files"]) + sum("error" in r for r in result["files"])
    print(f"written to {args.out}; {bad} failing test(s) or file error(s)")


if __name__ == "__main__":
    main()
