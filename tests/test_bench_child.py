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
