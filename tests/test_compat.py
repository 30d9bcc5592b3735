"""The pinned stack: the JAX version, and neural-tangents importing without TensorFlow."""

import subprocess
import sys
import textwrap

import jax

from ntkbook import _compat


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_pinned_jax_is_running():
    assert jax.__version__ == _compat.PINNED_JAX == "0.4.38"
    import jaxlib

    assert jaxlib.__version__ == "0.4.38"


def test_neural_tangents_imports_without_tensorflow():
    result = _run(
        """
        import importlib.util, sys
        assert importlib.util.find_spec("tensorflow") is None, "tensorflow is installed; this test needs it absent"
        import ntkbook.kernels
        import neural_tangents as nt
        assert "tensorflow" not in sys.modules
        assert nt.empirical_ntk_fn is not None and nt.stax.Dense is not None
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_bare_import_fails_without_the_patch():
    # Documents why _compat exists: without it neural-tangents reaches for TensorFlow.
    result = _run("import neural_tangents")
    assert result.returncode != 0
    assert "tensorflow" in result.stderr


def test_apply_is_idempotent():
    import jax.interpreters.ad as ad

    before = (sys.modules["neural_tangents.experimental"], ad.source_info_util, ad.config)
    _compat.apply()
    _compat.apply()
    after = (sys.modules["neural_tangents.experimental"], ad.source_info_util, ad.config)
    assert all(a is b for a, b in zip(before, after))


def test_version_check_warns_on_mismatch(monkeypatch, recwarn):
    monkeypatch.setattr(jax, "__version__", "0.10.2")
    assert _compat.check_jax_version() == "0.10.2"
    assert any("jax==0.4.38" in str(w.message) for w in recwarn.list)


def test_max_learning_rate_works_on_the_pinned_scipy():
    # Patch 4. Oracle: the docstring's formula 2 (1 + momentum) N / lambda_max, with
    # lambda_max from numpy's eigvalsh (not SciPy's, which the patch wraps).
    import numpy as np
    import neural_tangents as nt

    import ntkbook.kernels  # noqa: F401  (applies the patch)

    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 30))
    ntk = a @ a.T
    lam = np.linalg.eigvalsh(ntk)[-1]
    # neural-tangents works in float32 (JAX's default): 1e-6 is a few float32 epsilons
    for momentum in (0.0, 0.9):
        lr = nt.predict.max_learning_rate(ntk, momentum=momentum)
        np.testing.assert_allclose(lr, 2 * (1 + momentum) * 12 / (lam + 1e-12), rtol=1e-6)
    lr = nt.predict.max_learning_rate(ntk, y_train_size=36)
    np.testing.assert_allclose(lr, 2 * 36 / (lam + 1e-12), rtol=1e-6)


def test_max_learning_rate_fails_without_patch_4():
    # Documents why patch 4 exists (and fails if a future SciPy pin brings eigvals= back).
    result = _run(
        """
        import numpy as np
        from ntkbook import _compat
        _compat.apply()
        import neural_tangents as nt
        try:
            nt.predict.max_learning_rate(np.eye(3))
        except TypeError as e:
            print("TypeError", "eigvals" in str(e))
        """
    )
    assert result.stdout.strip() == "TypeError True", (result.stdout, result.stderr)
