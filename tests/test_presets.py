import pytest

from ntkbook import presets


def test_every_chapter_defines_the_same_keys_in_every_preset():
    for chapter, by_preset in presets.CHAPTERS.items():
        assert set(by_preset) == set(presets.NAMES), chapter
        keys = {name: set(values) for name, values in by_preset.items()}
        assert keys["ci"] == keys["book"] == keys["paper"], (chapter, keys)


def test_values_are_plain_data():
    def plain(v):
        if isinstance(v, (tuple, list)):
            return all(plain(x) for x in v)
        return isinstance(v, (int, float, str, bool)) or v is None

    for chapter, by_preset in presets.CHAPTERS.items():
        for name, values in by_preset.items():
            for key, value in values.items():
                assert plain(value), (chapter, name, key, value)


def test_default_and_environment(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    assert presets.current() == "book"
    monkeypatch.setenv(presets.ENV_VAR, "ci")
    assert presets.current() == "ci"
    cfg = presets.config("01_lazy")
    assert cfg.preset == "ci" and cfg.chapter == "01_lazy"
    assert cfg.init_widths == presets.CHAPTERS["01_lazy"]["ci"]["init_widths"]


@pytest.mark.parametrize("small, large", [("ci", "book"), ("book", "paper")])
def test_a_smaller_preset_never_draws_more(small, large):
    # Spot check of the intent on scalar counts: ci trains fewer steps and networks than book, and book
    # no more than paper (paper's grid_seeds of chapter 05 was once 2 against book's 3; ch10's book
    # sweep_repeats once 3 against ci's 5). Per-width tuples such as ch01's jac_nets are not compared
    # (ci puts 32 networks at width 316, book 24 there and 12 more at width 1000).
    for chapter, by_preset in presets.CHAPTERS.items():
        for key, value in by_preset[small].items():
            if key.endswith(("steps", "draws", "seeds", "nets", "frames", "samples", "repeats")) and isinstance(value, int):
                assert value <= by_preset[large][key], (chapter, key, value, by_preset[large][key])


def test_unknown_names_raise(monkeypatch):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        presets.config("01_lazy", "huge")
    monkeypatch.setenv(presets.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="NTKBOOK_PRESET"):
        presets.current()
    with pytest.raises(ValueError, match="unknown chapter"):
        presets.config("99_nothing", "ci")


def test_missing_setting_names_chapter_and_alternatives():
    cfg = presets.config("01_lazy", "ci")
    with pytest.raises(AttributeError, match="01_lazy.*no setting 'depth'"):
        cfg.depth
    assert dict(cfg) == presets.CHAPTERS["01_lazy"]["ci"]


# --- the book seed ($NTKBOOK_SEED) and the keys derived from it -------------------------

import subprocess
import sys

import jax
import numpy as np


def _bits(key):
    return np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)


def test_seed_defaults_to_zero_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv(presets.SEED_VAR, raising=False)
    assert presets.seed() == 0
    monkeypatch.setenv(presets.SEED_VAR, "  ")
    assert presets.seed() == 0
    monkeypatch.setenv(presets.SEED_VAR, "7")
    assert presets.seed() == 7
    assert presets.config("01_lazy", "ci").seed == 7
    assert presets.config("01_lazy", "ci", seed_value=3).seed == 3


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "nan", "inf", "0x10", str(2**32)])
def test_invalid_seed_in_the_environment_is_refused_by_name(monkeypatch, raw):
    monkeypatch.setenv(presets.SEED_VAR, raw)
    with pytest.raises(ValueError, match="NTKBOOK_SEED|seed must be in"):
        presets.config("01_lazy", "ci")


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (2**32, ValueError), (1.0, TypeError), (True, TypeError), ("1", TypeError)])
def test_invalid_seed_argument_is_refused(bad, exc):
    with pytest.raises(exc, match="seed"):
        presets.config("01_lazy", "ci", seed_value=bad)


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (2**32, ValueError), (0.5, TypeError), (False, TypeError), ("", ValueError), (None, TypeError)])
def test_invalid_stream_is_refused(bad, exc):
    cfg = presets.config("01_lazy", "ci", seed_value=0)
    with pytest.raises(exc, match="stream"):
        cfg.key(bad)
    with pytest.raises(exc, match="stream"):
        cfg.rng(bad)


def test_seed_zero_gives_the_reference_keys():
    # The documented contract: seed 0 is jax.random.PRNGKey(stream) and default_rng(stream).
    cfg = presets.config("02_ntk_flow", "ci", seed_value=0)
    for stream in (0, 1, 5, 1003):
        np.testing.assert_array_equal(_bits(cfg.key(stream)), _bits(jax.random.PRNGKey(stream)))
        np.testing.assert_array_equal(cfg.rng(stream).integers(0, 2**31, 8), np.random.default_rng(stream).integers(0, 2**31, 8))


