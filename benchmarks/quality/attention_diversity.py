"""Are the synthetic images' attention maps homogeneous, as ACQ found for generated data-free samples? (issue 34:
should synthesis add a loss against homogeneous attention within a batch?)

ACQ's premise: images made from a model alone attend alike (their attention maps are similar from one image to the
next), real ones do not, and a quantizer calibrated on the former misses what the latter need. Here, for each stage
of the FP encoder (``layers.i`` outputs and the neck's output), the spatial attention map of an image is the energy
of its features per position (the mean over channels of f², as in attention transfer and AKT). Per set:

- *map correlation*: the mean Pearson correlation between the maps of two different images of the set (each map
  centred and scaled first); near 1: every image puts its energy at the same places (homogeneous);
- *centroid spread*: the standard deviation over images of the centroid of each map's above-mean energy (y and x
  averaged, in fractions of the side);
- *peak / median*: the largest position's energy over the median position's (median over images): high-norm
  tokens, which calibration must see for their ranges;
- *max |activation|*: the largest feature magnitude (median over images).

Sets: the synthetic calibration set as it is, its letterboxed and black-field copies (``data.inputs``: what the
recipes add to calibration and distillation), and the real benchmark sets (scored, never trained on).

    python benchmarks/quality/attention_diversity.py --json R.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")


def spatial_maps(encoder, inputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{stage: ((images, h, w) energy maps, (images,) max |activation|)} of each ``layers.i`` output and the neck
    output, one FP forward an input."""
    import torch

    feats: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _args, out):
            x = out.detach().float()
            if x.ndim == 3:  # tokens (B, N, C) -> (B, C, s, s)
                side = math.isqrt(x.shape[1])
                x = x.reshape(x.shape[0], side, side, -1).permute(0, 3, 1, 2)
            feats[name] = x
        return hook

    stages = {f"layers.{i}": m for i, m in enumerate(encoder.layers)} | {"neck": encoder.neck}
    handles = [m.register_forward_hook(keep(k)) for k, m in stages.items()]
    maps: dict[str, list[np.ndarray]] = {k: [] for k in stages}
    peaks: dict[str, list[float]] = {k: [] for k in stages}
    try:
        for x in inputs:
            with torch.no_grad():
                encoder(torch.from_numpy(x))
            for k in stages:
                maps[k].append(feats[k].pow(2).mean(1)[0].numpy())
                peaks[k].append(float(feats[k].abs().max()))
    finally:
        for h in handles:
            h.remove()
    return {k: (np.stack(v), np.asarray(peaks[k])) for k, v in maps.items()}


def describe(maps: np.ndarray, peaks: np.ndarray) -> dict:
    """The four measures of one stage's maps (images, h, w) and per-image max |activation|."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1).astype(np.float64)
    z = (flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True).clip(1e-12)
    corr = (z @ z.T) / z.shape[1]
    yy, xx = np.mgrid[0:h, 0:w] / max(h - 1, 1)
    above = np.maximum(flat - flat.mean(1, keepdims=True), 0)
    above = above / above.sum(1, keepdims=True).clip(1e-12)
    cy, cx = above @ yy.ravel(), above @ xx.ravel()
    return {"images": n, "map_side": [h, w],
            "map_correlation": float(corr[~np.eye(n, dtype=bool)].mean()) if n > 1 else None,
            "centroid_spread": float((cy.std() + cx.std()) / 2),
            "peak_over_median": float(np.median(flat.max(1) / np.median(flat, 1))),
            "max_abs_activation": float(np.median(peaks))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", default=None, help="synthetic ArraySet npz (default: the bundled set)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.data.arrays import ASSETS, ArraySet
    from dfq_sam_plugin.data.inputs import letterbox_plan, on_black, to_encoder_input
    from dfq_sam_plugin.eval import load_benchmark
    from dfq_sam_plugin.eval.generalisation import real_encoder_inputs
    from dfq_sam_plugin.models.preprocess import letterbox

    sam = load_sam("litemedsam")
    encoder = sam.model.image_encoder.eval()
    syn = ArraySet.from_npz(args.synthetic or ASSETS / "litemedsam_dfqsam16.npz")
    plain = [to_encoder_input(p, sam.spec) for p in syn.pixels]
    plan = letterbox_plan(len(plain), 1.0)
    sets = {
        "synthetic": plain,
        "synthetic, letterboxed copies": [letterbox(x, *plan[i])[0] for i, x in enumerate(plain)],
        "synthetic, black-field copies": [to_encoder_input(on_black(p, i), sam.spec) for i, p in enumerate(syn.pixels)],
        "nuclei": real_encoder_inputs([load_benchmark("nuclei")], sam.spec),
        "mni": real_encoder_inputs([load_benchmark("mni")], sam.spec),
    }
    out = {"cpu": platform.processor() or "x86_64", "synthetic": str(args.synthetic or "bundled"), "sets": {}}
    for name, inputs in sets.items():
        out["sets"][name] = {stage: describe(*mp) for stage, mp in spatial_maps(encoder, inputs).items()}
        print(name, json.dumps({k: {m: v[m] for m in ("map_correlation", "peak_over_median")}
                                for k, v in out["sets"][name].items()}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
