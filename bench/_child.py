"""Run one side of a benchmark in its own process and collect its result and peak RSS."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def work_peak_rss_mb():
    """This process's peak resident memory so far, in MB. A child calls it right after
    the work it measures and returns it as ``peak_rss_mb``: what it does after that (the
    machine report's 4096x4096 matmul probe, the FLOP count's extra trace of the model)
    is the benchmark's own and must not count against the side that does it.

    VmHWM, the high-water mark of this process's own memory map: getrusage's ru_maxrss
    carries the parent's size over the fork and exec (a child of a 1.5 GB process reads
    1.5 GB before it has done anything)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(cmd, which):
    """Run ``cmd`` (which prints a line 'RESULT <json>'); return the parsed JSON, with
    ``peak_rss_mb`` as the child gave it (``work_peak_rss_mb`` after its measured work)
    or else the child's whole-life peak resident memory (from wait4), which is also
    kept as ``process_peak_rss_mb`` (it is at least this process's size at the fork:
    the benchmarks' parents stay small, without TensorFlow or torch).

    Output goes to temporary files, not pipes, so a chatty child (TensorFlow logs a
    lot) can never block on a full pipe while we wait for it.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError("{} benchmark failed:\n{}".format(which, stderr[-3000:]))
    line = [l for l in stdout.splitlines() if l.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    result["process_peak_rss_mb"] = usage.ru_maxrss / 1024.0
    result.setdefault("peak_rss_mb", result["process_peak_rss_mb"])
    return result


def add_round_arguments(parser):
    """--rounds (side_by_side) and the hidden --light of a later round's child."""
    def at_least_one(text):
        value = int(text)
        if value < 1:
            raise ValueError(text)
        return value
    at_least_one.__name__ = "number of rounds (1 or more)"   # (argparse's error names it)
    parser.add_argument("--rounds", type=at_least_one, default=1,
                        help="run the two sides alternately this many times each; the "
                             "ratio is the median of the rounds' ratios (the host's speed "
                             "drifts)")
    parser.add_argument("--light", action="store_true", help=argparse.SUPPRESS)


def rounds_flag(args):
    """' --rounds N' for a recorded command line, or '' for one round."""
    return " --rounds {}".format(args.rounds) if args.rounds > 1 else ""


def side_by_side(rounds, run_ours, run_peer=None, label=("mrcnn", "torchvision")):
    """Run the two sides alternately, ours first: ours, peer, ours, peer, ... ``rounds``
    times each. ``run_ours(first)`` and ``run_peer(first)`` run one side's child; ``first``
    is True in the first round only, where the machine and the work are measured (the
    later rounds' children skip that). Returns (our results, the peer's results), one
    per round (the peer's list is empty without a peer).

    The machines this project runs on are shared: their speed drifts by 10-30% within
    minutes, so one run of each side, minutes apart, carries that drift into the ratio.
    Rounds pair each of our runs with the peer's run right after it, and ``ratio_line``
    takes the median of the rounds' ratios."""
    ours, peer = [], []
    for r in range(rounds):
        if rounds > 1:
            print("round {}/{}: {} ...".format(r + 1, rounds, label[0]), flush=True)
        ours.append(run_ours(r == 0))
        if run_peer is not None:
            if rounds > 1:
                print("round {}/{}: {} ...".format(r + 1, rounds, label[1]), flush=True)
            peer.append(run_peer(r == 0))
    return ours, peer


def run_both(run_child, args):
    """A benchmark's two sides over ``args.rounds`` rounds (side_by_side): ours in this
    interpreter, torchvision in ``args.torch_python`` when that exists, each started by
    the benchmark's ``run_child(python, which, args, first)``. Returns (our rounds, the
    peer's rounds, ours pooled, the peer's pooled or None)."""
    peer_python = args.torch_python if os.path.exists(args.torch_python) else None
    ours, peer = side_by_side(
        args.rounds, lambda first: run_child(sys.executable, "mrcnn", args, first),
        (lambda first: run_child(peer_python, "torchvision", args, first))
        if peer_python else None)
    return ours, peer, pooled(ours), pooled(peer) if peer else None


