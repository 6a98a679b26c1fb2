"""README's quickstart: data-free INT8 LiteMedSAM for this CPU, exported and segmenting, in five lines.

    python examples/quickstart.py [--out dfq_sam_out/quickstart] [--recipe auto]
"""

import argparse

import numpy as np

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--out", default="dfq_sam_out/quickstart")
ap.add_argument("--recipe", default="auto", help="auto: the packaged recipe for this CPU's class")
args = ap.parse_args()

image, boxes = np.zeros((200, 240), np.uint8), np.array([[40, 30, 160, 150]])  # your image; xyxy pixel boxes
image[50:140, 60:150] = 200
# --- the five lines -------------------------------------------------------------------------------------
import dfq_sam_plugin as dfq  # noqa: E402

sam = dfq.load_sam("litemedsam")                             # bundled pretrained weights, no download
calib = dfq.DFQSAMDataset.bundled(sam)                       # synthetic images made from the FP model alone
dfq.quantize(sam, calib, recipe=args.recipe).save(args.out)  # NNCF -> OpenVINO IRs (+ candidates, probe)
pred = dfq.OVSamPredictor(args.out)                          # measures the encoder candidates on this CPU
pred.set_image(image); masks, iou = pred.predict(boxes)      # noqa: E702  bool (N, H, W) masks, IoU scores
# ---------------------------------------------------------------------------------------------------------
print("encoder:", pred.candidate, "-", pred.choice.reason)
print("real_data_used =", calib.provenance["real_data_used"])
print(f"masks {masks.shape} {masks.dtype}, decoder IoU {iou.round(3).tolist()}")
