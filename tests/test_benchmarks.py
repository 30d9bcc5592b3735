"""Smoke test of the benchmark scripts at tiny sizes: they run, and what they record is sane.

No timing is asserted (speed belongs in benchmarks/, measured side by side);
what is asserted holds on any machine: the implementations compute the same
kernel, XLA's counts are positive, blocking reproduces the one-block kernel's
shape of results, and the largest kernel that fits grows when it is traced.
"""

import json
import math

import nbformat
import pytest

from benchmarks import chapters, entk, run


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    assert run.main(["--size", "tiny", "--sections", "entk,blocking", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_implementation_and_model_is_measured(results):
    section = results["sections"]["entk"]
    assert section["size"] == "tiny" and section["machine"]["jax"] == "0.4.38"
    rows = section["result"]["rows"]
    assert {(r["model"], r["implementation"]) for r in rows} == {
        (m, i) for m in ("mlp", "cnn") for i in entk.IMPLEMENTATIONS}
    for r in rows:
        assert "skipped" not in r, r
        assert r["min_s"] > 0 and r["flops"] > 0 and r["peak_bytes"] > 0
        assert 0 < r["fraction_of_gemm"] and math.isfinite(r["fraction_of_gemm"])
        # Four independent computations of one float32 kernel agree to float32 round-off.
        assert r["max_rel_diff_vs_first"] < 1e-5, r


def test_blocking_section(results):
    res = results["sections"]["blocking"]["result"]
    assert [r["batch_size"] for r in res["rows"]] == [None, res["n"] // 2, res["n"] // 4]
    assert res["rows"][0]["overhead"] == 1.0
    full, traced = res["largest_n"]["full"], res["largest_n"]["trace"]
    assert 0 < full["one_block_largest_n"] <= traced["one_block_largest_n"]
    assert full["one_block_bytes_at_n"] <= res["available_bytes"]
    # The blocked kernel is limited by its output: N^2 k^2 float32 entries, held twice.
    assert full["blocked_largest_n"] == int((res["available_bytes"] / 800) ** 0.5)


def test_sections_are_merged_not_replaced(tmp_path):
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"sections": {"old": {"size": "full"}}}))
    assert run.main(["--size", "tiny", "--sections", "blocking", "--out", str(out)]) == 0
    assert set(json.loads(out.read_text())["sections"]) == {"old", "blocking"}


def test_unknown_section_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        run.main(["--sections", "nope", "--out", str(tmp_path / "r.json")])


def test_chapter_times(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for name, code in [("01_ok", "x = 1"), ("02_fails", "assert False, 'claim does not hold'")]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, book / f"{name}.ipynb")
    res = chapters.run("ci", book_dir=book)
    by = {r["chapter"]: r for r in res["rows"]}
    assert by["01_ok"]["passed"] and by["01_ok"]["seconds"] > 0
    assert not by["02_fails"]["passed"] and "claim does not hold" in by["02_fails"]["error"]
    with pytest.raises(ValueError, match="unknown chapters"):
        chapters.run("ci", only=["99_none"], book_dir=book)
    with pytest.raises(ValueError, match="unknown preset"):
        chapters.run("fast", book_dir=book)


def test_a_cell_past_the_timeout_fails_its_chapter(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(120)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "01_slow.ipynb")
    (row,) = chapters.run("ci", book_dir=book, timeout=5)["rows"]
    assert not row["passed"] and row["cell_timeout_s"] == 5
    with pytest.raises(ValueError, match="timeout must be a positive int"):
        chapters.run("ci", book_dir=book, timeout=0)


def test_run_refuses_a_bad_timeout():
    with pytest.raises(SystemExit):
        run.main(["--chapters", "01_lazy", "--timeout", "0", "--out", "/tmp/never-written.json"])


def _section(tmp_path_factory, name):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    assert run.main(["--size", "tiny", "--sections", name, "--out", str(out)]) == 0
    return json.loads(out.read_text())["sections"][name]["result"]


@pytest.fixture(scope="module")
def trace_result(tmp_path_factory):
    return _section(tmp_path_factory, "trace")


@pytest.fixture(scope="module")
def pntk_result(tmp_path_factory):
    return _section(tmp_path_factory, "pntk")