def test_every_seed_changes_every_stream_and_streams_stay_distinct():
    streams = [0, 1, 2, 3, 100, 1000, "probes"]
    table = {}
    for s in range(6):
        cfg = presets.config("05_finite_ntk", "ci", seed_value=s)
        for stream in streams:
            table[s, stream] = tuple(_bits(cfg.key(stream)).tolist())
    # all 42 (seed, stream) keys are distinct: no seed reproduces another's draws
    assert len(set(table.values())) == len(table)
    # and the draws differ, not only the key bits
    a = jax.random.normal(presets.derive_key(0, 0), (1000,))
    b = jax.random.normal(presets.derive_key(0, 1), (1000,))
    assert abs(float(jnp_corr(a, b))) < 4 / np.sqrt(1000)  # independent draws: |r| < 4 standard errors


def jnp_corr(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.corrcoef(a, b)[0, 1]


def test_named_streams_are_the_same_in_every_process():
    # Python's hash() of a str changes between processes (PYTHONHASHSEED); the stream name must not.
    code = (
        "import numpy as np, jax; from ntkbook import presets; "
        "print(np.asarray(presets.derive_key('probes', 3)).tolist(), presets.derive_rng('probes', 3).integers(0, 10**9))"
    )
    outs = set()
    for hashseed in ("1", "2"):
        env = {**__import__("os").environ, "PYTHONHASHSEED": hashseed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1


# --- every preset is checked for feasibility when it is read ---------------------------------


@pytest.mark.parametrize("chapter", sorted(presets.CHAPTERS))
@pytest.mark.parametrize("preset", presets.NAMES)
def test_every_chapter_at_every_preset_is_feasible(chapter, preset):
    cfg = presets.config(chapter, preset, 0)  # config() runs check_values
    assert cfg.preset == preset


def test_the_digits_constants_match_the_data():
    from ntkbook import data

    _, y = data.digits()
    counts = np.bincount(y)
    assert presets.DIGITS_MIN_PER_CLASS == data.DIGITS_MIN_PER_CLASS == counts.min()
    assert presets.DIGITS_PARITY == {"even": int(counts[::2].sum()), "odd": int(counts[1::2].sum())}


def _with(monkeypatch, chapter, preset, **changes):
    values = dict(presets.CHAPTERS[chapter][preset], **changes)
    monkeypatch.setitem(presets.CHAPTERS[chapter], preset, values)


@pytest.mark.parametrize("chapter, changes, words", [
    ("03_infinite_width", dict(digits_train=100, digits_test=100), r"digits_train \+ digits_test = 200 .*174"),
    ("06_ntk_trace", dict(train_per_class=125), r"train_per_class \+ 50 = 175"),
    ("06_ntk_trace", dict(train_records=1000), r"train_records = 1000 record points do not fit train_steps"),
    ("05_finite_ntk", dict(grid_records=(10, 100, 5000)), r"grid_records = .* must lie in \[1, grid_steps"),
    ("05_finite_ntk", dict(grid_seeds=2), "grid_seeds = 2 must be odd and >= 3"),
    ("05_finite_ntk", dict(grid_seeds=4), "grid_seeds = 4 must be odd and >= 3"),
    ("01_lazy", dict(train_steps=0), r"train_steps = 0 is not a positive size"),
    ("01_lazy", dict(alphas=(1.0, float("nan"))), r"alphas\[1\] = nan is not a finite"),
    ("01_lazy", dict(train_nets=(16, 32)), "train_nets must give one count per entry of train_widths"),
    ("02_ntk_flow", dict(flow_widths=()), "flow_widths is empty"),
    ("10_scaling_laws", dict(digits_ns=(10, 1000), digits_val=300), r"max\(digits_ns\) \+ digits_val \+ digits_test"),
    ("12_collapse_ode", dict(feature_dim=4), "feature_dim must be >= classes"),
    ("14_pseudo_ntk", dict(show_widths=(64, 100)), "show_widths = .* must be a subset of widths"),
    ("14_pseudo_ntk", dict(cost_n=400, cost_classes=(1, 100)), "a float32 eNTK of 6.0 GiB .* over its 2 GiB budget"),
    ("15_lookahead", dict(rank_sizes=(25, 500)), "rank_sizes = .* exceed the pool"),
    ("09_semisup", dict(batch_size=64, n_labelled=5), "batch_size = 64 exceeds"),
])
def test_an_infeasible_preset_is_refused_with_the_field_named(monkeypatch, chapter, changes, words):
    _with(monkeypatch, chapter, "ci", **changes)
    with pytest.raises(ValueError, match=f"preset 'ci' of chapter '{chapter}': .*{words}"):
        presets.config(chapter, "ci", 0)
