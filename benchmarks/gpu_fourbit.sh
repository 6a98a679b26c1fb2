#!/usr/bin/env bash
# Issue #13 on one GPU box: several 4-bit Brevitas students trained side by side (one process each; a
# student at batch 8 is bound by Python, not by the GPU), each scored against the FP masks of the pack.
#   bash benchmarks/gpu_fourbit.sh SECONDS EXTRA_SET                # EXTRA_SET: synthesis folder (its .shards)
# Runs (JSON per run in $OUT): w6a6, w4a4 (DFQ-SAM data: bundled 16 + EXTRA_SET), w4a8 on the same data and on as
# many Gaussian-noise images. Every run shares the training settings of `brevitas_w4a8` (reparameterized scales,
# depthwise equalization, stem + patch mergings at 8 bits, learned weight scales, block reconstruction, then
# distillation); W4A4 starts from percentile ranges on a 16-image subset (min/max is too coarse at 4 bits).
set -uo pipefail
OUT=${OUT:-/tmp/out}
seconds=$1 extra=$2
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4  # 4 processes, 16 cores
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
add=()
if [ -d "$extra/.shards" ]; then add=(--add "$extra"); else echo "no $extra/.shards: bundled 16 images only"; fi
B=(python3 benchmarks/fourbit_gpu.py --pack carried/distill)
LOW="softmax_quantizer=log2sqrt"
run() {  # NAME ARGS...: one student in the background, its log beside its JSON
  local name=$1; shift
  timeout --signal=INT "$seconds" "${B[@]}" "$@" --json "$OUT/$name.json" > "/tmp/$name.log" 2>&1 &
}
run w6a6 --recipe brevitas_w4a8 "${add[@]}" --set weight_bits=6 activation_bits=6 $LOW --stages calib recon recon+distill
run w4a4 --recipe brevitas_w4a8 "${add[@]}" --set activation_bits=4 $LOW activation_range=percentile subset_size=16 \
  --stages calib recon recon+distill
run w4a8 --recipe brevitas_w4a8 "${add[@]}" --stages calib recon recon+distill
n=$(( 16 + $(python3 -c "import sys,numpy as np,glob;print(sum(len(np.load(f)['indices']) for f in glob.glob(sys.argv[1]+'/.shards/shard-*.npz')))" "$extra" 2>/dev/null || echo 0) ))
run w4a8_gaussian --recipe brevitas_w4a8 --data gaussian --images "$n" --stages calib recon recon+distill
wait
for f in /tmp/w*.log; do echo "== $f"; grep -v "^\s*$" "$f" | tail -n 12; done
