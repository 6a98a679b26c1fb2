#!/usr/bin/env bash
# Issue #13 on one GPU box: 4-bit Brevitas students, each scored against the FP masks of the pack (JSON per run in
# $OUT, rewritten after every stage, so a run cut short keeps its finished stages).
#   bash tools/device/gpu_fourbit.sh SECONDS EXTRA_SET RUN...      # EXTRA_SET: synthesis folder (its .shards)
#   RUN: w6a6 | w4a4 | w4a8 (DFQ-SAM data: bundled 16 + EXTRA_SET) | w4a8_gaussian (as many Gaussian-noise images)
# SET="KEY=VALUE ..." changes the recipe of every run (e.g. a shorter distillation); STAGES="calib recon" runs fewer;
# ABLATE="weights-only activations-only" also scores each calibrated student with one error source removed.
# Runs go one after another within SECONDS in all; PARALLEL=1 starts them side by side instead (docs/notebook/2026-12-02.md §10.1: four
# at once made each calibration 2.0-2.4x slower, and none finished reconstruction within a 10-minute call).
# Every run takes `brevitas_w4a8`'s training settings (reparameterized scales, depthwise equalization, stem + patch
# mergings at 8 bits, learned weight scales, block reconstruction, then distillation); W4A4 starts from percentile
# ranges on a 16-image subset (min/max is too coarse at 4 bits).
set -uo pipefail
OUT=${OUT:-/tmp/out}
seconds=$1 extra=$2
shift 2
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/benchmarks PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
add=()
if [ -d "$extra/.shards" ]; then add=(--add "$extra"); else echo "no $extra/.shards: bundled 16 images only"; fi
n=$(( 16 + $(python3 -c "import sys; from dfq_sam_plugin.data.shards import ShardStore; print(len(ShardStore(sys.argv[1]).done()))" "$extra") ))
LOW="softmax_quantizer=log2sqrt"
S=${SET:-}  # recipe overrides for every run, e.g. SET="distill_steps=100"
read -r -a stage_args <<< "--stages ${STAGES:-calib recon recon+distill}${ABLATE:+ --ablate $ABLATE}"
args_of() {
  case "$1" in
    w6a6) echo "${add[*]} --set weight_bits=6 activation_bits=6 $LOW $S" ;;
    w4a4) echo "${add[*]} --set activation_bits=4 $LOW activation_range=percentile subset_size=16 $S" ;;
    w4a8) echo "${add[*]} ${S:+--set $S}" ;;
    w4a8_gaussian) echo "--data gaussian --images $n ${S:+--set $S}" ;;
    *) echo "unknown run $1" >&2; return 1 ;;
  esac
}
end=$(( $(date +%s) + seconds ))
for name in "$@"; do
  a=$(args_of "$name") || exit 1
  left=$(( end - $(date +%s) ))
  # shellcheck disable=SC2086
  cmd=(timeout --signal=INT "$left" python3 benchmarks/training/fourbit_gpu.py --pack carried/distill --recipe brevitas_w4a8
       $a "${stage_args[@]}" --json "$OUT/$name.json")
  if [ "${PARALLEL:-0}" = 1 ]; then OMP_NUM_THREADS=4 "${cmd[@]}" > "$OUT/$name.log" 2>&1 &
  else "${cmd[@]}" > "$OUT/$name.log" 2>&1; fi
done
wait
for name in "$@"; do echo "== $name"; grep -v "^\s*$" "$OUT/$name.log" | tail -n 12; done