def pooled(results):
    """One side's rounds as one result: the timed runs of every round, in order, under
    ``times`` (and so ``graph_times`` and each ``split`` part), the largest peak RSS of
    the rounds, each round's median time under ``round_medians``, and everything else
    from the first round (the machine report and the work count are taken there)."""
    merged = dict(results[0])
    for key in ("times", "graph_times"):
        if key in merged:
            merged[key] = [t for r in results for t in r[key]]
    if "split" in merged:
        merged["split"] = {k: [t for r in results for t in r["split"][k]]
                           for k in merged["split"]}
    merged["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    merged["round_medians"] = [statistics.median(r["times"]) for r in results]
    return merged


def runs_text(result, unit="runs"):
    """A pooled side's timed runs for the report: every run ("runs 2.00, 2.40", or
    ``unit`` for another word), or, after several rounds, each round's median."""
    medians = result.get("round_medians") or []
    if len(medians) > 1:
        return "rounds' medians " + ", ".join("{:.2f}".format(t) for t in medians)
    return unit + " " + ", ".join("{:.2f}".format(t) for t in result["times"])


def ratio_line(ours, peer):
    """The report's ratio line from the two sides' rounds (lists from side_by_side):
    time, the median of the rounds' ratios of median times; peak memory, the ratio of
    the largest peaks."""
    ratios = [statistics.median(o["times"]) / statistics.median(p["times"])
              for o, p in zip(ours, peer)]
    memory = max(o["peak_rss_mb"] for o in ours) / max(p["peak_rss_mb"] for p in peer)
    text = "ratio mrcnn / torchvision: {:.2f}x time, {:.2f}x peak memory".format(
        statistics.median(ratios), memory)
    if len(ratios) > 1:
        text += " (time: median of {} rounds run side by side: {})".format(
            len(ratios), ", ".join("{:.2f}x".format(r) for r in ratios))
    return text


def matmul_peak_gflops(size=4096, runs=5):
    """The machine's float32 matrix-multiply rate (GFLOP/s) as TensorFlow gets it: the
    median of ``runs`` size x size tf.matmul calls after one warm-up. It is the floor
    the issue's targets are measured against (a graph of G GFLOP needs >= G / peak s)."""
    import time
    import tensorflow as tf
    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    b = tf.random.stateless_normal([size, size], seed=[3, 4])
    tf.matmul(a, b).numpy()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        tf.matmul(a, b).numpy()
        times.append(time.perf_counter() - t0)
    return 2.0 * size ** 3 / statistics.median(times) / 1e9


def _machine_module():
    """mrcnn.machine, with the repository on sys.path (a benchmark runs as a script)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from mrcnn import machine
    return machine


def machine_report():
    """The machine a benchmark ran on (mrcnn.machine.describe with TensorFlow) plus
    its measured float32 matmul peak."""
    info = _machine_module().describe(tensorflow=True)
    info["matmul_gflops"] = matmul_peak_gflops()
    return info


def machine_lines(info, torch_info=None):
    """Lines for a benchmark's report: CPU, ISA flags, versions, threads, matmul peak."""
    machine = _machine_module()
    lines = ["machine:             " + machine.one_line(info),
             "  TF threads:        intra {intra_op}, inter {inter_op} (0 = TF's choice); "
             "oneDNN {onednn}".format(onednn=info.get("onednn"), **info.get("threads", {})),
             "  float32 matmul:    {:.0f} GFLOP/s (4096x4096 tf.matmul, median of 5)".format(
                 info["matmul_gflops"])]
    if torch_info:
        lines.append("  torch:             {} (threads {})".format(torch_info.get("torch"),
                                                                  torch_info.get("threads")))
    return lines
