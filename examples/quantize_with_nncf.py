"""A NNCF user's view: a data-free calibration set is an ``nncf.Dataset``; pass it to ``nncf.quantize``.

    python examples/quantize_with_nncf.py [--calib DIR] --out int8_encoder.xml
"""

import argparse

import nncf
import openvino as ov
import torch

from dfq_sam_plugin import DFQSAMDataset, load_sam
from dfq_sam_plugin.backends.nncf import reparameterize_sam

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--calib", default=None, help="a `dfq-sam synthesize` folder (default: the set bundled in the package)")
ap.add_argument("--subset-size", type=int, default=16)
ap.add_argument("--out", default="int8_encoder.xml")
args = ap.parse_args()

sam = load_sam("litemedsam")  # bundled weights, no download
calib = DFQSAMDataset.load(args.calib, sam) if args.calib else DFQSAMDataset.bundled(sam)
print(calib.provenance["method"], "real_data_used =", calib.provenance["real_data_used"])

sam, summary = reparameterize_sam(sam, calib, subset_size=args.subset_size, strength=0.5)  # optional, our step
s = sam.spec.img_size
encoder = ov.convert_model(sam.model.image_encoder, example_input=torch.zeros(1, 3, s, s), input=[1, 3, s, s])
int8 = nncf.quantize(encoder, calib, model_type=nncf.ModelType.TRANSFORMER, subset_size=args.subset_size,
                     advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE))
ov.save_model(int8, args.out)
print(f"wrote {args.out} ({summary['pairs']} LayerNorm->Linear pairs reparameterized)")
