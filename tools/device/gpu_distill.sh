#!/usr/bin/env bash
# Distillation runs on one GPU box (torch, no NNCF there): installs the model wheels (.whl/) and NNCF with the
# pure-Python packages the box lacks (carried/nncf/nncf.tar.xz: nncf, pydot, openvino_telemetry copied from this
# venv, 0.4 MB, unpacked into /tmp/site; or wheels in .whl2/), then `benchmarks/training/distill_gpu.py run ARGS...`
# with $OUT/NAME.json as its --json (rewritten after every variant, so a call cut short keeps what finished).
# carry: [".whl", "carried/distill", "carried/nncf"]
#   bash tools/device/gpu_distill.sh NAME --pack carried/distill --data dfq-sam --held-out calib/pool128 \
#        --steps 500 --variant "distill_curriculum=1" --variant "distill_curriculum=2" [--save $OUT/NAME] \
#        [--work calib/NAME_work]
# --work: keeps the PTQ student and each variant's checkpoints in that folder on the device machine (calib/ is
# ignored by git, so the tool keeps it between calls while the machine stays warm). The same call again skips the PTQ
# and resumes the variants: a call cut short after the PTQ (a large pool: synthesis and PTQ fill one call) loses nothing.
set -uo pipefail
OUT=${OUT:-/tmp/out}
name=$1
shift
mkdir -p "$OUT" /tmp/site
wheels=(.whl/*.whl)
[ -d .whl2 ] && wheels+=(.whl2/*.whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${wheels[@]}" \
  || exit 1
if [ -f carried/nncf/nncf.tar.xz ]; then tar xJf carried/nncf/nncf.tar.xz -C /tmp/site || exit 1; fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import nncf" || { echo "no NNCF: carry carried/nncf (or .whl2)"; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader
python3 benchmarks/training/distill_gpu.py run --json "$OUT/$name.json" "$@" 2>&1 | grep --line-buffered -v "^INFO:nncf"
