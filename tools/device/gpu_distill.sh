#!/usr/bin/env bash
# Distillation runs on one GPU box (torch, no NNCF there): installs the model wheels (.whl/) and NNCF with the
# dependencies the box lacks (.whl2/, pure-Python or small), then `benchmarks/training/distill_gpu.py run ARGS...`
# with $OUT/NAME.json as its --json (rewritten after every variant, so a call cut short keeps what finished).
#   bash tools/device/gpu_distill.sh NAME --pack carried/distill --data sets --add carried/gen/base.npz \
#        --held-out carried/gen/val.npz --steps 250 --variant "" --variant "distill_refresh_every=50"
set -uo pipefail
OUT=${OUT:-/tmp/out}
name=$1
shift
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  .whl2/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
python3 benchmarks/training/distill_gpu.py run --json "$OUT/$name.json" "$@" 2>&1 | grep -v "^INFO:nncf"
