"""Brevitas fake-quantized LiteMedSAM quality: bit-width x calibration source x reparam x log2sqrt softmax,
all on the same prompts of the real benchmark sets, in one run (docs/architecture.md#evaluation).

    python benchmarks/quality/quality_brevitas.py --dfqsam calib/dfqsam32 --psaq calib/psaq32 \\
        --json benchmarks/results/2026-11-23_avx2-2c_quality_brevitas.json

Encoder quantized (decoder float). Activation ranges: the recipe's, overridable with --activation-range
(the MSE search costs ~100 s per calibration image on a 2-core CPU; percentile ~16 s).
"""

from __future__ import annotations

import argparse
import time
import warnings

warnings.filterwarnings("ignore")

CONFIGS = {
    # name: (recipe, calibration, recipe overrides)
    "W8A8/dfq-sam": ("brevitas_w8a8", "dfq-sam", {}),
    "W6A6/dfq-sam": ("brevitas_w6a6", "dfq-sam", {}),
    "W4A4/dfq-sam": ("brevitas_w4a4", "dfq-sam", {}),
    "W4A4/gaussian": ("brevitas_w4a4", "gaussian", {}),
    "W4A4/psaq": ("brevitas_w4a4", "psaq", {}),
    "W4A4/real-mni": ("brevitas_w4a4", "real-mni", {}),
    "W4A4-no-reparam/dfq-sam": ("brevitas_w4a4", "dfq-sam", {"reparam": False}),
    "W4A4-uniform-softmax/dfq-sam": ("brevitas_w4a4", "dfq-sam", {"softmax_quantizer": "uniform"}),
    # depthwise-conv inputs (TinyViT MBConv conv2, local_conv) are the most sensitive per-tensor activations
    "W8A8-fp-dw/dfq-sam": ("brevitas_w8a8", "dfq-sam", {"ignored_modules": [r"conv2\.c$", r"local_conv\.c$"]}),
    "W4A4-fp-dw/dfq-sam": ("brevitas_w4a4", "dfq-sam", {"ignored_modules": [r"conv2\.c$", r"local_conv\.c$"]}),
    # ... or quantized after their per-channel input spread moved into their weights (reparam/depthwise.py)
    "W8A8-eq-dw/dfq-sam": ("brevitas_w8a8", "dfq-sam", {"equalize_depthwise": True}),
    "W4A4-eq-dw/dfq-sam": ("brevitas_w4a4", "dfq-sam", {"equalize_depthwise": True}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dfqsam", required=True, help="a DFQ-SAM calibration set folder (dfq-sam synthesize)")
    ap.add_argument("--psaq", default=None, help="a patch-similarity-only set (dfq-sam synthesize --method psaq)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--sets", nargs="+", default=["nuclei", "mni"])
    ap.add_argument("--subset-size", type=int, default=None, help="calibration images (default: the recipe's)")
    ap.add_argument("--activation-range", default=None, choices=["minmax", "percentile", "percentile_mse"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from _quality import calibration_sources, evaluate_and_report

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.brevitas import quantize_sam
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.runtime import SamBoxPredictor

    sam = load_sam("litemedsam")
    calib = calibration_sources(sam, args.dfqsam, args.psaq)
    made, facts = {}, {}
    predictors = {"fp": SamBoxPredictor(sam)}
    for name in args.configs:
        recipe_name, source, overrides = CONFIGS[name]
        ds = made.setdefault(source, calib[source]())
        recipe = {**load_recipe(f"recipes/{recipe_name}.yaml"), **overrides}
        if args.subset_size:
            recipe["subset_size"] = args.subset_size
        if args.activation_range:
            recipe["activation_range"] = args.activation_range
        t0 = time.perf_counter()
        q = quantize_sam(sam, ds, recipe)
        facts[name] = {"calibration": source, "images": min(len(ds), recipe["subset_size"]),
                       "recipe": recipe_name, "overrides": overrides, "activation_range": recipe["activation_range"],
                       "quantize_s": round(time.perf_counter() - t0, 1),
                       "real_data_used": ds.provenance["real_data_used"]}
        predictors[name] = SamBoxPredictor(q.sam)
        print(f"quantized {name} in {facts[name]['quantize_s']} s", flush=True)
    evaluate_and_report(predictors, facts, args.sets, args.json)


if __name__ == "__main__":
    main()
