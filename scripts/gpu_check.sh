#!/usr/bin/env bash
# The GPU check in one go, for short GPU slots (<= 8 minutes with set-up): install what the
# machine lacks (the project's timm pin included; an installed CUDA torch is kept), then
# `python -m src.bench training`, its time capped, writing JSON + markdown to $OUT (default
# experiments/bench/gpu.json). Run from the repository root:
#   OUT=/some/folder bash scripts/gpu_check.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
out="${OUT:-experiments/bench}"
mkdir -p "$out"
python -m pip install -q -e . 2>&1 | tail -3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__)"
timeout 420 python -m src.bench training --json "$out/gpu.json" "$@"