def test_trace_section(trace_result):
    res = trace_result
    assert {r["model"] for r in res["rows"]} == {"mlp", "cnn"}
    for r in res["rows"]:
        assert r["exact_value"] > 0 and r["exact_s"] > 0
        for method in ("jvp", "fd"):
            m = r["methods"][method]
            probes = [m["at_rtol"][k]["probes"] for k in ("0.01", "0.03", "0.1")]
            # Tighter targets need more probes: m(r) = s^2 / (r^2 T^2 - b^2) decreases in r.
            assert probes[0] >= probes[1] >= probes[2] >= 1, probes


def test_probes_needed_closed_form():
    from benchmarks.trace import probes_needed

    # Unbiased: m = s^2 / (r T)^2. sd 50 % of T at 10 % error -> 25 probes.
    assert probes_needed(variance=0.25, bias=0.0, value=1.0, rtol=0.1) == 25
    # A bias as large as the target leaves no room.
    assert probes_needed(variance=0.25, bias=0.1, value=1.0, rtol=0.1) == math.inf


def test_pntk_section(pntk_result):
    res = pntk_result
    for r in res["rows"]:
        assert r["seconds"] > 0 and r["output_bytes"] > 0
        # Output sizes follow from the shapes alone: N^2 k^2 floats for the full eNTK, N^2 otherwise.
        k2 = r["classes"] ** 2 if r["kind"] == "entk" else 1
        assert r["output_bytes"] == 4 * res["n"] ** 2 * k2, r


def test_harness_wrappers_keep_their_keys():
    # benchmarks/*.py and the committed results JSON read these keys; the values come from ntkbook.timing.
    import jax
    import jax.numpy as jnp

    from benchmarks import harness

    a, b = jnp.ones((3, 5)), jnp.ones((5, 7))
    stats = harness.compiled_stats(jax.jit(jnp.matmul), a, b)
    assert set(stats) == {"compile_s", "flops", "argument_bytes", "output_bytes", "temp_bytes", "peak_bytes"}
    assert stats["flops"] == 2 * 3 * 5 * 7 and stats["output_bytes"] == 4 * 3 * 7
    calls = []
    t = harness.timeit(lambda: calls.append(1) or a, repeats=2, warmup=3)
    assert set(t) == {"median_s", "min_s", "times_s"} and len(t["times_s"]) == 2 and len(calls) == 5
    with pytest.raises(ValueError, match="warmup"):
        harness.timeit(lambda: a, warmup=-1)


def test_merge_replaces_only_the_retimed_rows():
    old = [{"preset": "ci", "rows": [{"chapter": "01_a", "seconds": 10.0}, {"chapter": "02_b", "seconds": 20.0}]},
           {"preset": "book", "rows": [{"chapter": "01_a", "seconds": 100.0}]}]
    new = [{"preset": "ci", "rows": [{"chapter": "02_b", "seconds": 25.0}]},
           {"preset": "book", "rows": [{"chapter": "03_c", "seconds": 300.0}]}]
    stamp = {"date": "d", "git_commit": "c"}
    merged = chapters.merge(old, new, stamp)
    ci = {r["chapter"]: r for r in merged[0]["rows"]}
    assert ci["01_a"] == {"chapter": "01_a", "seconds": 10.0}  # untouched, no stamp
    assert ci["02_b"]["seconds"] == 25.0 and ci["02_b"]["remeasured"] == stamp
    assert [r["chapter"] for r in merged[1]["rows"]] == ["01_a", "03_c"]
    assert old[0]["rows"][1]["seconds"] == 20.0  # the input is not modified


def test_run_rejects_unknown_chapters(capsys):
    with pytest.raises(SystemExit):
        run.main(["--chapters", "99_none", "--out", "/tmp/never-written.json"])
    assert "--chapters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.main(["--chapters", "01_lazy", "--sections", "entk", "--out", "/tmp/never-written.json"])
    with pytest.raises(SystemExit):
        run.main(["--chapters", "01_lazy", "--presets", "fast", "--out", "/tmp/never-written.json"])
    with pytest.raises(SystemExit):
        run.main(["--presets", "ci", "--out", "/tmp/never-written.json"])


def test_fd_sweep_section(tmp_path_factory):
    # The two ways of the bias study compute the same numbers (bit for bit: the same probes, the same
    # operations), so the section's ratio compares equal work; no speed is asserted.
    res = _section(tmp_path_factory, "fd_sweep")
    assert {r["activation"] for r in res["rows"]} == {"tanh", "relu"}
    for r in res["rows"]:
        assert r["identical_values"] is True
        assert r["separate_s"] > 0 and r["fd_sweep_s"] > 0
        assert r["separate_over_fd_sweep"] == pytest.approx(r["separate_s"] / r["fd_sweep_s"])
