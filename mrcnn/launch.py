"""Start N local training workers of one multi-worker run (for trying it on one machine).

    mrcnn launch --workers 2 -- train --dataset data/shapes --weights coco --epochs 4
    mrcnn launch --workers 2 -- samples/shapes/train.py train --epochs 4
    python -m mrcnn.launch --workers 2 -- my_training_script.py --my-option

After ``--`` comes the worker's command: ``mrcnn`` arguments (run as ``python -m mrcnn
...``), or a Python script and its arguments (a first word ending in .py). Each worker
gets a TF_CONFIG naming all N workers on free 127.0.0.1 ports and its own index;
worker 0 is the chief (the only one that writes checkpoints and logs). Their output
is printed line by line with a ``[worker i]`` prefix. When one worker fails, the others
stop on their own (their next gradient exchange fails, see docs/multiworker.md); any
still running after --grace seconds are terminated. The exit code is the first
failing worker's (0 when all succeed).

This module imports no TensorFlow: it only starts processes.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct TCP ports free on ``host`` now (held open until all are
    chosen, so none repeats)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def tf_config(addresses, index):
    """The TF_CONFIG value (a JSON string) of worker ``index`` of a cluster of workers at
    ``addresses`` ("host:port" each); worker 0 is the chief."""
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": "worker", "index": int(index)}})


def worker_command(argv):
    """The command line a worker runs for the words after ``--``."""
    if not argv:
        raise SystemExit("error: give the worker's command after --, e.g. "
                         "mrcnn launch --workers 2 -- train --dataset DATA --epochs 2")
    if argv[0].endswith(".py"):
        return [sys.executable] + list(argv)
    if argv[0] in ("python", "python3", sys.executable):
        return [sys.executable] + list(argv[1:])
    return [sys.executable, "-m", "mrcnn"] + list(argv)


def _stream(proc, prefix, out, lock):
    for line in iter(proc.stdout.readline, ""):
        with lock:
            out.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
            out.flush()
    proc.stdout.close()


def launch(command, workers, threads=None, grace=90.0, host="127.0.0.1", out=None, env=None):
    """Run ``command`` (a list) as ``workers`` processes of one cluster on ``host``.

    threads: TensorFlow's intra-op threads per worker (TF_NUM_INTRAOP_THREADS; default:
        TensorFlow's own); grace: seconds the others may take to stop after one fails.
    Returns the exit code: the first failing worker's, or 0.
    """
    out = out or sys.stdout
    ports = free_ports(workers, host)
    addresses = ["{}:{}".format(host, p) for p in ports]
    lock = threading.Lock()
    procs, streams = [], []
    for i in range(workers):
        e = dict(os.environ if env is None else env)
        e["TF_CONFIG"] = tf_config(addresses, i)
        e["PYTHONUNBUFFERED"] = "1"
        if threads:
            e["TF_NUM_INTRAOP_THREADS"] = str(int(threads))
            e["TF_NUM_INTEROP_THREADS"] = str(max(2, int(threads)))
        proc = subprocess.Popen(command, env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        procs.append(proc)
        t = threading.Thread(target=_stream, args=(proc, "[worker {}] ".format(i), out, lock),
                             daemon=True)
        t.start()
        streams.append(t)
    with lock:
        out.write("[launch] {} workers: {}\n".format(workers, ", ".join(addresses)))
        out.flush()
    failed = None
    deadline = None
    try:
        while True:
            codes = [p.poll() for p in procs]
            for i, code in enumerate(codes):
                if code not in (None, 0) and failed is None:
                    failed = (i, code)
                    deadline = time.time() + grace
                    with lock:
                        out.write("[launch] worker {} failed (exit code {}); waiting up to "
                                  "{:g} s for the others to stop\n".format(i, code, grace))
                        out.flush()
            if all(c is not None for c in codes):
                break
            if deadline is not None and time.time() > deadline:
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        with lock:
                            out.write("[launch] terminating worker {}\n".format(i))
                        p.terminate()
                deadline = time.time() + 10
                grace = 0
                for p in procs:
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        return 130
    for t in streams:
        t.join(timeout=5)
    if failed is not None:
        return failed[1] if failed[1] > 0 else 1
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        k = argv.index("--")
        own, command = argv[:k], argv[k + 1:]
    else:
        own, command = argv, []
    p = argparse.ArgumentParser(
        prog="mrcnn launch",
        description="Start N local workers of one multi-worker training run (TF_CONFIG on "
                    "127.0.0.1 ports); worker 0 is the chief. Put the worker's command after "
                    "--: mrcnn arguments (train ...) or a script.py and its arguments.")
    p.add_argument("--workers", type=int, required=True, help="how many worker processes")
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow intra-op threads per worker (default: TensorFlow's)")
    p.add_argument("--grace", type=float, default=90.0,
                   help="seconds the other workers get to stop after one fails, before "
                        "they are terminated (default: 90)")
    args = p.parse_args(own)
    if args.workers < 1:
        p.error("--workers {}: give 1 or more".format(args.workers))
    code = launch(worker_command(command), args.workers, threads=args.threads,
                  grace=args.grace)
    if code:
        print("error: a worker failed (exit code {}); see its [worker i] lines above. "
              "Restart all workers to resume from the last checkpoint (train --weights "
              "last).".format(code), file=sys.stderr)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
