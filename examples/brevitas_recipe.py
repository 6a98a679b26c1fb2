"""Brevitas from a YAML recipe: fake-quantize LiteMedSAM's encoder (log2sqrt softmax, reparameterized scales),
calibrate on a data-free set, save, and compare one prediction with the FP model.

    python examples/brevitas_recipe.py --recipe recipes/brevitas_w4a4.yaml [--calib DIR] --device cuda --out w4a4/

Training recipes (brevitas_w6a6, brevitas_w4a8, brevitas_w4a4: block reconstruction, distillation) want a GPU;
``--calibration-only`` drops their training steps (what CI runs on its CPU).
"""

import argparse

import numpy as np

from dfq_sam_plugin import DFQSAMDataset, load_sam
from dfq_sam_plugin.backends.brevitas import quantize_sam
from dfq_sam_plugin.eval import dice, nuclei_set
from dfq_sam_plugin.recipes import load_recipe
from dfq_sam_plugin.runtime import SamBoxPredictor

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--recipe", default="recipes/brevitas_w4a4.yaml")
ap.add_argument("--calib", default=None, help="a `dfq-sam synthesize` folder (default: the bundled set)")
ap.add_argument("--subset-size", type=int, default=None, help="override the recipe's calibration images")
ap.add_argument("--device", default="cpu")
ap.add_argument("--calibration-only", action="store_true", help="skip the recipe's reconstruction / distillation")
ap.add_argument("--out", default="brevitas_out")
args = ap.parse_args()

sam = load_sam("litemedsam")
calib = DFQSAMDataset.load(args.calib, sam) if args.calib else DFQSAMDataset.bundled(sam)
recipe = load_recipe(args.recipe)
if args.subset_size:
    recipe.update(subset_size=args.subset_size, activation_range="percentile")  # quick: no MSE search
if args.calibration_only:
    recipe.update(reconstruct_iters=0, distill_steps=0)
quantized = quantize_sam(sam, calib, recipe, device=args.device)
print("saved", quantized.save(args.out))

item = nuclei_set().images[0]
fp = SamBoxPredictor(sam).predict(item.image, item.boxes[:8])
q = SamBoxPredictor(quantized.sam).predict(item.image, item.boxes[:8])
print(f"{recipe['name']}: FP-fidelity on 8 nuclei = {np.mean([dice(a, b) for a, b in zip(q, fp)]):.3f}")
