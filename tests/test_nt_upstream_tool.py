"""tools/nt_upstream.py: it finds neural-tangents' shipped tests and patches the stack first."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("nt_upstream", ROOT / "tools" / "nt_upstream.py")
nt_upstream = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nt_upstream)


def test_finds_the_upstream_test_files_next_to_the_package():
    tests = nt_upstream.upstream_tests()
    for name in nt_upstream.FILES:
        assert (tests / name).is_file(), name


def test_conftest_applies_every_patch_the_upstream_tests_need():
    # The predict patch is applied by ntkbook.kernels, not by ntkbook alone: a conftest that
    # imported only ntkbook left nt.predict.max_learning_rate failing in the upstream tests.
    # A fresh interpreter, so that imports made by other tests cannot patch the stack for it.
    check = nt_upstream.CONFTEST + (
        "import sys\n"
        "from ntkbook import _compat\n"
        "from neural_tangents import predict\n"
        "assert isinstance(sys.modules['neural_tangents._src.predict'].sp, _compat._ScipyCompat)\n"
        "print(predict.max_learning_rate(__import__('numpy').eye(3)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_flax_is_pinned_exactly_and_only_for_the_file_that_imports_it():
    # The measurement must be repeatable: every package installed for empirical_test.py is pinned
    # with ==, and Flax goes on the path only of the file that imports it.
    assert all("==" in pin and not pin.endswith("==") for pin in nt_upstream.FLAX_PINS), nt_upstream.FLAX_PINS
    assert nt_upstream.FLAX_FILES <= set(nt_upstream.FILES)
    shipped = nt_upstream.upstream_tests()
    for name in nt_upstream.FILES:
        imports_flax = "from flax" in (shipped / name).read_text() or "import flax" in (shipped / name).read_text()
        assert imports_flax == (name in nt_upstream.FLAX_FILES), name


def test_unknown_files_are_refused_before_anything_runs():
    with pytest.raises(SystemExit, match="unknown"):
        nt_upstream.run(1.0, ("no_such_test.py",))
