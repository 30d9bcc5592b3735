"""ntkbook.meanfield.offdiag_ratio_estimate (thesis section 3.2, eq. 18) at depths 3-8.

Oracles:
- the layer-to-layer cosine map of ReLU, iterated with neural-tangents' infinite-width
  NNGP of a bias-free ReLU MLP (``stax``): ``rho_k`` is the cosine of the two inputs'
  pre-activations after ``k`` ReLU layers. It is checked against the arc-cosine form
  ``r(t) = (sin theta + (pi - theta) cos theta) / pi``, ``theta = arccos t``
  (Cho & Saul 2009), written here independently of :func:`meanfield.relu_correlation`;
- eq. (18) evaluated by a recursion instead of the explicit sum:
  ``N_1 = D_1 = 1``, ``N_{L+1} = 1 + a g(rho_{L-1}) N_L``, ``D_{L+1} = 1 + a D_L``,
  ``g(t) = (pi - arccos t) / pi`` (the degree-0 arc-cosine kernel), so that
  ``N_L = sum_l a^{L-l} prod_{k=l}^{L-1} g(rho_{k-1})`` and ``D_L = sum_l a^{L-l}``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import meanfield as mf  # applies the neural-tangents patches first

from neural_tangents import stax  # noqa: E402


def _arccos1(t):
    theta = np.arccos(np.clip(t, -1.0, 1.0))
    return (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi


def _stax_cosines(rho0, layers):
    """Cosines of the pre-activations after 0..layers ReLU layers (infinite width, no biases)."""
    x = jnp.asarray([[1.0, 0.0], [rho0, np.sqrt(1.0 - rho0**2)]], jnp.float64)
    out = []
    for k in range(layers + 1):
        _, _, kernel_fn = stax.serial(*([stax.Dense(1, W_std=np.sqrt(2.0), b_std=None), stax.Relu()] * k),
                                      stax.Dense(1, W_std=np.sqrt(2.0), b_std=None))
        nngp = np.asarray(kernel_fn(x, None, "nngp"))
        out.append(nngp[0, 1] / np.sqrt(nngp[0, 0] * nngp[1, 1]))
    return np.array(out)


def _ratio_by_recursion(rhos, depth, a):
    g = (np.pi - np.arccos(np.clip(rhos, -1.0, 1.0))) / np.pi
    num = den = 1.0
    for ell in range(1, depth):
        num, den = 1.0 + a * g[ell - 1] * num, 1.0 + a * den
    return num / den


@pytest.mark.parametrize("rho0", [-0.4, 0.0, 0.3, 0.9])
def test_iterated_relu_cosine_map_matches_neural_tangents(x64, rho0):
    stax_rho = _stax_cosines(rho0, 7)
    hand = [rho0]
    for _ in range(7):
        hand.append(_arccos1(hand[-1]))
    np.testing.assert_allclose(stax_rho, hand, rtol=1e-9, atol=1e-12)
    # and the library's one-step map (arcsin form) agrees with the arc-cosine form
    np.testing.assert_allclose(mf.relu_correlation(np.array(hand[:-1])), hand[1:], rtol=1e-12)


@pytest.mark.parametrize("depth", [3, 4, 5, 6, 8])
@pytest.mark.parametrize("rho0, w_var", [(0.3, 1.2), (-0.4, 0.8), (0.0, 1.9), (0.9, 1.5)])
def test_offdiag_ratio_estimate_matches_the_recursion_over_iterated_cosines(x64, depth, rho0, w_var):
    rhos = _stax_cosines(rho0, depth)  # rho_0 .. rho_depth from neural-tangents
    want = _ratio_by_recursion(rhos, depth, w_var / 2.0)
    assert mf.offdiag_ratio_estimate(rho0, depth, w_var) == pytest.approx(want, rel=1e-9)


def test_the_depth_three_value_by_hand():
    # L = 3: (a^2 g(rho_0) g(rho_1) + a g(rho_1) + 1) / (a^2 + a + 1), rho_1 = r(rho_0).
    # A version that does not iterate the map (rho_1 = rho_0) is off by ~2 % here.
    a, rho0 = 0.9, 0.1
    rho1 = _arccos1(rho0)
    g0, g1 = (np.pi - np.arccos(rho0)) / np.pi, (np.pi - np.arccos(rho1)) / np.pi
    want = (a**2 * g0 * g1 + a * g1 + 1) / (a**2 + a + 1)
    wrong = (a**2 * g0 * g0 + a * g0 + 1) / (a**2 + a + 1)
    assert abs(want - wrong) > 0.01 * want
    assert mf.offdiag_ratio_estimate(rho0, 3, 2 * a) == pytest.approx(want, rel=1e-12)
