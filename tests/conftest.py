"""Shared test helpers. Tests that need float64 use the ``x64`` fixture."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test with 64-bit floats (tight tolerances need them)."""
    with jax.experimental.enable_x64():
        yield
