"""Fourier progress measures of chapter 08 (ntkbook.transformer.fourier_energy / fourier_concentration).

Oracles are independent of the FFT: explicit projections on the real cosine/sine basis of Z_p,
embeddings built from known frequencies, and Parseval's identity.
"""

import numpy as np
import pytest

from ntkbook import transformer


def projection_energy(e, p):
    """Energy per frequency from explicit least-squares coefficients on the orthogonal real basis of Z_p."""
    a = np.arange(p)
    out = [p * (e[:p].mean(0) ** 2).sum()]
    for j in range(1, p // 2 + 1):
        c, s = np.cos(2 * np.pi * j * a / p), np.sin(2 * np.pi * j * a / p)
        energy = 0.0
        for basis in (c, s):
            norm2 = basis @ basis
            if norm2 > 1e-9:  # sin vanishes at the Nyquist frequency of an even p
                energy += ((basis @ e[:p]) ** 2).sum() / norm2
        out.append(energy)
    return np.array(out)


@pytest.mark.parametrize("p", [7, 8, 13])
def test_energy_matches_explicit_projections_and_parseval(p):
    e = np.random.default_rng(p).standard_normal((p + 1, 5))
    got = transformer.fourier_energy(e, p)
    np.testing.assert_allclose(got, projection_energy(e, p), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(), (e[:p] ** 2).sum(), rtol=1e-5)  # the '=' row is ignored


def test_pure_frequencies_are_found():
    p, a = 11, np.arange(11)
    e = np.stack([np.cos(2 * np.pi * 3 * a / p), np.sin(2 * np.pi * 3 * a / p), 2 * np.cos(2 * np.pi * 5 * a / p)], 1)
    energy = transformer.fourier_energy(e, p)
    assert set(np.flatnonzero(energy > 1e-6)) == {3, 5}
    np.testing.assert_allclose(energy[[3, 5]], [p, 2 * p], rtol=1e-5)  # ||cos||^2 = ||sin||^2 = p / 2
    assert transformer.fourier_concentration(e, p, 2) == pytest.approx(1.0)
    assert transformer.fourier_concentration(e, p, 1) == pytest.approx(2 / 3, rel=1e-5)


def test_a_constant_offset_does_not_count_and_spread_energy_is_uniform():
    p = 9
    a = np.arange(p)
    e = np.stack([np.cos(2 * np.pi * j * a / p) for j in range(1, 5)], 1) + 7.0  # equal energy in 1..4
    assert transformer.fourier_concentration(e, p, 1) == pytest.approx(0.25, rel=1e-5)
    assert np.isnan(transformer.fourier_concentration(np.ones((p, 3)), p, 1))


@pytest.mark.parametrize("kwargs, err", [
    (dict(embed=np.ones((4, 2)), p=5, top=1), ValueError),        # fewer rows than number tokens
    (dict(embed=np.ones(5), p=5, top=1), ValueError),             # not a matrix
    (dict(embed=np.ones((5, 2)), p=1, top=1), ValueError),        # p < 2
    (dict(embed=np.ones((5, 2)), p=5, top=3), ValueError),        # top > p // 2
    (dict(embed=np.ones((5, 2)), p=5, top=0), ValueError),
    (dict(embed=np.full((5, 2), np.nan), p=5, top=1), ValueError),
])
def test_bad_input(kwargs, err):
    with pytest.raises(err):
        transformer.fourier_concentration(**kwargs)
