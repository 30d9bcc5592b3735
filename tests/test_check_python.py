"""tools/check_python.py: the supported Pythons come from pyproject.toml, and others are refused early."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_python  # noqa: E402
import pythons  # noqa: E402

TEXT = (ROOT / "pyproject.toml").read_text()


def test_the_promise_is_read_from_pyproject():
    assert check_python.promised_versions('requires-python = ">=3.11,<3.14"\n') == ["3.11", "3.12", "3.13"]
    assert check_python.promised_versions('requires-python = ">=3.9,<3.11"\n') == ["3.9", "3.10"]
    with pytest.raises(ValueError, match="requires-python"):
        check_python.supported_range("requires-python = '>=3.11'\n")


def test_diffrax_pin_and_promise_agree():
    # diffrax 0.7.2 needs Python >= 3.11 (measured: pip on 3.10 refuses it), so 3.10 must not be promised.
    assert "diffrax==0.7.2" in (ROOT / "requirements.txt").read_text()
    assert check_python.supported_range(TEXT)[0] >= (3, 11)
    for page in ("README.md", "book/intro.md"):
        text = (ROOT / page).read_text()
        assert "3.10" not in text.replace("matplotlib==3.10", ""), page
        assert "3.11" in text and "3.13" in text, page


@pytest.mark.parametrize("version,ok", [((3, 10), False), ((3, 11), True), ((3, 13), True), ((3, 14), False), ((2, 7), False)])
def test_message_names_the_version_and_the_fix(version, ok):
    msg = check_python.message(version, TEXT)
    assert (msg is None) == ok
    if not ok:
        assert f"Python {version[0]}.{version[1]} is not supported" in msg and "PYTHON=" in msg


def test_an_old_interpreter_is_refused_by_the_script_itself():
    exe = pythons.find_interpreter("3.10")
    if exe is None:
        pytest.skip("no Python 3.10 on this machine")
    r = subprocess.run([exe, str(ROOT / "tools" / "check_python.py")], capture_output=True, text=True)
    assert r.returncode == 1 and "Python 3.10 is not supported" in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "check_python.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
