"""Tests of ntkbook.timing: the timing helper and XLA's accounting.

No speed is asserted. The timing oracles are sleeps of known length: a timed call
that sleeps ``t`` seconds cannot take less than ``t`` (``time.sleep`` sleeps at
least as long as asked), and on a loaded machine it overshoots by scheduling
delays only, far below the generous ``SLACK`` bound. The accounting oracles are
closed forms for a matrix product.
"""

import math
import time

import jax
import jax.numpy as jnp
import pytest

from ntkbook import timing

T = 0.05  # seconds each timed call sleeps
SLOW = 1.0  # seconds the warm-up call sleeps: a time this long means warm-up was timed
SLACK = 0.5  # scheduling overshoot allowed on a loaded 2-core machine; < SLOW - T, so the test can fail


class _Sleeper:
    """``fn`` for :func:`timing.best_time`: the first call sleeps ``SLOW``, later calls ``T``."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        time.sleep(SLOW if self.calls == 1 else T)
        return jnp.asarray(float(self.calls))


def test_best_time_times_the_calls_after_warmup():
    fn = _Sleeper()
    res = timing.best_time(fn, repeats=3, warmup=1)
    assert fn.calls == 1 + 3  # one warm-up call, three timed ones
    assert len(res["times_s"]) == 3
    # every timed call slept T (never SLOW: the warm-up call is not among them)
    assert all(T <= t <= T + SLACK for t in res["times_s"]), res["times_s"]
    assert res["min_s"] == min(res["times_s"])
    assert res["median_s"] == sorted(res["times_s"])[1]


def test_best_time_without_warmup_times_the_first_call():
    fn = _Sleeper()
    res = timing.best_time(fn, repeats=2, warmup=0)
    assert fn.calls == 2 and len(res["times_s"]) == 2
    assert SLOW <= res["times_s"][0] <= SLOW + SLACK
    assert T <= res["min_s"] <= T + SLACK


def test_best_time_waits_for_the_result():
    # jax.block_until_ready calls .block_until_ready() on leaves that are not jax arrays:
    # a result that is returned at once but takes T to become ready must be timed at >= T.
    class Pending:
        blocked = 0

        def block_until_ready(self):
            Pending.blocked += 1
            time.sleep(T)
            return self

    res = timing.best_time(lambda: {"a": Pending()}, repeats=4, warmup=2)
    assert Pending.blocked == 2 + 4
    assert len(res["times_s"]) == 4
    assert T <= res["min_s"] <= T + SLACK


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(repeats=0), "repeats"), (dict(repeats=-2), "repeats"), (dict(repeats=1.5), "repeats"),
     (dict(repeats=True), "repeats"), (dict(warmup=-1), "warmup"), (dict(warmup=0.5), "warmup")],
)
def test_best_time_bad_counts_raise_before_calling(kwargs, name):
    fn = _Sleeper()
    with pytest.raises(ValueError, match=name):
        timing.best_time(fn, **kwargs)
    assert fn.calls == 0


def test_xla_accounting_of_a_matmul():
    n, k, m = 3, 5, 7
    a = jnp.ones((n, k), jnp.float32)
    b = jnp.ones((k, m), jnp.float32)
    compiled, seconds = timing.compile_timed(jax.jit(jnp.matmul), a, b)
    assert seconds > 0
    acc = timing.xla_accounting(compiled)
    # XLA counts a multiply-add as two flops: 2 n k m for an (n,k) x (k,m) product
    # (checked against jax 0.4.38's CPU backend: 210 for these shapes).
    assert acc["flops"] == 2 * n * k * m
    assert acc["output_bytes"] == 4 * n * m  # float32 result
    assert acc["argument_bytes"] == 4 * (n * k + k * m)
    assert acc["temp_bytes"] >= 0
    assert acc["peak_bytes"] == acc["argument_bytes"] + acc["output_bytes"] + acc["temp_bytes"]
    # the compiled executable is the program that was accounted for
    assert jnp.array_equal(compiled(a, b), jnp.full((n, m), float(k)))


class _FakeCompiled:
    def __init__(self, cost, mem):
        self._cost, self._mem = cost, mem

    def cost_analysis(self):
        return self._cost

    def memory_analysis(self):
        return self._mem


class _Mem:
    argument_size_in_bytes = 10
    output_size_in_bytes = 20
    temp_size_in_bytes = 5


@pytest.mark.parametrize("cost", [{"flops": 12.0}, [{"flops": 12.0}], ({"flops": 12.0},)])
def test_xla_accounting_reads_a_dict_or_a_list_of_them(cost):
    acc = timing.xla_accounting(_FakeCompiled(cost, _Mem()))
    assert acc == {"flops": 12.0, "argument_bytes": 10, "output_bytes": 20, "temp_bytes": 5, "peak_bytes": 35}


@pytest.mark.parametrize("cost", [None, [], {}, [{"bytes accessed": 3.0}]])
def test_xla_accounting_without_reports(cost):
    acc = timing.xla_accounting(_FakeCompiled(cost, None))
    assert math.isnan(acc["flops"])
    assert {k: acc[k] for k in ("argument_bytes", "output_bytes", "temp_bytes", "peak_bytes")} == dict.fromkeys(
        ("argument_bytes", "output_bytes", "temp_bytes", "peak_bytes"))


def test_compile_timed_needs_a_jitted_function():
    with pytest.raises(TypeError, match="jitted"):
        timing.compile_timed(lambda a, b: a @ b, jnp.ones((2, 2)), jnp.ones((2, 2)))
