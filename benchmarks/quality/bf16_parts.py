"""Issue 34, the bf16 half of the goal: which parts of the float LiteMedSAM lose fidelity when computed in bf16?

On AMX / AVX-512-BF16 CPUs OpenVINO runs every non-INT8 op in bf16 unless the whole model is pinned to f32, and
it offers no per-node f32 islands (docs/notebook/2026-12-06.md §29). The float IR at bf16 scores 0.968 / 0.953
(nuclei / MNI) against f32; the distilled INT8 encoder keeps its stem, stage 0, depthwise convolutions and every
fc2 float, so those run in bf16 there too. This emulates bf16 in torch, one group of modules at a time (weights,
inputs and compute of the group in bf16, the rest FP32), and scores FP-fidelity against the FP32 model on the
benchmark's prompts, with 95 % bootstrap intervals:

    python benchmarks/quality/bf16_parts.py --json benchmarks/results/R.json

The row "whole model" is the emulation's check against OpenVINO's own bf16 figure (the prompt encoder, a few
thousand multiply-adds that cast its box coordinates to f32 itself, stays FP32).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import re
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

# the mask decoder's computing children (SamModel.decode reads its token embeddings itself)
DECODER = r"mask_decoder\.(transformer|output_upscaling|output_hypernetworks_mlps\.\d+|iou_prediction_head)"
GROUPS = {  # name -> regex over module names of SamModel (full match); a match's submodules are not matched again
    "whole model (prompt encoder aside)": r"image_encoder|" + DECODER,
    "image encoder": r"image_encoder",
    "mask decoder": DECODER,
    "stem (patch_embed)": r"image_encoder\.patch_embed",
    "stage 0 (MBConv)": r"image_encoder\.layers\.0",
    "attention (stages 1-3)": r"image_encoder\.layers\.[123]\.blocks\.\d+\.attn",
    "MLP fc1": r"image_encoder\.layers\.[123]\.blocks\.\d+\.mlp\.fc1",
    "MLP fc2": r"image_encoder\.layers\.[123]\.blocks\.\d+\.mlp\.fc2",
    "depthwise local_conv": r"image_encoder\.layers\.[123]\.blocks\.\d+\.local_conv",
    "patch mergings (downsample)": r"image_encoder\.layers\.\d\.downsample",
    "neck": r"image_encoder\.neck",
}


def bf16_copy(model, pattern: str):
    """A copy of ``model`` whose modules matching ``pattern`` compute in bf16 (inputs cast in, outputs cast back)."""
    import torch

    class InBF16(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner.to(torch.bfloat16)

        def forward(self, *args, **kwargs):
            def cast(x, dtype):
                return x.to(dtype) if torch.is_tensor(x) and x.is_floating_point() else x

            out = self.inner(*(cast(a, torch.bfloat16) for a in args),
                             **{k: cast(v, torch.bfloat16) for k, v in kwargs.items()})
            return tuple(cast(o, torch.float32) for o in out) if isinstance(out, tuple) else cast(out, torch.float32)

    model = copy.deepcopy(model)
    names = [n for n, _ in model.named_modules() if n and re.fullmatch(pattern, n)]
    names = [n for n in names if not any(n.startswith(p + ".") for p in names)]
    if not names:
        raise ValueError(f"no module matches {pattern!r}")
    for name in names:
        parent, _, leaf = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        setattr(holder, leaf, InBF16(holder.get_submodule(leaf)))
    return model, len(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", nargs="*", help="group names (default: all)")
    args = ap.parse_args()

    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.eval import evaluate, load_benchmark
    from dfq_sam_plugin.runtime.predictor import SamBoxPredictor

    torch.manual_seed(0)
    sam = load_sam("litemedsam")
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    predictors, modules = {"fp": SamBoxPredictor(sam)}, {}
    for group, pattern in GROUPS.items():
        if args.only and group not in args.only:
            continue
        model, modules[group] = bf16_copy(sam.model, pattern)
        predictors[group] = SamBoxPredictor(dataclasses.replace(sam, model=model))
    t0 = time.perf_counter()
    report = evaluate(predictors, sets)
    rows = {g: {"modules": modules[g], **{s.name: {k: report.results[s.name][g][k] for k in ("fidelity",
                                                                                           "fidelity_ci95", "dice")}
                                          for s in sets}} for g in modules}
    for g, r in rows.items():
        print(f"{g:32s} {r['modules']:3d} modules  " + "  ".join(
            f"{s.name} {r[s.name]['fidelity']:.4f} ({r[s.name]['fidelity_ci95'][0]:.3f}-{r[s.name]['fidelity_ci95'][1]:.3f})"
            for s in sets), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": platform.processor() or "x86_64", "torch": torch.__version__,
                                               "reference": "torch FP32", "seconds": time.perf_counter() - t0,
                                               "fp_dice": {s.name: report.results[s.name]["fp"]["dice"] for s in sets},
                                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
