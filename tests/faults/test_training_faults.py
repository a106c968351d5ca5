"""Fault injection for training: SIGKILL a tiny training run at seeded random moments
(mid-step, mid-validation, mid-checkpoint, between epochs), resume it each time with
find_last() + train(), and check that nothing was lost or broken:

- every checkpoint on disk loads and holds finite weights, and find_last() returns one
  of them (never a partial file);
- each resumed run starts from the epoch of the last complete checkpoint;
- at the end, losses.csv has its header and every step exactly once, every epoch has
  its checkpoint, and no temporary file is left.

The default suite kills 4 times (once in each phase); ``MRCNN_FAULT_KILLS=20 pytest -m slow tests/faults``
runs the recorded 20-kill version (bench/RESULTS.md).
"""
import csv
import glob
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mrcnn.model import find_last_checkpoint
from mrcnn.weights import read_weight_file

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "train_child.py")
STEPS_PER_EPOCH = 3          # FaultConfig in train_child.py
PHASES = ("step", "validation", "checkpoint", "between")


def start_child(model_dir, epochs, slow_write):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, CHILD, model_dir, "--epochs", str(epochs),
                             "--slow-write", str(slow_write)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)


def checkpoint_files(model_dir):
    return sorted(glob.glob(os.path.join(model_dir, "*", "mask_rcnn_*.h5")))


def check_checkpoints(model_dir):
    """Every checkpoint loads and is finite; find_last returns one of them. Returns
    the last checkpoint's epoch (0 when there is none) and the number checked."""
    files = checkpoint_files(model_dir)
    for path in files:
        layers, _ = read_weight_file(path)
        for entries in layers.values():
            for _, _, array in entries:
                assert np.all(np.isfinite(array)), path
    if not files:
        with pytest.raises(FileNotFoundError):
            find_last_checkpoint(model_dir, "fault")
        return 0, 0
    last = find_last_checkpoint(model_dir, "fault")
    assert last in files
    return int(os.path.basename(last)[-7:-3]), len(files)


def run_with_kills(model_dir, kills, seed, sig=signal.SIGKILL):
    """Kill ``kills`` runs at seeded moments, then let the last one finish. Returns
    a list of what happened, one entry per run."""
    rng = random.Random(seed)
    epochs = 2 * kills + 2
    events = []
    for k in range(kills + 1):
        expected_start, _ = check_checkpoints(model_dir)
        target = None
        if k < kills:
            phase = PHASES[k % len(PHASES)] if k < len(PHASES) else rng.choice(PHASES)
            target = (phase, rng.randint(1, 2),
                      rng.uniform(0, 0.5 if phase == "checkpoint" else 0.15))
        # checkpoints are written slowly only in the runs killed while writing one
        # (0.6 s instead of 0.08 s each)
        child = start_child(model_dir, epochs,
                            0.004 if target and target[0] == "checkpoint" else 0.0)
        seen, started, killed = {}, None, False
        deadline = time.time() + 300
        for line in child.stdout:
            words = line.split()
            if not words:
                continue
            if words[0] == "START":
                started = int(words[1])
            if words[0] == "PHASE":
                seen[words[1]] = seen.get(words[1], 0) + 1
                if target and words[1] == target[0] and seen[words[1]] == target[1]:
                    time.sleep(target[2])
                    child.send_signal(sig)
                    killed = True
                    break
            assert time.time() < deadline, "the child hung"
        child.stdout.close()
        code = child.wait(timeout=120)
        # each run starts where the last complete checkpoint left off
        assert started == expected_start, (k, started, expected_start)
        events.append({"run": k, "target": target, "killed": killed and code != 0,
                       "start": started, "code": code})
        if not killed:
            assert code == 0, "run {} failed with exit code {}".format(k, code)
            break
    return epochs, events


def check_final(model_dir, epochs):
    last_epoch, _ = check_checkpoints(model_dir)
    assert last_epoch == epochs
    folder = os.path.dirname(find_last_checkpoint(model_dir, "fault"))
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.h5")))
    assert names == ["mask_rcnn_fault_{:04d}.h5".format(e) for e in range(1, epochs + 1)] + \
        ["mask_rcnn_fault_best.h5"]
    with open(os.path.join(folder, "losses.csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["step", "epoch", "loss"]
    steps = [int(r[0]) for r in rows[1:]]
    lost = sorted(set(range(1, epochs * STEPS_PER_EPOCH + 1)) - set(steps))
    assert steps == list(range(1, epochs * STEPS_PER_EPOCH + 1)), (lost, steps)
    assert [int(r[1]) for r in rows[1:]] == [(s - 1) // STEPS_PER_EPOCH + 1 for s in steps]
    # (a run killed before its first checkpoint in another minute leaves its own
    # folder behind; the resumed run's folder is the one that must be clean)
    leftovers = [p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                 if ".part" in os.path.basename(p)]
    assert leftovers == []
    return {"lost_rows": len(lost), "checkpoints": len(names)}


def test_training_survives_kills(tmp_path):
    kills = int(os.environ.get("MRCNN_FAULT_KILLS", "4"))   # one per phase
    epochs, events = run_with_kills(str(tmp_path), kills, seed=16)
    summary = check_final(str(tmp_path), epochs)
    killed = [e for e in events if e["killed"]]
    print("training kills: {} asked, {} landed ({}), {} lost rows, {} checkpoints all "
          "finite".format(kills, len(killed),
                          ", ".join(sorted({e["target"][0] for e in killed})),
                          summary["lost_rows"], summary["checkpoints"]))
    assert len(killed) == kills
    assert {e["target"][0] for e in killed} >= set(PHASES[:min(kills, len(PHASES))])


@pytest.mark.slow
def test_training_survives_twenty_kills(tmp_path):
    epochs, events = run_with_kills(str(tmp_path), 20, seed=1600)
    summary = check_final(str(tmp_path), epochs)
    killed = [e for e in events if e["killed"]]
    print("training kills: 20 asked, {} landed, {} lost rows, {} checkpoints, 0 unreadable"
          .format(len(killed), summary["lost_rows"], summary["checkpoints"]))
    assert len(killed) == 20
