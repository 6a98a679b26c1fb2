"""How much image-embedding error do the masks bear? (issue 34: is 0.97 FP-fidelity a matter of the error's size or
of its shape?)

Each real benchmark image's FP32 embedding t gets an error d of a chosen relative size e = ||d||² / ||t||² (the
measure of the generalisation benchmark), and the FP torch mask decoder turns it into masks for the benchmark's
prompts, scored against the FP masks (FP-fidelity). Two kinds of error:

- ``iid``: Gaussian noise, independent per element (seeded per image);
- ``student``: a quantized encoder's own error s − t (``--export``: an export folder's encoder, pinned to f32),
  rescaled to size e; at its own size (``student as is``) it reproduces the student.

Where the student curve crosses 0.97 says how far the student's error must fall to reach the goal; the gap between
the two curves, how much more its error's shape costs than noise of the same size.

``--shapes`` asks which property of the student's error costs: each variant below is rescaled to the student's own
size per image, so only the shape differs (``SHAPES``): its low- and high-frequency parts (a 4 × 4 average pool, upsampled
bilinearly, and the rest), the same error shifted in space (each image's error map rolled by 8–55 embedding pixels:
the same spectrum and channel mixture, no longer aligned with the image's content), its channels permuted (the same
spatial maps, handed to other channels), an error proportional to the embedding itself (a change of scale only),
and Gaussian noise low-passed like the first.

    python benchmarks/quality/error_tolerance.py --export dfq_sam_out/int8_distilled \\
        --json benchmarks/results/R.json --figure docs/figures/error_tolerance.png
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import warnings
from pathlib import Path

import numpy as np

from dfq_sam_plugin.runtime.split import F32

warnings.filterwarnings("ignore")

SIZES = (0.001, 0.002, 0.004, 0.007, 0.01, 0.02)
SHAPES = ("student", "student, low-pass part", "student, high-pass part", "student, rolled in space",
          "student, channels permuted", "proportional to the embedding", "Gaussian noise", "Gaussian noise, low-passed")


def shape_direction(shape: str, t, d, g):
    """An error direction of kind ``shape`` (one of ``SHAPES``) from the FP embedding t, the student's error d
    (1, C, h, w) and a per-image generator g; the caller rescales it to d's size."""
    import torch
    import torch.nn.functional as F

    def lowpass(x):  # 4 x 4 average pool, upsampled bilinearly
        return F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear", align_corners=False)

    if shape == "student":
        return d
    if shape == "student, low-pass part":
        return lowpass(d)
    if shape == "student, high-pass part":
        return d - lowpass(d)
    if shape == "student, rolled in space":
        dy, dx = (int(v) for v in torch.randint(8, 56, (2,), generator=g))
        return torch.roll(d, shifts=(dy, dx), dims=(2, 3))
    if shape == "student, channels permuted":
        return d[:, torch.randperm(d.shape[1], generator=g)]
    if shape == "proportional to the embedding":
        return t
    noise = torch.randn(d.shape, generator=g)
    if shape == "Gaussian noise":
        return noise
    if shape == "Gaussian noise, low-passed":
        return lowpass(noise)
    raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")


