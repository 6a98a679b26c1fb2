"""Per-layer quantization sensitivity of the LiteMedSAM encoder in plain torch (no backend): relative error of
the encoder output on synthetic images when one layer's weights (per-output-channel symmetric INT8) or one
layer's input (per-tensor asymmetric 8-bit, min/max of the image itself) is fake-quantized, the rest float;
then all weights at 8 and at 7 bits (7: what NNCF's OverflowFix.ENABLE leaves the weights).

    python benchmarks/quality/sensitivity_torch.py --images 2 --json benchmarks/results/sensitivity_torch.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2, help="images of the bundled DFQ-SAM set")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numpy as np
    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.data.dataset import DFQSAMDataset

    sam = load_sam("litemedsam")
    enc = sam.model.image_encoder.eval()
    xs = list(DFQSAMDataset.bundled(sam).torch_batches(1, limit=args.images))
    with torch.inference_mode():
        refs = [enc(x) for x in xs]

    def relerr() -> float:
        with torch.inference_mode():
            return float(np.mean([((enc(x) - r).norm() / r.norm()).item() for x, r in zip(xs, refs)]))

    def weight_fq(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
        flat = w.reshape(w.shape[0], -1)
        s = flat.abs().amax(1).clamp_min(1e-12) / (2 ** (bits - 1) - 1)
        return (torch.round(flat / s[:, None]) * s[:, None]).reshape(w.shape)

    layers = [(n, m) for n, m in enc.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    rows = []
    for n, m in layers:
        w = m.weight.data.clone()
        m.weight.data = weight_fq(w)
        rows.append({"what": "weights", "layer": n, "type": type(m).__name__, "relerr": relerr()})
        m.weight.data = w
    for n, m in layers:
        seen = {}

        def grab(_m, inp, seen=seen):
            seen["range"] = (inp[0].min().item(), inp[0].max().item())

        h = m.register_forward_pre_hook(grab)
        with torch.inference_mode():
            enc(xs[0])
        h.remove()
        lo, hi = seen["range"]
        step = max(hi - lo, 1e-12) / 255

        def fake_quant(_m, inp, lo=lo, step=step):
            return (torch.clamp(torch.round((inp[0] - lo) / step), 0, 255) * step + lo,)

        h = m.register_forward_pre_hook(fake_quant)
        rows.append({"what": "input", "layer": n, "type": type(m).__name__, "relerr": relerr()})
        h.remove()
    saved = [(m, m.weight.data.clone()) for _, m in layers]
    together = {}
    for bits in (8, 7):
        for m, w in saved:
            m.weight.data = weight_fq(w, bits)
        together[f"all_weights_int{bits}"] = relerr()
        for m, w in saved:
            m.weight.data = w
    for what in ("weights", "input"):
        sub = sorted((r for r in rows if r["what"] == what), key=lambda r: -r["relerr"])
        print(f"{what}: sum of one-at-a-time errors {sum(r['relerr'] for r in sub):.3f}; top 8:")
        for r in sub[:8]:
            print(f"  {r['layer']:40s} {r['type']:8s} {r['relerr']:.4f}")
    print(together)
    if args.json:
        Path(args.json).write_text(json.dumps({"images": args.images, "rows": rows, **together}, indent=1))


if __name__ == "__main__":
    main()
