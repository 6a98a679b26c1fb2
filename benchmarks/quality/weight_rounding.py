"""Issue 35 item 1: which weight rounding leaves the least error, with no training: calibration ranges only vs
GPTQ vs the asymmetric updates fitted against the float model's inputs too (GPFQ, Qronos: GPTAQ's idea) vs
learned rounding started from one of them (``+learned``), with a scale per output channel or per group of input
channels (``--group-sizes``, recipe key ``weight_group_size``), on LiteMedSAM's Brevitas recipes, one run, same
prompts.

    python benchmarks/quality/weight_rounding.py --recipes brevitas_w6a6 brevitas_w4a8 --rounding none gptq qronos \\
        --images 8 --json benchmarks/results/DATE_MACHINE_weight_rounding.json

Per student: FP-fidelity and GT Dice on nuclei / MNI (torch FP32 reference, same prompts), and the encoder-output
relative error on the first calibration image with activation quantizers off (the weights' own error) and on.
Calibration: the first ``--images`` of the bundled synthetic set, min/max activation ranges, no reconstruction,
no distillation.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["brevitas_w6a6", "brevitas_w4a8"],
                    help="recipe names, each optionally with overrides as a YAML mapping: "
                    "\"brevitas_w6a6@{high_precision_modules: ['^layers\\.0\\.', downsample, local_conv]}\"")
    ap.add_argument("--rounding", nargs="+", default=["none", "gptq", "qronos"],
                    choices=["none", "gptq", "gpfq", "qronos", "gptq+learned", "qronos+learned"],
                    help="+learned: learned rounding (rounding_iters 200) started from that algorithm's solution")
    ap.add_argument("--group-sizes", nargs="+", type=int, default=[0],
                    help="weight_group_size values (0: per output channel)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from brevitas.graph.calibrate import quantization_status_manager

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.brevitas import quantize_sam
    from dfq_sam_plugin.data.arrays import ASSETS, ArraySet
    from dfq_sam_plugin.data.inputs import to_encoder_input
    from dfq_sam_plugin.distill.losses import relative_mse
    from dfq_sam_plugin.eval import load_benchmark, per_prompt, predict_set
    from dfq_sam_plugin.recipes import load_recipe, parse_overrides
    from dfq_sam_plugin.runtime import SamBoxPredictor

    sam = load_sam("litemedsam")
    data = ArraySet.from_npz(ASSETS / "litemedsam_dfqsam16.npz")
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    x = torch.from_numpy(to_encoder_input(data.pixels[0], sam.spec))
    with torch.no_grad():
        reference = sam.model.image_encoder(x)
    fp_masks = {b.name: predict_set(SamBoxPredictor(sam), b) for b in sets}  # the reference, predicted once
    fp_dice = {b.name: float(per_prompt(b, fp_masks[b.name])["dice"].mean()) for b in sets}
    rows = {}
    runs = [(name, rounding, group) for name in args.recipes for rounding in args.rounding for group in args.group_sizes]
    for spec, rounding, group in runs:
        name, _, overrides = spec.partition("@")
        recipe = {**load_recipe(name), **parse_overrides(overrides, spec),
                  "subset_size": args.images, "activation_range": "minmax",
                  "calibration_letterbox": 0.0, "reconstruct_iters": 0, "distill_steps": 0,
                  "gptq": rounding != "none",
                  "gptq_algorithm": "gptq" if rounding == "none" else rounding.removesuffix("+learned"),
                  "rounding_iters": 200 if rounding.endswith("+learned") else 0, "weight_group_size": group}
        t0 = time.perf_counter()
        q = quantize_sam(sam, data, recipe)
        seconds = time.perf_counter() - t0
        encoder = q.sam.model.image_encoder.eval()
        with torch.no_grad():
            err = float(relative_mse(encoder(x), reference))
            with quantization_status_manager(encoder, is_training=False, disable_act_quant=True):
                werr = float(relative_mse(encoder(x), reference))
        key = f"{spec}/{rounding}" + (f"/g{group}" if group else "")
        student = SamBoxPredictor(q.sam)
        scores = {b.name: per_prompt(b, predict_set(student, b), fp_masks[b.name]) for b in sets}
        rows[key] = {"seconds": round(seconds, 1), "encoder_rel_err": err, "encoder_rel_err_weights_only": werr,
                     "report": {k: v for k, v in q.report.items()
                               if k.endswith("_s") or "bits" in k or k in ("rounding", "weight_scales")},
                     "fidelity": {n: float(sc["fidelity"].mean()) for n, sc in scores.items()},
                     "gt_dice_delta_pt": {n: 100 * (float(sc["dice"].mean()) - fp_dice[n])
                                          for n, sc in scores.items()}}
        print(f"{key}: {seconds:.0f} s, encoder rel. error {err:.4f} (weights only {werr:.4f}), fidelity "
              f"nuclei {rows[key]['fidelity']['nuclei']:.4f} mni {rows[key]['fidelity']['mni']:.4f}", flush=True)
        if args.json:  # rewritten after every student: a run cut short keeps what finished
            Path(args.json).write_text(json.dumps({"cpu": platform.processor() or "x86_64", "images": args.images,
                                                   "activation_range": "minmax", "rows": rows}, indent=2,
                                                  default=str))


if __name__ == "__main__":
    main()
