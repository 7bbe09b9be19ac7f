#!/usr/bin/env bash
# The GPU check in one go, for short GPU slots (built for <= 8 minutes with set-up): install
# what the machine lacks, then `python -m src.bench training` under a time cap, writing JSON +
# markdown to $OUT (default experiments/bench), saved after every part. Run from the repository
# root.
#   Lent GPU machine without internet: first, here, `bash scripts/gpu_wheels.sh`; then there
#   (carrying .whl):  OUT=$OUT bash scripts/gpu_check.sh
#   A GPU machine with internet:  bash scripts/gpu_check.sh   (pip installs the project)
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
out="${OUT:-experiments/bench}"
mkdir -p "$out"
if [ -d .whl ]; then  # the packages its image lacks, as wheels (its torch and lightning stay)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  python3 -m pip install -q -e . 2>&1 | tail -3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, timm, lightning; print('torch', torch.__version__, 'cuda', \
torch.cuda.is_available(), 'timm', timm.__version__, 'lightning', lightning.__version__)"
timeout 420 python3 -m src.bench training --json "$out/gpu.json" "$@"
