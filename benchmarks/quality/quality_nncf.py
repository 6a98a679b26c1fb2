"""NNCF/OpenVINO INT8 quality of LiteMedSAM: calibration source x reparameterization x NNCF options, all on
the same prompts of the real benchmark sets, in one run (docs/architecture.md#evaluation).

    python benchmarks/quality/quality_nncf.py --dfqsam calib/dfqsam32 --json benchmarks/results/2026-11-22_avx2-2c_quality_nncf.json

Rows: FP-fidelity (Dice of INT8 vs FP masks) and GT Dice per set. The encoder is INT8, the decoder float.
Every row starts from ``--recipe`` with ``ignored_modules`` cleared; ``reparam0.5+fp-stage0`` is the shipped
``openvino_int8_cpu`` recipe.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

STAGE0 = [r"^patch_embed\.", r"^layers\.0\."]  # patch embedding + stage 0 (the shipped CPU recipe's ignored_modules)
CONFIGS = {
    # name: (calibration, reparam (False | True | strength), recipe overrides)
    "nncf-default/dfq-sam": ("dfq-sam", False, {"smooth_quant_alpha": 0.95, "overflow_fix": "first_layer_only"}),
    "nncf-default/gaussian": ("gaussian", False, {"smooth_quant_alpha": 0.95, "overflow_fix": "first_layer_only"}),
    "no-reparam/dfq-sam": ("dfq-sam", False, {}),
    "reparam/gaussian": ("gaussian", True, {}),
    "reparam/real-mni": ("real-mni", True, {}),
    "reparam/dfq-sam": ("dfq-sam", True, {}),
    "reparam+sq/dfq-sam": ("dfq-sam", True, {"smooth_quant_alpha": 0.95}),
    "reparam0.5/dfq-sam": ("dfq-sam", 0.5, {}),
    # stage-0 depthwise-conv inputs (post-GELU, 64x64) are the single most sensitive per-tensor activation
    "reparam+fp-dw0/dfq-sam": ("dfq-sam", True, {"ignored_patterns": [r".*layers\.0\..*conv2.*"]}),
    "reparam+fp-dw/dfq-sam": ("dfq-sam", True, {"ignored_types": ["GroupConvolution"]}),
    "no-reparam+fp-dw/dfq-sam": ("dfq-sam", False, {"ignored_types": ["GroupConvolution"]}),
    "reparam0.5+fp-dw/dfq-sam": ("dfq-sam", 0.5, {"ignored_types": ["GroupConvolution"]}),
    # noise injected upstream of stage-0's first depthwise conv is amplified 45-87x on MNI (docs/notebook/2026-11-23.md §4.2)
    "reparam0.5+fp-stem/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": [r"^patch_embed\.", r"^layers\.0\.blocks\.0\."]}),
    "reparam0.5+fp-stage0/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": STAGE0}),
    # letterboxed copies of the calibration images (data.inputs): the padding edge of non-square images
    "reparam0.5+fp-stage0+lb0.5/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": STAGE0, "calibration_letterbox": 0.5}),
    "reparam0.5+fp-stage0+lb1/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": STAGE0, "calibration_letterbox": 1.0}),
    # + the TinyViT blocks' depthwise local_conv (and so its input, the residual stream) float: the leave-one-out
    # analysis of docs/notebook/2026-11-25.md §9.4 found their input quantizers hold most of the remaining error
    "reparam0.5+fp-stage0+lb1+fp-localconv/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": [*STAGE0, "local_conv"],
                                                                      "calibration_letterbox": 1.0}),
    # the same quantization through NNCF's torch backend (nncf_backend: torch), converted to the IR
    "torch:reparam0.5+fp-stage0+lb1+fp-localconv/dfq-sam": ("dfq-sam", 0.5, {
        "ignored_modules": [*STAGE0, "local_conv"], "calibration_letterbox": 1.0, "nncf_backend": "torch"}),
    "torch:reparam0.5+fp-stage0+lb1/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": STAGE0,
                                                               "calibration_letterbox": 1.0, "nncf_backend": "torch"}),
    "reparam0.5+fp-stage0+fp-localconv/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": [*STAGE0, "local_conv"]}),
    "reparam0.5+fp-stage01/dfq-sam": ("dfq-sam", 0.5, {"ignored_modules": [r"^patch_embed\.", r"^layers\.[01]\."]}),
    # 8-bit weights: saturate on AVX2-only CPUs, not on VNNI/AMX (benchmarks/quality/fidelity_amx.py scores them there)
    "reparam0.5+of-off/dfq-sam": ("dfq-sam", 0.5, {"overflow_fix": "disable"}),
    "reparam0.5+of-off+fp-stage0/dfq-sam": ("dfq-sam", 0.5, {"overflow_fix": "disable",
                                                             "ignored_modules": STAGE0}),
    # full BiasCorrection (layer by layer, upstream quantization included) instead of the fast one
    "reparam0.5+bc/dfq-sam": ("dfq-sam", 0.5, {"fast_bias_correction": False}),
    "reparam0.5+bc+fp-stage0/dfq-sam": ("dfq-sam", 0.5, {"fast_bias_correction": False,
                                                         "ignored_modules": STAGE0}),
    # NNCF's default activation ranges average per-image min/max over the calibration images
    "reparam0.5+minmax/dfq-sam": ("dfq-sam", 0.5, {"activation_range": "minmax"}),
    "reparam0.5+histogram/dfq-sam": ("dfq-sam", 0.5, {"activation_range": "histogram"}),
    "reparam0.5+minmax+fp-stage0/dfq-sam": ("dfq-sam", 0.5, {"activation_range": "minmax",
                                                             "ignored_modules": STAGE0}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dfqsam", required=True,
                    help="a DFQ-SAM calibration set folder (dfq-sam synthesize), or 'bundled' (the demo's 16 images)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--sets", nargs="+", default=["nuclei", "mni"])
    ap.add_argument("--recipe", default="recipes/openvino_int8_cpu.yaml")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from _quality import calibration_sources, evaluate_and_report

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.nncf import quantize_sam, reparameterize_sam
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.runtime import OVSamPredictor, SamBoxPredictor

    sam = load_sam("litemedsam")
    calib = calibration_sources(sam, args.dfqsam)
    made, reparams = {}, {}
    base = load_recipe(args.recipe)
    tmp = Path(tempfile.mkdtemp(prefix="quality-"))
    predictors = {"fp": SamBoxPredictor(sam)}
    facts = {}
    for name in args.configs:
        source, reparam, overrides = CONFIGS[name]
        ds = made.setdefault(source, calib[source]())
        model = sam
        if reparam:
            strength = 1.0 if reparam is True else float(reparam)
            key = (source, strength, overrides.get("calibration_letterbox", 0.0))
            if key not in reparams:
                reparams[key] = reparameterize_sam(sam, ds, subset_size=base["subset_size"], strength=strength,
                                                   letterbox=key[2])[0]
            model = reparams[key]
        # rows are relative to the recipe without its ignored scope, so they keep their meaning across recipe changes
        recipe = {**base, "ignored_modules": [], **overrides, "reparam": False, "name": name.replace("/", "_")}
        t0 = time.perf_counter()
        q = quantize_sam(model, ds, recipe)
        folder = q.save(tmp / recipe["name"])
        facts[name] = {"calibration": source, "images": len(ds), "reparam": reparam, "overrides": overrides,
                       "quantize_s": round(time.perf_counter() - t0, 1),
                       "real_data_used": ds.provenance["real_data_used"]}
        predictors[name] = OVSamPredictor(folder)
        print(f"quantized {name} in {facts[name]['quantize_s']} s", flush=True)
    evaluate_and_report(predictors, facts, args.sets, args.json)


if __name__ == "__main__":
    main()
