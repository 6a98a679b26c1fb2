"""Which embedding channels does the mask decoder listen to, do synthetic images tell the same channels as real ones,
and does a quantized encoder err in them? (issue 34: could a data-free loss weight the error by the decoder's
sensitivity?)

For an image embedding t and box prompts, the decoder's sensitivity is the diagonal of the Fisher information of its
mask logits z (each pixel a Bernoulli of sigmoid(z)) with respect to t: F = E_v[(Jᵀ(√(p(1−p)) ⊙ v))²], v random
signs, J = ∂z/∂t (``--samples`` draws per prompt chunk; its expectation is diag(Jᵀ diag(p(1−p)) J)). Summed over
positions, it gives one weight per channel.

- *synthetic*: the bundled DFQ-SAM images, their stored boxes plus ``--random-boxes`` random boxes (the
  distillation's own box distribution, ``distill.augment.random_boxes``): what a data-free loss could use;
- *real*: each benchmark set's images with the benchmark's prompts: what FP-fidelity is scored on.

Reported: the rank correlation of the synthetic and real channel weights (and of their spatial maps), how much of
the sensitivity the top 10 % / 25 % of channels hold, and for a quantized encoder (``--export``, pinned to f32) the
share of its error energy in the top 25 % channels beside the FP embedding's own share there, and its
sensitivity-weighted relative error beside the plain one.

    python benchmarks/quality/decoder_sensitivity.py --export dfq_sam_out/int8_distilled --json R.json
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

import numpy as np

from dfq_sam_plugin.runtime.split import F32

warnings.filterwarnings("ignore")


def fisher_diag(model, t, boxes, samples: int, generator, chunk: int = 16):
    """diag Fisher of the mask logits of ``boxes`` (K, 4) w.r.t. the embedding t (1, C, h, w) -> (C, h, w)."""
    import torch

    t = t.detach().clone().requires_grad_(True)
    out = torch.zeros_like(t[0])
    for start in range(0, len(boxes), chunk):
        logits, _ = model.decode(t, boxes[start : start + chunk][None])
        p = torch.sigmoid(logits.detach())
        w = (p * (1 - p)).sqrt()
        for s in range(samples):
            v = torch.randint(0, 2, logits.shape, generator=generator).float() * 2 - 1
            (grad,) = torch.autograd.grad((logits * w * v).sum(), t, retain_graph=s < samples - 1)
            out += grad[0].square() / samples
    return out


def _spearman(a, b) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    return float(np.corrcoef(ra.numpy(), rb.numpy())[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="export folder whose encoder's error is located")
    ap.add_argument("--synthetic", default=None, help="synthetic ArraySet npz (default: the bundled set)")
    ap.add_argument("--random-boxes", type=int, default=8)
    ap.add_argument("--samples", type=int, default=4, help="random-sign draws per prompt chunk")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import openvino as ov
    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.data.arrays import ASSETS, ArraySet
    from dfq_sam_plugin.data.inputs import to_encoder_input
    from dfq_sam_plugin.distill.augment import random_boxes
    from dfq_sam_plugin.eval import evaluate, load_benchmark
    from dfq_sam_plugin.runtime import SamBoxPredictor

    sam = load_sam("litemedsam")
    model = sam.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    size = sam.spec.img_size
    g = torch.Generator().manual_seed(args.seed)
    student = ov.Core().compile_model(str(Path(args.export) / "encoder.xml"), "CPU", F32)
    syn = ArraySet.from_npz(args.synthetic or ASSETS / "litemedsam_dfqsam16.npz")

    fisher_syn = torch.zeros(())
    for i in range(len(syn)):
        with torch.no_grad():
            t = model.encode(torch.from_numpy(to_encoder_input(syn.pixels[i], sam.spec)))
        boxes = torch.cat([torch.from_numpy(syn.boxes[i]), random_boxes(1, args.random_boxes, size, g)[0]])
        fisher_syn = fisher_syn + fisher_diag(model, t, boxes, args.samples, g)

    class Recorder(SamBoxPredictor):
        """The FP predictor, keeping every (encoder input, boxes in model pixels) the harness decodes."""

        def __init__(self) -> None:
            super().__init__(sam)
            self.items: list[tuple[np.ndarray, np.ndarray]] = []

        def embed(self, pixels):
            self._pixels = pixels
            return super().embed(pixels)

        def decode_scores(self, embedding, boxes):
            self.items.append((self._pixels, boxes.copy()))
            return super().decode_scores(embedding, boxes)

    chan_syn = fisher_syn.sum((1, 2))
    out = {"cpu": platform.processor() or "x86_64", "export": args.export, "synthetic_images": len(syn),
           "random_boxes": args.random_boxes, "samples": args.samples, "seed": args.seed, "sets": {}}
    for name in ("nuclei", "mni"):
        rec = Recorder()
        evaluate({"fp": rec}, [load_benchmark(name)])
        fisher_real, err, sig = torch.zeros(()), torch.zeros(()), torch.zeros(())
        for pixels, boxes in rec.items:
            with torch.no_grad():
                t = model.encode(torch.from_numpy(pixels))
            fisher_real = fisher_real + fisher_diag(model, t, torch.from_numpy(boxes), args.samples, g)
            d = torch.from_numpy(student(pixels)[0].copy())[0] - t[0]
            err, sig = err + d.square().sum((1, 2)), sig + t[0].square().sum((1, 2))
        chan_real = fisher_real.sum((1, 2))
        row = {"images": len(rec.items), "prompts": int(sum(len(b) for _, b in rec.items)),
               "rank_correlation_channels": _spearman(chan_syn, chan_real),
               "rank_correlation_positions": _spearman(fisher_syn.sum(0).flatten(), fisher_real.sum(0).flatten()),
               "plain_relative_error": float(err.sum() / sig.sum())}
        for label, w in (("synthetic", chan_syn), ("real", chan_real)):
            top = w.argsort(descending=True)
            q10, q25 = len(w) // 10, len(w) // 4
            wn = w / w.mean()
            row[label] = {"sensitivity_in_top10pct": float(w[top[:q10]].sum() / w.sum()),
                          "sensitivity_in_top25pct": float(w[top[:q25]].sum() / w.sum()),
                          "error_energy_in_top25pct": float(err[top[:q25]].sum() / err.sum()),
                          "embedding_energy_in_top25pct": float(sig[top[:q25]].sum() / sig.sum()),
                          "weighted_relative_error": float((wn * err).sum() / (wn * sig).sum())}
        out["sets"][name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
