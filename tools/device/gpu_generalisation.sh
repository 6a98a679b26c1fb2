#!/usr/bin/env bash
# Issue 34 on one GPU box: synthetic sets made by each synthesis switch at the same budget, plus a held-out
# validation set (another seed), each brought back as NAME.npz (float16 pixels, boxes) + NAME.json (provenance from
# the run key: ArraySet.from_npz reads it). Needs the two model wheels in .whl/. Resumable: shards stay under calib/.
#   [BATCH=16 AMP=auto] bash tools/device/gpu_generalisation.sh SECONDS N ITERS NAME:SEED:ARGS...
#   e.g. "boundary:0:--boundary 0.5"; sets run one after another, so a call cut short keeps the finished ones
set -uo pipefail
OUT=${OUT:-/tmp/out}
seconds=$1 n=$2 iters=$3
shift 3
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
for m in scipy sklearn networkx psutil pydot tabulate safetensors natsort jstyleson ninja sympy; do
  python3 -c "import $m" 2>/dev/null && echo "has $m" || echo "lacks $m"; done
end=$(( $(date +%s) + seconds ))
for spec in "$@"; do
  IFS=: read -r name seed extra <<< "$spec"
  left=$(( end - $(date +%s) ))
  [ "$left" -gt 30 ] || { echo "no time left for $name"; break; }
  t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout --signal=KILL "$left" python3 -m dfq_sam_plugin.cli synthesize --model litemedsam --num-images "$n" \
    --iterations "$iters" --batch-size "${BATCH:-16}" --amp "${AMP:-auto}" --seed "$seed" --device cuda --shards-only --quiet --out "calib/$name" $extra
  echo "$name: exit $? after $(( $(date +%s) - t0 )) s"
  python3 - "$name" <<'PY'
import json, sys
import numpy as np
from dfq_sam_plugin import load_sam
from dfq_sam_plugin.data.arrays import ArraySet
name = sys.argv[1]
try:
    s = ArraySet.from_shards(f"calib/{name}", load_sam("litemedsam").spec)
except ValueError as exc:
    sys.exit(f"{name}: {exc}")
import os
out = os.environ.get("OUT", "/tmp/out")
np.savez_compressed(f"{out}/{name}.npz", pixels=s.pixels.astype(np.float16), boxes=s.boxes)
open(f"{out}/{name}.json", "w").write(json.dumps({**s.provenance, "transport": "pixels as float16"}, indent=1))
print(name, len(s), "images packed")
PY
done
