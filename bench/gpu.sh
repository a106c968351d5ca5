#!/usr/bin/env bash
# A GPU run, ready to go: on a machine with an NVIDIA GPU, install what a fresh machine
# needs, then run
#   1. the inference benchmark (bench_inference.py) in float32 and float16, batch 1 and 8,
#      against torchvision on the same GPU,
#   2. the training-step benchmark (bench_train.py), batch 1 and 4,
#   3. a 5-minute nucleus training run from scratch (samples/nucleus) and its evaluation,
# and write everything to one results file.
#
#   bash bench/gpu.sh [RESULTS_FILE]        (default: bench/gpu-results-<date>.txt)
#
# Environments: $MRCNN_VENV (default .venv-gpu) gets mrcnn and tensorflow[and-cuda];
# the torchvision peer lives in its own $MRCNN_TORCH_VENV (default .venv-torch-gpu).
# Each is created and installed only when missing (pip needs the internet then).
# The nucleus data: $MRCNN_NUCLEUS_DATA (default ../shared/data/nucleus_dsb2018/stage1_test);
# that step is skipped, and says so, when it is missing.
#
# Without an NVIDIA GPU (no working nvidia-smi), or with MRCNN_GPU_SH_CPU=1, it runs a
# tiny version of every step on the CPU with the existing environment ($MRCNN_PYTHON,
# default .venv/bin/python) and installs nothing; the peer runs only when
# $MRCNN_TORCH_PYTHON names its Python. MRCNN_GPU_SH_DRY=1 prints the steps without
# running them. Each step's exit status is recorded; the script exits non-zero when a
# step failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/bench/gpu-results-$(date +%Y%m%dT%H%M).txt}"
DRY="${MRCNN_GPU_SH_DRY:-0}"
DATA="${MRCNN_NUCLEUS_DATA:-$ROOT/../shared/data/nucleus_dsb2018/stage1_test}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mrcnn-gpu-sh.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if [ "${MRCNN_GPU_SH_CPU:-0}" != 1 ] && command -v nvidia-smi >/dev/null 2>&1 \
        && nvidia-smi -L >/dev/null 2>&1; then
    MODE=gpu
else
    MODE=cpu
fi

if [ "$MODE" = gpu ]; then
    VENV="${MRCNN_VENV:-$ROOT/.venv-gpu}"
    TORCH_VENV="${MRCNN_TORCH_VENV:-$ROOT/.venv-torch-gpu}"
    PY="$VENV/bin/python"
    TPY="$TORCH_VENV/bin/python"
    INFER="--runs 10 --warmup 3 --size 1024"
    TRAIN="--steps 10 --warmup 3 --size 512"
    BATCHES_INFER="1 8"
    BATCHES_TRAIN="1 4"
    NUCLEUS="--minutes 5 --lr 0.01 --augment"
    EVAL=""
else
    PY="${MRCNN_PYTHON:-$ROOT/.venv/bin/python}"
    [ -x "$PY" ] || PY="$(command -v python3)"
    TPY="${MRCNN_TORCH_PYTHON:-$WORK/no-torch/python}"
    INFER="--runs 1 --warmup 0 --size 128"
    TRAIN="--steps 1 --warmup 0 --size 128"
    BATCHES_INFER="1 2"
    BATCHES_TRAIN="1"
    NUCLEUS="--minutes 0.05 --steps 1 --val-steps 1 --lr 0.01 --set IMAGE_MIN_DIM=64 \
--set POST_NMS_ROIS_TRAINING=64 --set TRAIN_ROIS_PER_IMAGE=16 --set MAX_GT_INSTANCES=20"
    EVAL="--limit 1"
fi

FAILED=0
say() { echo "$*" | tee -a "$OUT"; }
step() {  # step TITLE COMMAND...: run it, its output into the results file
    say ""
    say "## $1"
    shift
    say "\$ $*"
    if [ "$DRY" = 1 ]; then return 0; fi
    local start=$SECONDS
    "$@" 2>&1 | grep -v -e "^W0000" -e "^I0000" -e "absl::InitializeLog" | tee -a "$OUT"
    local code=${PIPESTATUS[0]}
    say "(exit $code, $((SECONDS - start)) s)"
    if [ "$code" != 0 ]; then FAILED=1; fi
}

mkdir -p "$(dirname "$OUT")"
: > "$OUT"
say "# mrcnn GPU run ($MODE mode), $(date -u +%Y-%m-%dT%H:%MZ)"
say "repository: $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo no git))"
if [ "$MODE" = gpu ]; then
    say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
else
    say "no NVIDIA GPU: the tiny CPU version of each step"
fi

if [ "$MODE" = gpu ]; then
    # installs only what is missing (an environment made beforehand, e.g. for a machine
    # without internet, is used as it is; MRCNN_GPU_SH_INSTALL=1 installs anyway)
    FORCE="${MRCNN_GPU_SH_INSTALL:-0}"
    if [ ! -x "$PY" ]; then step "create $VENV" python3 -m venv "$VENV"; fi
    if [ "$FORCE" = 1 ] || ! "$PY" -c "import mrcnn, tensorflow" >/dev/null 2>&1; then
        step "install mrcnn and TensorFlow with CUDA" "$PY" -m pip install --quiet \
            -e "$ROOT" "tensorflow[and-cuda]>=2.21,<2.22"
    fi
    if [ ! -x "$TPY" ]; then step "create $TORCH_VENV" python3 -m venv "$TORCH_VENV"; fi
    if [ "$FORCE" = 1 ] || ! "$TPY" -c "import torch, torchvision" >/dev/null 2>&1; then
        step "install the torchvision peer" "$TPY" -m pip install --quiet torch torchvision \
            numpy pillow
    fi
    step "devices TensorFlow sees" "$PY" -c \
        "import tensorflow as tf; print(tf.__version__, tf.config.list_physical_devices('GPU'))"
fi

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" MPLBACKEND=Agg
for dtype in float32 float16; do
    for batch in $BATCHES_INFER; do
        # shellcheck disable=SC2086
        step "inference, $dtype, batch $batch" "$PY" "$ROOT/bench/bench_inference.py" $INFER \
            --dtype "$dtype" --batch "$batch" --torch-python "$TPY"
    done
done
for batch in $BATCHES_TRAIN; do
    # shellcheck disable=SC2086
    step "training step, batch $batch" "$PY" "$ROOT/bench/bench_train.py" $TRAIN \
        --batch "$batch" --torch-python "$TPY"
done

if [ -d "$DATA" ]; then
    LOGS="$WORK/nucleus-logs"
    # shellcheck disable=SC2086
    step "nucleus: train from scratch" "$PY" "$ROOT/samples/nucleus/train.py" train \
        --dataset="$DATA" --weights=none --layers all --seed 1 --quiet --logs "$LOGS" $NUCLEUS
    # shellcheck disable=SC2086
    step "nucleus: evaluate the last checkpoint" "$PY" "$ROOT/samples/nucleus/train.py" \
        evaluate --dataset="$DATA" --weights=last --logs "$LOGS" --out "$WORK/nucleus-eval" $EVAL
else
    say ""
    say "## nucleus: skipped, no data at $DATA (set MRCNN_NUCLEUS_DATA)"
fi

say ""
say "results: $OUT"
if [ "$FAILED" != 0 ]; then
    say "a step failed (see its exit status above)"
    exit 1
fi
