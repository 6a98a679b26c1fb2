"""On the edge box: OpenVINO only (no torch import). Segment an image with box prompts from an export folder
made by `dfq-sam quantize` (or `dfq-sam demo`: dfq_sam_out/int8).

    python examples/edge_inference.py --ir dfq_sam_out/int8 [--device CPU|NPU]
"""

import argparse
import sys

import numpy as np

from dfq_sam_plugin.runtime import OVSamPredictor

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--ir", required=True, help="export folder: encoder.xml, decoder.xml, manifest.json")
ap.add_argument("--device", default="CPU")
args = ap.parse_args()

predictor = OVSamPredictor(args.ir, device=args.device)
print("calibration:", predictor.calibration)  # how the IR was calibrated (also in the IRs' rt_info)
yy, xx = np.mgrid[:256, :320]
image = (200 * (((yy - 120) / 50) ** 2 + ((xx - 150) / 70) ** 2 < 1) + 20).astype(np.uint8)  # one bright ellipse
masks = predictor.predict(image, np.array([[70, 60, 230, 180]], dtype=np.float32))
print("mask", masks.shape, "foreground pixels", int(masks.sum()), "| torch imported:", "torch" in sys.modules)
