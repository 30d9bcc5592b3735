"""Refuse an interpreter the pinned stack does not install on, before anything is installed.

The supported versions are ``requires-python`` in ``pyproject.toml`` (one place).
Measured: the pins install on 3.11, 3.12 and 3.13; on 3.10 ``pip install -r
requirements.txt`` fails because ``diffrax==0.7.2`` needs Python >= 3.11.
``make venv`` runs ``$(PYTHON) tools/check_python.py`` first, so the reader
gets one clear line instead of a resolver error minutes into the install.

Written for any Python 3 (no tomllib, no 3.8+ syntax): it has to run on the
interpreters it refuses.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def supported_range(pyproject_text):
    """(lowest, first unsupported) as (major, minor) tuples, from ``requires-python = ">=3.11,<3.14"``."""
    m = re.search(r'^requires-python\s*=\s*"\s*>=\s*(\d+)\.(\d+)\s*,\s*<\s*(\d+)\.(\d+)\s*"', pyproject_text, re.M)
    if m is None:
        raise ValueError('pyproject.toml: expected requires-python = ">=X.Y,<X.Z"')
    a, b, c, d = (int(g) for g in m.groups())
    return (a, b), (c, d)


def promised_versions(pyproject_text):
    """Every minor version the project promises, e.g. ['3.11', '3.12', '3.13']."""
    lo, hi = supported_range(pyproject_text)
    return ["%d.%d" % (lo[0], minor) for minor in range(lo[1], hi[1])] if lo[0] == hi[0] else []


def message(version, pyproject_text):
    """None if ``version`` (major, minor) is supported, else the line to print."""
    lo, hi = supported_range(pyproject_text)
    if lo <= tuple(version[:2]) < hi:
        return None
    return (
        "Python %d.%d is not supported: the pinned stack (JAX 0.4.38, neural-tangents 0.6.5, diffrax 0.7.2) "
        "installs on Python %s. Run make with PYTHON=/path/to/python3.X, e.g. `make test PYTHON=python3.12`."
        % (version[0], version[1], ", ".join(promised_versions(pyproject_text)))
    )


if __name__ == "__main__":
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    problem = message(sys.version_info, text)
    if problem:
        sys.stderr.write(problem + "\n")
        sys.exit(1)
