"""Multi-worker training (MultiWorkerMirroredStrategy from TF_CONFIG) and the local
launcher.

The default suite checks the parts (input shards, TF_CONFIG, the launcher with small
scripts) and runs one short real cluster (two ``mrcnn train`` workers); ``-m slow`` runs real clusters of two worker processes on 127.0.0.1
(tests/multiworker/job.py): same losses as one process of the same global batch, the
chief alone writes, resume continues the epoch count, a killed worker stops the other.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from mrcnn.launch import free_ports, launch, tf_config, worker_command
from mrcnn.pipeline import BatchLoader
from samples.shapes.shapes import ShapesDataset
from tiny_configs import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "tests", "multiworker", "job.py")


def shapes(count, seed=1):
    d = ShapesDataset()
    d.load_shapes(count, 64, 64, seed=seed)
    d.prepare()
    return d


def first(stream, n):
    return [next(stream) for _ in range(n)]


# ---------------------------------------------------------------- input shards

def test_worker_shards_split_each_pass_once_with_the_single_process_positions():
    config = tiny_config("shard", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                         RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))
    data = shapes(10)
    whole = first(BatchLoader(data, config, seed=3)._stream(), 30)
    parts = [first(BatchLoader(data, config, seed=3, shard=(i, 3))._stream(), 7)
             for i in range(3)]
    for i, part in enumerate(parts):
        # worker i takes positions i, i + 3, ... of the single-process stream, with the
        # same image at each position (same permutation, same per-image seed)
        assert [p for p, _ in part] == [p for p, _ in whole if p % 10 % 3 == i][:7]
        assert part == [w for w in whole if w[0] in {p for p, _ in part}]
    first_pass = [set(i for p, i in part if p < 10) for part in parts]
    assert sum(len(s) for s in first_pass) == 10
    assert set().union(*first_pass) == set(range(10))


def test_more_workers_than_images_is_refused_naming_the_fix():
    config = tiny_config("shard", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                         RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))
    with pytest.raises(ValueError, match="3 images cannot be shared among 4 workers"):
        BatchLoader(shapes(3), config, shard=(0, 4))


# ---------------------------------------------------------------- TF_CONFIG

def test_tf_config_names_a_cluster_only_with_more_than_one_task(monkeypatch):
    from mrcnn.training import tf_config_cluster
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert tf_config_cluster() is None
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1"], 0))
    assert tf_config_cluster() is None
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert tf_config_cluster() == {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1", "127.0.0.1:2"], 2))
    with pytest.raises(ValueError, match="task .* is not one of them"):
        tf_config_cluster()
    monkeypatch.setenv("TF_CONFIG", "worker=2")
    with pytest.raises(ValueError, match="TF_CONFIG is not a JSON object"):
        tf_config_cluster()


def test_a_single_process_is_its_own_chief(tmp_path, monkeypatch):
    from mrcnn import model as modellib
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = tiny_config("solo", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                         RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128))
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    assert model.worker == (0, 1, True)
    assert os.path.dirname(model.log_dir) == str(tmp_path)


# ---------------------------------------------------------------- the launcher

def test_launcher_runs_scripts_and_mrcnn_commands():
    assert worker_command(["job.py", "--x"]) == [sys.executable, "job.py", "--x"]
    assert worker_command(["train", "--epochs", "2"]) == \
        [sys.executable, "-m", "mrcnn", "train", "--epochs", "2"]
    ports = free_ports(4)
    assert len(set(ports)) == 4


class Lines(object):
    def __init__(self):
        self.text = ""
        self.lock = threading.Lock()

    def write(self, s):
        with self.lock:
            self.text += s

    def flush(self):
        pass


def test_launcher_gives_each_worker_its_task_and_prefixes_its_output(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(textwrap.dedent("""
        import json, os
        c = json.loads(os.environ["TF_CONFIG"])
        print("task", c["task"]["index"], "of", ",".join(c["cluster"]["worker"]))
        print("threads", os.environ.get("TF_NUM_INTRAOP_THREADS"))
    """))
    out = Lines()
    assert launch(worker_command([str(script)]), 2, threads=1, out=out) == 0
    lines = out.text.splitlines()
    addresses = [l.split(": ", 1)[1] for l in lines if l.startswith("[launch] 2 workers")][0]
    for i in range(2):
        assert "[worker {}] task {} of {}".format(i, i, addresses.replace(" ", "")) in lines
        assert "[worker {}] threads 1".format(i) in lines


def test_launcher_fails_when_a_worker_fails_and_stops_one_left_hanging(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys, time
        if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
            print("worker one fails"); sys.exit(3)
        time.sleep(120)
    """))
    out = Lines()
    started = time.time()
    assert launch(worker_command([str(script)]), 2, grace=1, out=out) == 3
    assert time.time() - started < 30
    assert "[worker 1] worker one fails" in out.text
    assert "[launch] worker 1 failed (exit code 3)" in out.text
    assert "[launch] terminating worker 0" in out.text


