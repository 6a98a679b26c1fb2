"""What the decoder-aware reconstruction term (issue 35 item 2) costs: seconds of block reconstruction with and
without ``reconstruct_decoder_weight``, same student, same inputs, same iterations.

    python benchmarks/training/decoder_term_cost.py --iters 5 --json benchmarks/results/DATE_MACHINE_decoder_term_cost.json

LiteMedSAM, ``brevitas_w4a8`` calibrated on ``--images`` bundled images (min/max, no letterbox copies), then
``--iters`` reconstruction iterations per unit (batch 2) on ``--device``; per row the total reconstruction seconds
and the slowest units. The term runs the float rest of the encoder and the float decoder every iteration, from the
encoder's input (not from the unit's captured input), so its cost grows with the depth before the unit.
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.brevitas import quantize_sam
    from dfq_sam_plugin.data.arrays import ASSETS, ArraySet
    from dfq_sam_plugin.recipes import load_recipe

    sam = load_sam("litemedsam")
    data = ArraySet.from_npz(ASSETS / "litemedsam_dfqsam16.npz")
    data = ArraySet(data.pixels[:args.images], data.boxes[:args.images], data.provenance)
    rows = {}
    for weight in args.weights:
        recipe = {**load_recipe("brevitas_w4a8"), "subset_size": args.images, "activation_range": "minmax",
                  "calibration_letterbox": 0.0, "reconstruct_iters": args.iters, "reconstruct_batch": 2,
                  "reconstruct_decoder_weight": weight, "reconstruct_decoder_boxes": 4, "distill_steps": 0}
        q = quantize_sam(sam, data, recipe, device=args.device, train_progress=False)
        rec = q.report["reconstruct"]
        units = sorted(((u["name"], u.get("seconds", 0.0)) for u in rec["units"]), key=lambda t: -t[1])
        rows[f"decoder_weight={weight:g}"] = {"seconds": rec["seconds"], "inputs": rec["inputs"],
                                              "slowest_units": units[:4], "output_after": rec["output_after"]}
        print(weight, json.dumps(rows[f"decoder_weight={weight:g}"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": platform.processor() or "x86_64", "device": args.device,
                                               "iters": args.iters, "images": args.images, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
