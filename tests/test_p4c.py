"""Chapter 15's sequential look-ahead against direct kernel regression (an independent
oracle: one fresh ``np.linalg.solve`` per prefix), and its argument checks."""

import numpy as np
import pytest

from ntkbook import dynamics


def _problem(n=12, m=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n + m, 7))
    kern = np.exp(-0.5 * ((z[:, None] - z[None]) ** 2).sum(-1) / 4.0) + 0.1 * (z @ z.T) / 7
    return kern[:n, :n] + 1e-3 * np.eye(n), kern[n:, :n], rng.standard_normal((n, k)), rng.standard_normal((n + m, k))


@pytest.mark.parametrize("start", [1, 4, 12])
def test_sequential_lookahead_equals_direct_fit(start):
    k_xx, k_mx, y, f0 = _problem()
    n = k_xx.shape[0]
    fits = dynamics.sequential_lookahead(k_xx, k_mx, y, f0[:n], f0[n:], start)
    assert fits.shape == (n - start + 1, k_mx.shape[0], y.shape[1])
    for i, size in enumerate(range(start, n + 1)):
        direct = f0[n:] + k_mx[:, :size] @ np.linalg.solve(k_xx[:size, :size], y[:size] - f0[:size])
        np.testing.assert_allclose(fits[i], direct, rtol=1e-9, atol=1e-9)


def test_sequential_lookahead_interpolates_added_inputs():
    # Evaluated on the inputs themselves, the fit after all N inputs interpolates Y.
    k_xx, _, y, f0 = _problem(seed=1)
    n = k_xx.shape[0]
    fits = dynamics.sequential_lookahead(k_xx, k_xx, y, f0[:n], f0[:n], 3)
    np.testing.assert_allclose(fits[-1], y, atol=1e-8)


def test_sequential_lookahead_rejects_bad_arguments():
    k_xx, k_mx, y, f0 = _problem()
    n = k_xx.shape[0]
    with pytest.raises(ValueError, match="start"):
        dynamics.sequential_lookahead(k_xx, k_mx, y, f0[:n], f0[n:], n + 1)
    with pytest.raises(ValueError, match="start"):
        dynamics.sequential_lookahead(k_xx, k_mx, y, f0[:n], f0[n:], 0)
    with pytest.raises(ValueError, match="k_xx"):
        dynamics.sequential_lookahead(k_xx[:, :-1], k_mx, y, f0[:n], f0[n:], 2)
    with pytest.raises(ValueError, match="targets"):
        dynamics.sequential_lookahead(k_xx, k_mx, y[:-1], f0[:n], f0[n:], 2)
    with pytest.raises(ValueError, match="k_mx"):
        dynamics.sequential_lookahead(k_xx, k_mx[:, :-1], y, f0[:n], f0[n:], 2)