# ---------------------------------------------------------------- real clusters (slow)

def clean_env():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    env.pop("TF_CONFIG", None)
    return env


def run_cluster(out, *job_args, timeout=400):
    cmd = [sys.executable, "-m", "mrcnn.launch", "--workers", "2", "--threads", "1", "--",
           JOB, str(out)] + list(job_args)
    res = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return [json.load(open(os.path.join(out, "result-{}.json".format(i)))) for i in range(2)]


def read_ids(path):
    with open(path) as f:
        return [tuple(int(v) for v in line.split()) for line in f if line.strip()]


@pytest.mark.slow
def test_two_workers_train_as_one_process_of_the_same_global_batch(tmp_path):
    out = tmp_path / "cluster"
    results = run_cluster(out)
    # the reference: one process, two replicas (logical CPUs), the same global batch
    ref_dir = tmp_path / "single"
    res = subprocess.run([sys.executable, JOB, str(ref_dir), "--replicas", "2"], cwd=ROOT,
                         env=clean_env(), capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    reference = json.load(open(os.path.join(ref_dir, "result-0.json")))
    assert reference["replicas"] == 2 and [r["replicas"] for r in results] == [2, 2]

    # the per-step losses: both workers log the global ones, equal to one process's
    for r in results:
        assert len(r["steps"]) == len(reference["steps"]) == 3
        for mine, ref in zip(r["steps"], reference["steps"]):
            for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
                         "mrcnn_bbox_loss", "mrcnn_mask_loss"):
                assert mine[name] == pytest.approx(ref[name], abs=1e-4), name

    # disjoint shards: worker i loads the even / odd positions of each pass, and the
    # first pass (12 images) is split between them, each image once
    seen = [read_ids(os.path.join(out, "ids-{}.txt".format(i))) for i in range(2)]
    for i in range(2):
        assert seen[i] and all(p % 2 == i for p, _ in seen[i])
    first_pass = [{image for p, image in s if p < 12} for s in seen]
    assert first_pass[0].isdisjoint(first_pass[1])
    assert first_pass[0] | first_pass[1] == set(range(12))

    # only the chief wrote, into model_dir; the other worker's scratch is gone
    chief, other = results
    assert chief["worker"] == [0, 2, True] and other["worker"] == [1, 2, False]
    runs = os.listdir(os.path.join(out, "logs"))
    assert len(runs) == 1 and chief["log_dir"] == os.path.join(out, "logs", runs[0])
    files = set(os.listdir(chief["log_dir"]))
    assert {"mask_rcnn_mw_0001.h5", "losses.csv", "history.json", "run.json"} <= files
    assert not other["log_dir"].startswith(str(out)) and not os.path.exists(other["log_dir"])
    with open(os.path.join(chief["log_dir"], "losses.csv")) as f:
        rows = f.read().splitlines()[1:]
    assert len(rows) == 3

    # resume: both restart from find_last() and go on with epoch 2
    results = run_cluster(out, "--resume", "--epochs", "2")
    assert [r["epoch"] for r in results] == [2, 2]
    assert results[0]["log_dir"] == chief["log_dir"]
    files = set(os.listdir(chief["log_dir"]))
    assert {"mask_rcnn_mw_0001.h5", "mask_rcnn_mw_0002.h5"} <= files
    history = json.load(open(os.path.join(chief["log_dir"], "history.json")))
    assert [h["epoch"] for h in history] == [1, 2]
    assert os.listdir(os.path.join(out, "logs")) == runs


