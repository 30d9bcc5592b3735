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

A fourth patch, :func:`patch_predict`, is applied once neural-tangents is
imported (:mod:`ntkbook.kernels` does it right after its import):

4. ``nt.predict.max_learning_rate`` calls ``scipy.linalg.eigvalsh(...,
   eigvals=(i, j))`` on CPU; SciPy removed ``eigvals=`` (it is
   ``subset_by_index=`` since SciPy 1.5). The module's ``sp`` is replaced by a
   view of SciPy whose ``linalg.eigvalsh`` translates the keyword.

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


class _LinalgCompat(types.ModuleType):
    """``scipy.linalg`` with the pre-1.5 ``eigvalsh(..., eigvals=(lo, hi))`` keyword."""

    def __getattr__(self, name: str):
        import scipy.linalg

        return getattr(scipy.linalg, name)

    @staticmethod
    def eigvalsh(a, b=None, *, eigvals=None, **kwargs):
        import scipy.linalg

        if eigvals is not None:
            kwargs["subset_by_index"] = eigvals
        return scipy.linalg.eigvalsh(a, b, **kwargs)


class _ScipyCompat(types.ModuleType):
    """``scipy`` whose ``linalg`` is :class:`_LinalgCompat`; everything else is SciPy's."""

    linalg = _LinalgCompat("scipy.linalg (ntkbook._compat)")

    def __getattr__(self, name: str):
        import scipy

        return getattr(scipy, name)


def patch_predict() -> None:
    """Patch 4: make ``nt.predict.max_learning_rate`` work on the pinned SciPy (idempotent).

    Not patched, and avoided by the book: building ``nt.predict.gradient_descent_mse``
    from a kernel that is traced inside ``jax.vmap`` (one empirical NTK per
    initialisation) raises ``UnexpectedTracerError`` on the pinned neural-tangents
    (its upstream test ``testNTKMeanCovPrediction0``). Loop over initialisations, or
    use :func:`ntkbook.kernels.gradient_flow_mse`, which vmaps
    (``tests/test_neural_tangents.py`` pins both facts).
    """
    import neural_tangents._src.predict as predict

    if not isinstance(predict.sp, _ScipyCompat):
        predict.sp = _ScipyCompat("scipy (ntkbook._compat)")


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
