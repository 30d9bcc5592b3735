"""ntkbook._checks, and bad inputs the library audit found passing silently, now refused by name.

Each case asserts the exception type and that the message names the argument; the
expensive step behind a public function is replaced by a spy that fails the test
if it is reached, so a refusal is shown to come before any compile or training.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkbook import _checks, augment, collapse, dynamics, metrics, train, transformer

NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------- the checks themselves
@pytest.mark.parametrize("value", [0, 3, np.int64(2), 1.0, 1e300])
def test_finite_accepts_real_numbers(value):
    assert _checks.finite(value, "x") == float(value)


@pytest.mark.parametrize("value, exc, words", [
    (NAN, ValueError, "finite"), (INF, ValueError, "finite"), (-INF, ValueError, "finite"),
    (True, TypeError, "number"), ("1", TypeError, "number"), (None, TypeError, "number"), ([1.0], TypeError, "number"),
])
def test_finite_refuses(value, exc, words):
    with pytest.raises(exc, match=f"myarg must be .*{words}"):
        _checks.finite(value, "myarg")


def test_bounds_and_their_wording():
    assert _checks.positive(1e-300, "a") == 1e-300
    assert _checks.nonneg(0.0, "a") == 0.0
    assert _checks.probability(1.0, "p") == 1.0
    with pytest.raises(ValueError, match=r"a must be positive \(> 0\), got 0"):
        _checks.positive(0, "a")
    with pytest.raises(ValueError, match=r"a must be non-negative \(>= 0\)"):
        _checks.nonneg(-1e-12, "a")
    with pytest.raises(ValueError, match="p must be < 1"):
        _checks.probability(1.0, "p", open_high=True)
    with pytest.raises(ValueError, match="p must be <= 1"):
        _checks.probability(1.5, "p")
    with pytest.raises(ValueError, match="p must be finite"):
        _checks.probability(NAN, "p")  # a `not 0 <= p <= 1` test would catch NaN too; `p < 0 or p > 1` would not


@pytest.mark.parametrize("value", [0, -3, 1.0, True, np.float32(2), "2", None])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        _checks.positive_int(value, "n")


def test_keys():
    raw = jax.random.PRNGKey(0)
    typed = jax.random.key(0)
    assert _checks.key(raw) is raw and _checks.key(typed) is typed
    for bad in (0, np.uint32([0, 1]), jnp.zeros(2), jnp.zeros(2, jnp.int32), jax.random.split(raw, 3), jax.random.split(typed, 2)):
        with pytest.raises(TypeError, match="probe_key must be a single JAX PRNG key"):
            _checks.key(bad, "probe_key")


def test_arrays_labels_choices_booleans():
    assert _checks.finite_array(np.ones((2, 3)), "x", ndim=2).shape == (2, 3)
    with pytest.raises(ValueError, match="x contains 1 NaN or inf"):
        _checks.finite_array(np.array([1.0, NAN]), "x")
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype int32"):
        _checks.finite_array(np.ones(3, np.int32), "x")
    with pytest.raises(ValueError, match="x must have 2 or 4 dimensions"):
        _checks.finite_array(np.ones(3), "x", ndim=(2, 4))
    assert list(_checks.labels([0, 2, 1], "y", 3)) == [0, 2, 1]
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
        _checks.labels([0, 3], "y", 3)
    with pytest.raises(ValueError, match="y must be a 1-D array of integer class labels"):
        _checks.labels([0.0, 1.0], "y", 3)
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'"):
        _checks.choice("c", "mode", ("a", "b"))
    assert _checks.boolean(np.bool_(True), "flag") is True
    for bad in ("no", 0, None):
        with pytest.raises(TypeError, match="flag must be True or False"):
            _checks.boolean(bad, "flag")


# ------------------------------------------- the audit's silent cases, now refused by name
KAPPAS = (1.0, 0.4, 0.1)


def _reduced():
    return collapse.balanced_state(jax.random.PRNGKey(0), KAPPAS, num_classes=3, per_class=4, feature_dim=6)


@pytest.fixture
def no_solver(monkeypatch):
    def spy(*args, **kwargs):
        raise AssertionError("the ODE solver was reached before the bad input was refused")
    monkeypatch.setattr(collapse, "_solve", spy)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(ts=[0.0, NAN]), ValueError, "ts must be an increasing 1-D array of at least 2 finite"),
    (dict(ts=[0.0, INF]), ValueError, "ts must be an increasing"),
    (dict(ts=[0.0, 1.0], rtol=NAN), ValueError, "rtol must be finite"),
    (dict(ts=[0.0, 1.0], atol=0.0), ValueError, "atol must be positive"),
    (dict(ts=[0.0, 1.0], train_bias="no"), TypeError, "train_bias must be True or False"),
    (dict(ts=[0.0, 1.0], max_steps=0), ValueError, "max_steps must be an integer >= 1"),
])
def test_collapse_integrate_refuses_before_solving(no_solver, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        collapse.integrate(_reduced(), KAPPAS, **kwargs)


def test_collapse_integrate_refuses_non_finite_or_integer_states(no_solver):
    s = _reduced()
    with pytest.raises(ValueError, match="state0.W contains NaN or inf"):
        collapse.integrate(s._replace(W=s.W.at[0, 0].set(NAN)), KAPPAS, [0.0, 1.0])
    with pytest.raises(TypeError, match="state0.b must be a floating-point array"):
        collapse.integrate(s._replace(b=jnp.zeros(3, jnp.int32)), KAPPAS, [0.0, 1.0])


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(bias=NAN), ValueError, "bias must be finite"),
    (dict(feature_scale=NAN), ValueError, "feature_scale must be finite"),
    (dict(feature_scale=-1.0), ValueError, "feature_scale must be positive"),
    (dict(centered="yes"), TypeError, "centered must be True or False"),
])
def test_balanced_state_refuses(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        collapse.balanced_state(jax.random.PRNGKey(0), KAPPAS, num_classes=3, per_class=4, feature_dim=6, **kwargs)


def test_balanced_state_refuses_an_int_key():
    with pytest.raises(TypeError, match="key must be a single JAX PRNG key"):
        collapse.balanced_state(0, KAPPAS, num_classes=3, per_class=4, feature_dim=6)


def test_invariant_refuses_a_wrongly_shaped_H2():
    s = _reduced()
    assert collapse.invariant(s.W, s.H1, s.H2, KAPPAS).shape == (6, 6)
    with pytest.raises(ValueError, match="invariant needs H1 .*H2 .*W"):
        collapse.invariant(s.W, s.H1, s.H2[:, :-1], KAPPAS)  # 8 columns is not C (m - 1) = 9
    with pytest.raises(ValueError, match="invariant needs"):
        collapse.invariant(s.W, s.H1, s.H2[:-1], KAPPAS)


def test_relative_error_against_a_zero_reference_is_refused():
    with pytest.raises(ValueError, match="reference b has norm 0"):
        metrics.relative_frobenius_error(np.ones((2, 2)), np.zeros((2, 2)))
    assert float(metrics.relative_frobenius_error(np.ones(3), 2 * np.ones(3))) == pytest.approx(0.5)


@pytest.mark.parametrize("angle", [NAN, INF])
def test_rotate_refuses_a_non_finite_angle(angle):
    with pytest.raises(ValueError, match="angle_deg must be finite"):
        augment.rotate(jnp.ones((8, 8)), angle)


def test_transformer_refuses_tokens_outside_the_vocabulary():
    net = transformer.transformer(6, 3, 5, d_model=8, heads=2, d_mlp=8)
    params = net.init_fn(jax.random.PRNGKey(0))
    assert net.apply_fn(params, jnp.array([[0, 1, 5]])).shape == (1, 5)
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 6\) \(vocab=6\)"):
        net.apply_fn(params, jnp.array([[0, 6, 5]]))
    with pytest.raises(ValueError, match="tokens must lie"):
        net.apply_fn(params, jnp.array([[0, -1, 5]]))


def test_active_learning_refuses_a_negative_rate(monkeypatch):
    monkeypatch.setattr(train, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    x = jnp.ones((20, 4))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        dynamics.active_learning(lambda p, xx: xx @ p, jnp.zeros((4, 2)), x, y, x, y, initial=[0, 1], rounds=1,
                                 per_round=1, strategy="random", kernel="pntk", train_steps=5, learning_rate=-0.5,
                                 key=jax.random.PRNGKey(0))
