"""Where LiteMedSAM's encoder amplifies quantization-like noise: Gaussian noise of a relative size ``eps``
(times the tensor's std) is added to the output of one module at a time, and the relative L2 error of the
encoder output, divided by ``eps``, is that module's gain (1: the error passes through unchanged).

    python benchmarks/quality/noise_gain.py --json benchmarks/results/noise_gain.json

Images: two of each real benchmark set (nuclei, MNI) and two synthetic ones; all torch, no backend.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eps", type=float, default=1e-2, help="noise std relative to the tensor's std")
    ap.add_argument("--images", type=int, default=2, help="images per source")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.data.dataset import DFQSAMDataset
    from dfq_sam_plugin.eval import load_benchmark
    from dfq_sam_plugin.models.preprocess import preprocess_image

    torch.manual_seed(0)
    sam = load_sam("litemedsam")
    enc = sam.model.image_encoder.eval()
    images = {s: torch.cat([torch.from_numpy(preprocess_image(im.image, sam.spec)[0]).float()
                            for im in load_benchmark(s).images[:args.images]]) for s in ("nuclei", "mni")}
    images["synthetic"] = next(iter(DFQSAMDataset.bundled(sam).torch_batches(args.images, limit=args.images)))
    # every leaf of the stem (patch_embed, stage 0) and the start of stage 1, then whole blocks
    points = [(n, m) for n, m in enc.named_modules()
              if n.startswith(("patch_embed.", "layers.0.")) and not list(m.children())]
    for i, layer in enumerate(enc.layers[1:], start=1):
        points += [(f"layers.{i}.blocks.{j}", b) for j, b in enumerate(layer.blocks)]
        if getattr(layer, "downsample", None) is not None:
            points.append((f"layers.{i}.downsample", layer.downsample))
    points += [(f"neck.{k}", m) for k, m in enumerate(enc.neck)]

    def forward(x, module=None):
        handle = None
        if module is not None:
            def noisy(_m, _inp, o):  # noise scaled by each image's own std
                std = o.flatten(1).std(1).view(-1, *[1] * (o.dim() - 1))
                return o + args.eps * std * torch.randn_like(o)

            handle = module.register_forward_hook(noisy)
        with torch.inference_mode():
            y = enc(x)
        if handle is not None:
            handle.remove()
        return y

    rows = []
    def relerr(y, ref):  # mean over images of each image's relative L2 error
        return float(((y - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).mean())

    refs = {s: forward(x) for s, x in images.items()}
    for name, module in points:
        row = {"module": name, "type": type(module).__name__}
        for s, x in images.items():
            err = relerr(forward(x, module), refs[s])
            row[s] = round(float(err / args.eps), 3)
        rows.append(row)
        print(f"{name:34s} {row['type']:12s} " + " ".join(f"{s} {row[s]:7.2f}" for s in images), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"eps": args.eps, "images": args.images, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
