#!/usr/bin/env bash
# The GPU check of docs/benchmarks.md in one command: writes OUT.json (default gpu_check.json).
#
#   benchmarks/gpu_check.sh [OUT.json] [--scale auto|full|smoke] [--device auto|cpu|cuda:N] [--work-dir DIR]
#
# On a CUDA machine (scale "full", under 8 minutes on one GPU): fame pretrain r2plus1d_18
# 16x112, batch 64, AMP + channels-last (steps/s, data-wait share, peak memory); the mask
# step on the GPU vs the CPU; JPEG encoding on the GPU vs libjpeg-turbo; a short finetune
# evaluation. Without CUDA the same steps run at tiny sizes in seconds (the test suite does
# that). Uses .venv's python when there is one; PYTHON=... picks another (one whose torch
# sees the GPU). Exit status 1 if any part failed; the JSON says which and why.
set -euo pipefail
cd "$(dirname "$0")/.."
output=gpu_check.json
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then output=$1; shift; fi
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
exec "$python" benchmarks/gpu_check.py --output "$output" "$@"