def _key(pixels: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="export folder whose encoder's error shape is rescaled")
    ap.add_argument("--sizes", type=float, nargs="+", default=list(SIZES),
                    help="relative squared error sizes e = ||d||² / ||t||²")
    ap.add_argument("--shapes", action="store_true",
                    help="also score every error shape of SHAPES at the student's own size (one decode pass each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--figure", default=None)
    args = ap.parse_args()
    if any(e <= 0 for e in args.sizes):
        raise SystemExit("--sizes must be > 0")

    import openvino as ov
    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.eval import evaluate, load_benchmark
    from dfq_sam_plugin.eval.generalisation import real_encoder_inputs, relative_errors
    from dfq_sam_plugin.runtime import SamBoxPredictor

    sam = load_sam("litemedsam")
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    student = ov.Core().compile_model(str(Path(args.export) / "encoder.xml"), "CPU", F32)
    cache: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def pair(pixels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(FP32 embedding, the student's error, a per-input seed) of one encoder input, each computed once."""
        key = _key(pixels)
        if key not in cache:
            with torch.inference_mode():
                t = sam.model.encode(torch.from_numpy(pixels)).float()
            s = torch.from_numpy(student(pixels)[0].copy()).float()
            cache[key] = (t, s - t, int(key[:8], 16))
        return cache[key]

    class Perturbed(SamBoxPredictor):
        """The FP torch predictor, its embedding moved by an error of shape ``shape`` (``SHAPES``) and relative size
        ``size`` (None: the size of the student's own error on that image)."""

        def __init__(self, shape: str, size: float | None) -> None:
            super().__init__(sam)
            self.shape, self.size = shape, size

        def embed(self, pixels: np.ndarray):
            t, d, input_seed = pair(pixels)
            g = torch.Generator().manual_seed(args.seed * 1_000_003 + input_seed)
            v = shape_direction(self.shape, t, d, g)
            size = self.size if self.size is not None else float(d.square().sum() / t.square().sum())
            return t + v * (size * t.square().sum() / v.square().sum().clamp_min(1e-30)).sqrt()

    predictors = {"fp": SamBoxPredictor(sam), "student as is": Perturbed("student", None)}
    for kind, shape in (("iid", "Gaussian noise"), ("student", "student")):
        predictors.update({f"{kind} {e:g}": Perturbed(shape, e) for e in args.sizes})
    if args.shapes:
        predictors.update({f"shape {name}": Perturbed(name, None) for name in SHAPES if name != "student"})
    report = evaluate(predictors, sets)
    # the student's own mean relative error on each set, the generalisation benchmark's measure (inputs cached above)
    own = {b.name: float(relative_errors(lambda x: (pair(x)[0] + pair(x)[1]).numpy(), lambda x: pair(x)[0].numpy(),
                                         real_encoder_inputs([b], sam.spec)).mean()) for b in sets}
    fid = {name: {s.name: report.results[s.name][name]["fidelity"] for s in sets} for name in predictors if name != "fp"}
    rows = {kind: {f"{e:g}": fid[f"{kind} {e:g}"] for e in args.sizes} for kind in ("iid", "student")}
    out = {"cpu": platform.processor() or "x86_64", "export": args.export, "sizes": args.sizes, "seed": args.seed,
           "student_as_is": {"error": own, "fidelity": fid["student as is"]}, "rows": rows}
    if args.shapes:
        out["shapes"] = {name: fid["student as is" if name == "student" else f"shape {name}"] for name in SHAPES}
        for name, v in out["shapes"].items():
            print(f"shape {name}: {v['nuclei']:.4f} / {v['mni']:.4f}", flush=True)
    for kind, by_size in rows.items():
        print(kind, "  ".join(f"{e}: {v['nuclei']:.4f} / {v['mni']:.4f}" for e, v in by_size.items()), flush=True)
    print("student as is: error", own, "fidelity", fid["student as is"], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    if args.figure:
        _figure(out, args.figure)


def _figure(out: dict, path: str) -> None:
    from dfq_sam_plugin._plot import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    sizes = out["sizes"]
    for ax, name, title in zip(axes, ("nuclei", "mni"), ("nuclei", "MNI")):
        for kind, style, label in (("iid", "o--", "Gaussian noise"), ("student", "s-", "the student's error, rescaled")):
            ax.plot(sizes, [out["rows"][kind][f"{e:g}"][name] for e in sizes], style, label=label)
        own = out["student_as_is"]
        ax.plot([own["error"][name]], [own["fidelity"][name]], "k*", markersize=12, label="the student as it is")
        ax.axhline(0.97, color="grey", lw=0.8, ls=":", label="goal 0.97")
        ax.set_xscale("log")
        ax.set_xlabel("embedding error ||d||² / ||t||²")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("FP-fidelity (Dice vs FP masks)")
    axes[0].legend(fontsize=8)
    save(fig, path)


if __name__ == "__main__":
    main()
