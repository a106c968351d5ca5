"""bench/gpu.sh: the GPU run's script, checked through its CPU fallback (no NVIDIA GPU
here). The default suite checks the plan (MRCNN_GPU_SH_DRY=1); ``-m slow`` runs the tiny
CPU version of every step for real."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu.sh")


def run_script(out, **env):
    full = dict(os.environ, MRCNN_PYTHON=sys.executable, MRCNN_GPU_SH_CPU="1",
                PYTHONPATH=ROOT, **env)
    return subprocess.run(["bash", SCRIPT, str(out)], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=1500)


def test_gpu_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", SCRIPT]).returncode == 0


def test_gpu_script_plans_every_benchmark_and_the_nucleus_run(tmp_path):
    out = tmp_path / "results.txt"
    res = run_script(out, MRCNN_GPU_SH_DRY="1", MRCNN_NUCLEUS_DATA=str(tmp_path))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert text.startswith("# mrcnn GPU run (cpu mode)")
    titles = re.findall(r"^## (.*)$", text, re.M)
    assert titles == ["inference, float32, batch 1", "inference, float32, batch 2",
                      "inference, float16, batch 1", "inference, float16, batch 2",
                      "training step, batch 1", "nucleus: train from scratch",
                      "nucleus: evaluate the last checkpoint"]
    commands = re.findall(r"^\$ (.*)$", text, re.M)
    assert all(c.startswith(sys.executable + " ") for c in commands)
    assert "bench/bench_inference.py --runs 1 --warmup 0 --size 128 --dtype float16 " \
        "--batch 2" in commands[3]
    assert "samples/nucleus/train.py train --dataset={} --weights=none".format(tmp_path) \
        in commands[5]
    # nothing was run: no exit status recorded
    assert "(exit" not in text


def test_gpu_script_says_when_the_nucleus_data_is_missing(tmp_path):
    out = tmp_path / "results.txt"
    res = run_script(out, MRCNN_GPU_SH_DRY="1",
                     MRCNN_NUCLEUS_DATA=str(tmp_path / "nothing"))
    assert res.returncode == 0
    assert "## nucleus: skipped, no data at {}".format(tmp_path / "nothing") in \
        out.read_text()


@pytest.mark.slow
def test_gpu_script_cpu_fallback_runs_every_step(tmp_path):
    out = tmp_path / "results.txt"
    data = os.path.join(ROOT, "..", "shared", "data", "nucleus_dsb2018", "stage1_test")
    if not os.path.isdir(data):
        pytest.skip("needs ../shared/data/nucleus_dsb2018, which is missing here")
    res = run_script(out)
    text = out.read_text()
    assert res.returncode == 0, text[-4000:]
    assert len(re.findall(r"^\(exit 0, \d+ s\)$", text, re.M)) == 7
    assert len(re.findall(r"^mrcnn detect: +median", text, re.M)) == 4
    assert "batch 2, float16" in text
    assert re.search(r"^mrcnn train step: +median", text, re.M)
    assert "last checkpoint:" in text


def test_gpu_script_on_a_gpu_machine_installs_then_runs_the_full_sizes(tmp_path):
    # a stand-in nvidia-smi: the script takes the GPU branch (planned only, DRY)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 143771 MiB, 570.00'\n")
    fake.chmod(0o755)
    out = tmp_path / "results.txt"
    full = dict(os.environ, PATH="{}{}{}".format(bin_dir, os.pathsep, os.environ["PATH"]),
                MRCNN_GPU_SH_DRY="1", MRCNN_VENV=str(tmp_path / "venv"),
                MRCNN_TORCH_VENV=str(tmp_path / "venv-torch"),
                MRCNN_NUCLEUS_DATA=str(tmp_path))
    res = subprocess.run(["bash", SCRIPT, str(out)], cwd=ROOT, env=full,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert text.startswith("# mrcnn GPU run (gpu mode)")
    assert "NVIDIA H200, 143771 MiB" in text
    titles = re.findall(r"^## (.*)$", text, re.M)
    assert titles == [
        "create {}".format(tmp_path / "venv"), "install mrcnn and TensorFlow with CUDA",
        "create {}".format(tmp_path / "venv-torch"), "install the torchvision peer",
        "devices TensorFlow sees",
        "inference, float32, batch 1", "inference, float32, batch 8",
        "inference, float16, batch 1", "inference, float16, batch 8",
        "training step, batch 1", "training step, batch 4",
        "nucleus: train from scratch", "nucleus: evaluate the last checkpoint"]
    assert '"tensorflow[and-cuda]>=2.21,<2.22"' in text or \
        "tensorflow[and-cuda]>=2.21,<2.22" in text
    commands = re.findall(r"^\$ (.*)$", text, re.M)
    assert "--runs 10 --warmup 3 --size 1024 --dtype float16 --batch 8 --torch-python " \
        "{}".format(tmp_path / "venv-torch" / "bin" / "python") in commands[8]
    assert "--minutes 5 --lr 0.01 --augment" in commands[11]
