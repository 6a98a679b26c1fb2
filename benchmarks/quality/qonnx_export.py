"""Issue 35 item 3b: Brevitas students (W4A4, W4A8, ...) exported as QONNX, read back, and compared with the student.

    python benchmarks/quality/qonnx_export.py --recipes brevitas_w4a4 brevitas_w4a8 \\
        --json benchmarks/results/DATE_MACHINE_qonnx_export.json

Per recipe (LiteMedSAM, bundled synthetic set, ``--images`` for the ranges, min/max, no training): export seconds,
file size, Quant nodes by bit-width, and on ``--eval`` calibration images the encoder-output relative error of the
QONNX graph (computed by ``export.qonnx.QONNXModel``, onnx's reference evaluator) against the student, beside the
student's own change when its input moves by 1e-6 Gaussian noise (how far float rounding alone moves it: a
4-bit-activation network flips roundings) and the student's error against the FP encoder. Under log2sqrt both
the student and the export keep the attention probabilities float (no log√2 quantizer in QONNX).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["brevitas_w4a4", "brevitas_w4a8"])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--eval", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from torch import nn

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.brevitas import QuantPointAttention, quantize_sam
    from dfq_sam_plugin.data.arrays import ASSETS, ArraySet
    from dfq_sam_plugin.data.inputs import to_encoder_input
    from dfq_sam_plugin.export.qonnx import QONNXModel
    from dfq_sam_plugin.recipes import load_recipe

    def rel(a, b) -> float:
        return float((a - b).norm() / b.norm())

    def value(t):
        return t.value if hasattr(t, "value") else t

    sam = load_sam("litemedsam")
    data = ArraySet.from_npz(ASSETS / "litemedsam_dfqsam16.npz")
    rows = {}
    gen = torch.Generator().manual_seed(0)
    for name in args.recipes:
        recipe = {**load_recipe(name), "subset_size": args.images, "activation_range": "minmax",
                  "reconstruct_iters": 0, "distill_steps": 0, "export_onnx": False}
        q = quantize_sam(sam, data, recipe)
        with tempfile.TemporaryDirectory() as tmp:
            path = q.export_qonnx(Path(tmp) / "encoder.qonnx.onnx")
            t0 = time.perf_counter()
            model = QONNXModel(path)
            row = {**q.report["qonnx"], "mib": path.stat().st_size / 2**20, "quant_nodes_by_bits": model.bit_widths(),
                   "average_weight_bits": q.report.get("average_weight_bits"), "images": []}
            encoder = q.sam.model.image_encoder.eval()
            if recipe["softmax_quantizer"] == "log2sqrt":
                for m in encoder.modules():
                    if isinstance(m, QuantPointAttention):
                        m.probs = nn.Identity()  # what the export holds
            for i in range(args.eval):
                x = torch.from_numpy(to_encoder_input(data.pixels[i], sam.spec))
                t0 = time.perf_counter()
                out = torch.from_numpy(model(x.numpy()))
                run_s = time.perf_counter() - t0
                with torch.no_grad():
                    student = value(encoder(x))
                    nudged = value(encoder(x + 1e-6 * torch.randn(x.shape, generator=gen)))
                    fp = sam.model.image_encoder(x)
                row["images"].append({"qonnx_vs_student": rel(out, student),
                                      "student_vs_student_1e-6_noise": rel(nudged, student),
                                      "student_vs_fp": rel(student, fp), "qonnx_run_s": round(run_s, 1)})
        rows[name] = row
        print(name, json.dumps(row), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"cpu": platform.processor() or "x86_64", "images": args.images,
                                                   "activation_range": "minmax", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
