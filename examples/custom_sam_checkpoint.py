"""Official SAM (vit_b / vit_l / vit_h) from your own checkpoint file: load it (weights_only, clear errors on
a mismatch), segment with a box prompt, and reparameterize its encoder on a data-free set.

    python examples/custom_sam_checkpoint.py --checkpoint sam_vit_b_01ec64.pth [--model vit_b]
"""

import argparse
import sys

import numpy as np
import torch

from dfq_sam_plugin import load_sam, synthesize
from dfq_sam_plugin.backends.nncf import reparameterize_sam
from dfq_sam_plugin.runtime import SamBoxPredictor

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--checkpoint", required=True)
ap.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
ap.add_argument("--calib-images", type=int, default=1, help="synthetic images for the reparameterization (0: skip it)")
ap.add_argument("--iterations", type=int, default=2, help="synthesis iterations (use a GPU and the defaults for real)")
args = ap.parse_args()

sam = load_sam(args.model, checkpoint=args.checkpoint)
print(sam.model_id, "input", sam.spec.img_size)
image = (np.random.default_rng(0).random((300, 400)) * 255).astype(np.uint8)
masks = SamBoxPredictor(sam).predict(image, np.array([[50, 60, 200, 220]]))
print("mask", masks.shape, "foreground pixels", int(masks.sum()))

if args.calib_images == 0:
    print("--calib-images 0: skipped the data-free set and the reparameterization")
    sys.exit(0)
calib = synthesize(sam, num_images=args.calib_images, iterations=args.iterations, stages=1,
                                 progress=False)
folded, summary = reparameterize_sam(sam, calib)
x = torch.from_numpy(calib.encoder_input(calib[0]["pixels"]))
with torch.no_grad():
    a, b = sam.model.image_encoder(x), folded.model.image_encoder(x)
print(f"reparameterized {summary['pairs']} pairs; max |Δ| / max |x| = {float((a - b).abs().max() / a.abs().max()):.2e}")
