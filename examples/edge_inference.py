"""On the edge box: OpenVINO only (no torch import). Segment an image with box prompts from an export folder
made by `dfq-sam quantize` (or `dfq-sam demo`: dfq_sam_out/int8).

An export made with a CPU recipe carries several encoders (INT8 and float) that share one decoder; the predictor
measures them on this CPU (latency, and FP-fidelity on the synthetic probe inside the export), runs the fastest
faithful one and says why. `--policy` overrides: fastest, smallest, most_faithful, or a candidate's name.

    python examples/edge_inference.py --ir dfq_sam_out/int8 [--device CPU|NPU] [--policy fastest_faithful]
"""

import argparse
import sys

import numpy as np

from dfq_sam_plugin.runtime import OVSamPredictor

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--ir", required=True, help="export folder: encoder*.xml, decoder.xml, manifest.json")
ap.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
ap.add_argument("--policy", default="fastest_faithful", help="which encoder candidate to run (default: measured)")
args = ap.parse_args()

predictor = OVSamPredictor(args.ir, device=args.device, policy=args.policy)
print(f"encoder: {predictor.candidate} ({predictor.choice.reason})")
print("calibration:", predictor.calibration)  # how the IR was calibrated (also in the IRs' rt_info)
yy, xx = np.mgrid[:256, :320]
image = (200 * (((yy - 120) / 50) ** 2 + ((xx - 150) / 70) ** 2 < 1) + 20).astype(np.uint8)  # one bright ellipse
predictor.set_image(image)  # encode once (segment-anything's way) ...
masks, iou = predictor.predict(np.array([[70, 60, 230, 180], [90, 80, 210, 160]], dtype=np.float32))  # ... many prompts
print("masks", masks.shape, "foreground pixels", masks.sum(axis=(1, 2)).tolist(), "predicted IoU", iou.round(3).tolist(),
      "| torch imported:", "torch" in sys.modules)
