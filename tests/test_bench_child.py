"""bench/_child.py: how a benchmark side's peak memory is taken."""
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import _child  # noqa: E402


def child_script(tmp_path, report_work_peak):
    """A child that measures 'work' of ~50 MB, then (like the machine report's matmul
    probe) touches ~300 MB more before it prints its result."""
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent("""
        import json, sys
        sys.path.insert(0, {bench!r})
        import _child
        work = bytearray(50 * 2 ** 20)
        peak = _child.work_peak_rss_mb()
        probe = bytearray(300 * 2 ** 20)
        result = {{"peak_rss_mb": peak}} if {report} else {{}}
        result["end"] = _child.work_peak_rss_mb()
        print("RESULT " + json.dumps(result))
    """).format(bench=os.path.join(ROOT, "bench"), report=report_work_peak))
    return [sys.executable, str(path)]


def test_the_peak_is_the_measured_work_not_what_the_benchmark_does_after(tmp_path):
    r = _child.run_child(child_script(tmp_path, True), "test")
    # the process went on to touch the probe; the side's figure stops before it, and
    # is the child's own (not its parent's size: this test runs in a large worker)
    assert r["end"] - r["peak_rss_mb"] > 250
    assert 50 < r["peak_rss_mb"] < 250
    assert r["process_peak_rss_mb"] > r["end"] - 5     # (the two counters differ by KBs)


def test_without_a_work_peak_the_whole_process_counts(tmp_path):
    r = _child.run_child(child_script(tmp_path, False), "test")
    assert r["peak_rss_mb"] == r["process_peak_rss_mb"]
    assert r["peak_rss_mb"] > 350


def fake_side(times, peak, **extra):
    return dict({"times": times, "peak_rss_mb": peak}, **extra)


def test_rounds_alternate_the_sides_and_only_the_first_measures_the_machine(capsys):
    calls = []

    def side(name, results):
        def run(first):
            calls.append((name, first))
            return results[len([c for c in calls if c[0] == name]) - 1]
        return run
    ours, peer = _child.side_by_side(
        3, side("ours", [fake_side([2.0], 1000), fake_side([3.0], 1010),
                         fake_side([2.2], 990)]),
        side("peer", [fake_side([4.0], 2000), fake_side([3.0], 2000),
                      fake_side([4.0], 1990)]))
    assert calls == [("ours", True), ("peer", True), ("ours", False), ("peer", False),
                     ("ours", False), ("peer", False)]
    assert "round 3/3: torchvision" in capsys.readouterr().out
    # each round's ratio, then their median: the slow second round (the host drifted)
    # moves the ratio of pooled medians, not the median of the rounds' ratios
    assert _child.ratio_line(ours, peer) == (
        "ratio mrcnn / torchvision: 0.55x time, 0.51x peak memory (time: median of 3 "
        "rounds run side by side: 0.50x, 1.00x, 0.55x)")
    # one round: the plain line of the benchmarks before rounds
    assert _child.ratio_line(ours[:1], peer[:1]) == \
        "ratio mrcnn / torchvision: 0.50x time, 0.50x peak memory"
    assert _child.side_by_side(2, lambda first: fake_side([1.0], 1)) == \
        ([fake_side([1.0], 1)] * 2, [])


def test_pooled_keeps_every_run_the_largest_peak_and_the_first_rounds_extras():
    first = fake_side([2.0, 2.4], 1000, graph_times=[1.5, 1.7], machine={"cpu": "x"},
                      split={"mold": [0.1, 0.1], "graph": [1.5, 1.7]})
    later = fake_side([3.0, 3.2], 1200, graph_times=[2.5, 2.7], machine=None,
                      split={"mold": [0.2, 0.2], "graph": [2.5, 2.7]})
    merged = _child.pooled([first, later])
    assert merged["times"] == [2.0, 2.4, 3.0, 3.2]
    assert merged["graph_times"] == [1.5, 1.7, 2.5, 2.7]
    assert merged["split"] == {"mold": [0.1, 0.1, 0.2, 0.2], "graph": [1.5, 1.7, 2.5, 2.7]}
    assert merged["peak_rss_mb"] == 1200
    assert merged["machine"] == {"cpu": "x"}
    assert merged["round_medians"] == [2.2, 3.1]
    assert _child.runs_text(merged) == "rounds' medians 2.20, 3.10"
    assert _child.runs_text(_child.pooled([first])) == "runs 2.00, 2.40"
    assert first["times"] == [2.0, 2.4]         # the rounds' own results are left as they were


def test_train_benchmark_reports_rounds_run_side_by_side(monkeypatch, capsys, tmp_path):
    import bench_train
    machine = {"matmul_gflops": 200.0, "cpu": {"model": "test CPU", "cores": 2, "flags": []},
               "threads": {"intra_op": 0, "inter_op": 0}, "onednn": "on"}
    results = {"mrcnn": [fake_side([2.0, 2.0, 2.0], 2000, pipeline=0.02, machine=machine,
                                   work=None),
                         fake_side([2.6, 2.6, 2.6], 2100)],
               "torchvision": [fake_side([4.0, 4.0, 4.0], 2500, torch="2", torchvision="0",
                                         threads=2, device="cpu", work=None),
                               fake_side([4.0, 4.0, 4.0], 2400)]}
    seen = []

    def run_child(python, which, args, first=True):
        seen.append((which, first))
        return results[which][len([s for s in seen if s[0] == which]) - 1]
    monkeypatch.setattr(bench_train, "run_child", run_child)
    monkeypatch.setattr(bench_train.os.path, "exists",
                        lambda p, real=bench_train.os.path.exists: True if p == "PEER" else
                        real(p))
    bench_train.main(["--rounds", "2", "--torch-python", "PEER"])
    out = capsys.readouterr().out
    assert seen == [("mrcnn", True), ("torchvision", True), ("mrcnn", False),
                    ("torchvision", False)]
    assert "mrcnn train step:    median 2.30 s  (rounds' medians 2.00, 2.60); peak RSS " \
        "2100 MB" in out
    assert "ratio mrcnn / torchvision: 0.57x time, 0.84x peak memory (time: median of 2 " \
        "rounds run side by side: 0.50x, 0.65x)" in out
