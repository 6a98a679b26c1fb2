"""Issue 34, the bf16 half of the goal: an encoder whose head (stem, stage 0) runs at f32 and the rest at the CPU's
default precision, against the whole encoder at the default (bf16 on AMX / AVX-512-BF16 CPUs).

OpenVINO's CPU plugin ignores per-node precision marks (docs/notebook/2026-12-06.md §29, §36), so the head runs as
a model of its own: the encoder IR is cut at one tensor (``BOUNDARIES``, LiteMedSAM's TinyViT names;
``runtime.split.SplitEncoder``), the head compiled with ``INFERENCE_PRECISION_HINT=f32``, the body at the default,
the head's output fed to the body. The first and the last boundary are the product's ``@input`` and ``@mixed``
variants (``runtime.split.HEADS``).
`bf16_parts.py` found the stem and stage 0 to be where bf16 costs the float model most. Scored against the FP32 IR
pinned to f32 (masks) on the benchmark's prompts, decoder at the default precision as in every `@default` row;
encoder latency as interleaved rounds of one image (median):

    python benchmarks/quality/split_precision.py --fp FP32_EXPORT --export NAME=EXPORT ... --json R.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from dfq_sam_plugin.runtime import split
from dfq_sam_plugin.runtime.split import F32

warnings.filterwarnings("ignore")

HEADS = split.HEADS["litemedsam"]
BOUNDARIES = {  # head = everything up to this node's output (LiteMedSAM / TinyViT friendly names)
    "first layer (the product's @input)": HEADS["input"],
    "stem": "__module.patch_embed.seq.2.bn/aten::batch_norm/BatchNormInference",
    "stage 0 blocks": "__module.layers.0.blocks.1.act3/aten::gelu/Gelu",
    "stage 0 + its patch merging (the product's @mixed)": HEADS["mixed"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fp", required=True, help="the FP32 export (reference at f32, and the float IR)")
    ap.add_argument("--export", action="append", default=[], help="NAME=FOLDER: another export (repeatable)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import openvino as ov

    from dfq_sam_plugin.eval import evaluate, load_benchmark
    from dfq_sam_plugin.runtime import OVSamPredictor
    from dfq_sam_plugin.runtime.split import SplitEncoder

    core = ov.Core()
    folders = {"float IR": args.fp, **dict(spec.partition("=")[::2] for spec in args.export)}
    predictors = {"fp": OVSamPredictor(args.fp, config=F32)}
    for name, folder in folders.items():
        predictors[f"{name} @default"] = OVSamPredictor(folder)
        for label, boundary in BOUNDARIES.items():
            p = OVSamPredictor(folder)  # its decoder at the default; its encoder replaced by the split pair
            r = SplitEncoder(core, f"{folder}/encoder.xml", "CPU", {}, boundary).create_infer_request()
            p.embed = lambda px, r=r: r.infer({0: px})[0].copy()
            predictors[f"{name}, {label} at f32"] = p
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    report = evaluate(predictors, sets)
    rows = {n: {s.name: {k: report.results[s.name][n][k] for k in ("fidelity", "fidelity_ci95", "dice")} for s in sets}
            for n in predictors if n != "fp"}
    x = np.random.default_rng(0).random((1, 3, 256, 256), np.float32)
    rows["float IR @f32 (the reference)"] = {}
    predictors["float IR @f32 (the reference)"] = predictors["fp"]
    times: dict[str, list[float]] = {n: [] for n in rows}
    for n in times:  # warm-up
        predictors[n].embed(x)
    for _ in range(args.rounds):
        for n in times:
            t0 = time.perf_counter()
            predictors[n].embed(x)
            times[n].append(1e3 * (time.perf_counter() - t0))
    for n, r in rows.items():
        r["encoder_ms"] = float(np.median(times[n]))
        print(f"{n:50s} " + "  ".join(f"{s.name} {r[s.name]['fidelity']:.4f}" for s in sets if s.name in r)
              + f"  encoder {r['encoder_ms']:.0f} ms", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cpu": platform.processor() or "x86_64", "openvino": ov.get_version(),
            "default_precision": core.get_property("CPU", "INFERENCE_PRECISION_HINT").to_string(),
            "fp_dice": {s.name: report.results[s.name]["fp"]["dice"] for s in sets}, "rounds": args.rounds,
            "rows": rows, "encoder_ms_rounds": times}, indent=1))


if __name__ == "__main__":
    main()