@pytest.mark.slow
def test_killing_a_worker_stops_the_other_with_a_message_within_60_seconds(tmp_path):
    addresses = ["127.0.0.1:{}".format(p) for p in free_ports(2)]
    procs, lines = [], [[], []]
    for i in range(2):
        env = dict(clean_env(), TF_CONFIG=tf_config(addresses, i))
        procs.append(subprocess.Popen([sys.executable, JOB, str(tmp_path), "--steps", "500"],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))

    def read(i):
        for line in procs[i].stdout:
            lines[i].append(line)
    for i in range(2):
        threading.Thread(target=read, args=(i,), daemon=True).start()
    try:
        deadline = time.time() + 300
        while not any(l.startswith("step 2") for l in lines[0]):
            assert time.time() < deadline and procs[0].poll() is None, "".join(lines[0])[-3000:]
            time.sleep(0.2)
        procs[1].kill()
        killed = time.time()
        code = procs[0].wait(timeout=90)
        took = time.time() - killed
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    text = "".join(lines[0])
    assert code != 0 and took < 60, (code, took, text[-3000:])
    assert "WorkerLost: worker 0 of 2: the exchange with the other workers failed" in text
    assert "start them all again" in text


def test_a_worker_that_ran_tensorflow_first_is_told_to_build_the_model_first(tmp_path):
    script = tmp_path / "early.py"
    script.write_text(textwrap.dedent("""
        import tensorflow as tf
        print(float(tf.constant(2.0) * 2))
        from mrcnn.training import multi_worker_strategy
        multi_worker_strategy()
    """))
    env = dict(clean_env(), TF_CONFIG=tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    res = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "TensorFlow must set up before it runs any operation" in res.stderr
    assert "Build the training model (MaskRCNN(mode='training', ...))" in res.stderr


@pytest.mark.slow
def test_float16_workers_skip_overflowing_steps_together(tmp_path):
    # Keras' LossScaleOptimizer decides from each replica's own gradients; without the
    # agreement in train_step a worker that overflowed alone skipped while the other
    # waited in the all-reduce until the collective timeout
    results = run_cluster(tmp_path, "--dtype", "float16", "--steps", "6")
    chief = results[0]
    with open(os.path.join(chief["log_dir"], "losses.csv")) as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    assert len(rows) == 6
    skipped = [int(r[-1]) for r in rows]
    assert skipped[0] == 1 and 0 in skipped       # the scale found its level, then trained
    assert [float(r[-2]) for r in rows] == [2.0 ** 15 / 2 ** sum(skipped[:k + 1])
                                            for k in range(6)]
    for a, b in zip(results[0]["steps"], results[1]["steps"]):
        assert a["loss_scale"] == b["loss_scale"]
        assert a["skipped_steps"] == b["skipped_steps"]


def test_mrcnn_train_runs_as_a_worker_under_the_launcher(tmp_path):
    """The default suite's real cluster (about 20 s): two `mrcnn train` workers."""
    from cli_layouts import write_layout
    options, _ = write_layout("coco", tmp_path / "data")
    logs = tmp_path / "logs"
    env = dict(clean_env(), PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    cmd = [sys.executable, "-m", "mrcnn", "launch", "--workers", "2", "--threads", "1",
           "--", "train"] + options + [
        "--weights", "none", "--layers", "all", "--epochs", "1", "--steps", "2", "--logs",
        str(logs), "--seed", "3", "--quiet", "--config", "cli_layouts:CliTinyConfig"]
    res = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    out = res.stdout
    assert re.search(r"^\[worker 0\] +workers +2 \(TF_CONFIG; this is worker 0, the chief\), "
                     r"global batch 2$", out, re.M), out[-3000:]
    assert re.search(r"^\[worker 1\] +workers +2 \(TF_CONFIG; this is worker 1\), global "
                     r"batch 2$", out, re.M)
    (run,) = os.listdir(logs)
    files = set(os.listdir(logs / run))
    assert {"mask_rcnn_clitiny_0001.h5", "config.json", "split.json", "class_names.json",
            "losses.csv", "history.json", "run.json"} <= files
    with open(logs / run / "losses.csv") as f:
        assert len(f.read().splitlines()) == 1 + 2
