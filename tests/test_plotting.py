import matplotlib

matplotlib.use("Agg")  # tests only; never set for notebook runs (figures would vanish)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ntkbook import plotting  # noqa: E402


def test_ellipse_points_lie_on_the_quadratic_form():
    k = np.array([[3.0, 1.0], [1.0, 2.0]])
    c = np.array([0.5, -1.0])
    pts = plotting.ellipse_points(k, c, level=0.7)
    d = pts - c
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", d, k, d), 0.49, rtol=1e-10)
    with pytest.raises(ValueError, match="positive definite"):
        plotting.ellipse_points(np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="2x2"):
        plotting.ellipse_points(np.eye(3))


def test_palette_and_small_multiples():
    assert len(set(plotting.PALETTE)) == len(plotting.PALETTE) == 8
    fig, axes = plotting.small_multiples(5, ncols=3)
    assert len(axes) == 5 and sum(ax.get_visible() for ax in fig.axes) == 5
    plt.close(fig)


def test_animate_embeds_every_frame():
    plotting.use_style()
    fig, ax = plt.subplots()
    (line,) = ax.plot([0, 1], [0, 0])
    html = plotting.animate(fig, lambda k: line.set_ydata([0, k]), 4)
    assert html.data.count("data:image/png;base64") == 4
    assert not plt.fignum_exists(fig.number)
