"""Shared test helpers. Tests that need float64 use the ``x64`` fixture.

``ntkbook`` is imported here, before any test module is collected: importing it
applies the neural-tangents compatibility patches (:mod:`ntkbook._compat`), so a
test file that imports ``neural_tangents`` before ``ntkbook`` (e.g.
``tests/test_kernels.py``) also collects when it is run alone.
"""

import jax
import pytest

import ntkbook  # noqa: F401  (applies the neural-tangents patches before any test module imports it)


@pytest.fixture
def x64():
    """Run the test with 64-bit floats (tight tolerances need them)."""
    with jax.experimental.enable_x64():
        yield
