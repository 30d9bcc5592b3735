"""Make neural-tangents 0.6.5 importable on the pinned JAX (0.4.38).

neural-tangents is archived; its last release predates several JAX changes.
Three small patches, applied before ``neural_tangents`` is first imported, make
everything the book uses work (see the README, "Why these pins"):

1. ``neural_tangents/__init__.py`` imports ``.experimental``, which imports
   TensorFlow. We register an empty module under that name first; nothing the
   book uses lives there, and TensorFlow is then never needed.
2. ``jax.interpreters.ad.source_info_util`` and
3. ``jax.interpreters.ad.config`` moved in JAX 0.4.x; the structured-derivatives
   eNTK implementation still looks them up in the old place.

The patches are idempotent: :func:`apply` may be called any number of times.
"""

from __future__ import annotations

import sys
import types
import warnings

PINNED_JAX = "0.4.38"

_EXPERIMENTAL = "neural_tangents.experimental"


def apply() -> None:
    """Apply the three neural-tangents patches (idempotent)."""
    if _EXPERIMENTAL not in sys.modules:
        stub = types.ModuleType(_EXPERIMENTAL)
        stub.__doc__ = "Empty stand-in registered by ntkbook._compat (avoids TensorFlow)."
        sys.modules[_EXPERIMENTAL] = stub

    import jax
    import jax._src.source_info_util as source_info_util
    import jax.interpreters.ad as ad

    if not hasattr(ad, "source_info_util"):
        ad.source_info_util = source_info_util
    if not hasattr(ad, "config"):
        ad.config = jax.config


def check_jax_version() -> str:
    """Return the running JAX version, warning if it is not the pinned one.

    neural-tangents fails in confusing ways on other JAX versions (for example
    ``cannot import name 'Jaxpr' from 'jax.core'``), so a mismatch is reported
    up front with the fix.
    """
    import jax

    if jax.__version__ != PINNED_JAX:
        warnings.warn(
            f"ntkbook expects jax=={PINNED_JAX} (neural-tangents 0.6.5 does not run on "
            f"newer JAX) but jax=={jax.__version__} is running. Install the pinned stack: "
            "`pip install -r requirements.txt && pip install --no-deps -r requirements-nodeps.txt`, "
            "and restart the kernel.",
            RuntimeWarning,
            stacklevel=2,
        )
    return jax.__version__


apply()
