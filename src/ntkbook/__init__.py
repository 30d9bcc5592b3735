"""ntkbook: the small library behind *The Neural Tangent Kernel, executed*.

Importing the package applies the neural-tangents compatibility patches
(:mod:`ntkbook._compat`) before anything imports ``neural_tangents``. Chapters
import the modules they need, e.g. ``from ntkbook import kernels, models``.

Modules (one concept each):

- :mod:`ntkbook.presets`  size presets ``ci`` / ``book`` / ``paper`` as data
- :mod:`ntkbook.data`     offline datasets (digits, synthetic, modular arithmetic)
- :mod:`ntkbook.datasets` the papers' image data sets (MNIST, Fashion-MNIST, CIFAR-10, SVHN), downloaded and verified
- :mod:`ntkbook.models`   small models as ``(init_fn, apply_fn, kernel_fn)``
- :mod:`ntkbook.kernels`  empirical and infinite NTKs, kernel regression and flow
- :mod:`ntkbook.train`    optax training loops with recording and progress bars
- :mod:`ntkbook.metrics`  power-law fits, norms and distances, kernel and margin measures
- :mod:`ntkbook.meanfield` mean-field signal propagation: q/c maps, chi_1, phases, NTK dispersion
- :mod:`ntkbook.dispersion` Monte Carlo NTK dispersion of finite deep MLPs at initialisation
- :mod:`ntkbook.lazy`     laziness diagnostics: gradient norm, Hessian operator norm
- :mod:`ntkbook.trace`    the eNTK trace: exact, Hutchinson (JVP) and finite-difference estimators
- :mod:`ntkbook.svm`      hard-margin kernel SVM and the trace approximation of its optimum
- :mod:`ntkbook.augment`  weak and strong augmentations of the 8x8 digits (pure functions of a key)
- :mod:`ntkbook.semisup`  FixMatch with EMA copies, the four traces and Thm 5.1 of the trace paper
- :mod:`ntkbook.scaling`  learning curves of a network, its eNTK and its infinite NTK; after-kernels
- :mod:`ntkbook.dynamics` one-step A K G decomposition, preference losses, look-ahead active learning
- :mod:`ntkbook.collapse` block-structured kernels and the gradient-flow ODE of neural collapse
- :mod:`ntkbook.ntk_change` how far training moves the NTK across the (sigma_w^2, depth) phase diagram
- :mod:`ntkbook.transformer` a one-layer ReLU transformer in plain JAX (modular-addition grokking)
- :mod:`ntkbook.timing`   timing compiled JAX code, XLA's flop and memory accounting
- :mod:`ntkbook.progress` progress bars, or one summary line per loop in the static book
- :mod:`ntkbook.plotting` style, palette, animations (the only matplotlib user)
"""

from . import _compat

_compat.apply()
_compat.check_jax_version()

__version__ = "0.1.0"

__all__ = ["__version__"]
