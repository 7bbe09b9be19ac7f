#!/usr/bin/env bash
# Wheels of the packages the GPU machine's image lacks (it has torch, lightning, torchmetrics,
# pandas, opencv, matplotlib, ...; it has no internet), for its Python 3.12, into .whl/ (kept
# out of git). The versions are those of this checkout's .venv, so both machines run the same
# code. Then carry .whl to the GPU machine and run scripts/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
names='hydra-core omegaconf albumentations albucore pydantic pydantic-core annotated-types
typing-inspection stringzilla simsimd timm'
pins=()
for name in $names; do
  pins+=("$(.venv/bin/python -m pip show "$name" | awk -v n="$name" '/^Version:/ {print n "==" $2}')")
done
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
# omegaconf's parser runtime is published as a source archive only: build its (pure) wheel here.
python3 -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==4.9.3"
ls -la .whl && du -sh .whl
