"""Run one side of a benchmark in its own process and collect its result and peak RSS."""
import json
import os
import subprocess
import tempfile


def run_child(cmd, which):
    """Run ``cmd`` (which prints a line 'RESULT <json>'); return the parsed JSON plus
    ``peak_rss_mb``, the child's own peak resident memory (from wait4).

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
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0
    return result
