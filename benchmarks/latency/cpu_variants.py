"""Which OpenVINO variant of LiteMedSAM pays on *this* CPU: fidelity and speed of each, in one call.

    python benchmarks/latency/cpu_variants.py --rounds 3 --niter 6 --json benchmarks/results/2026-12-01_avx2-2c_cpu_variants.json

Variants (all from the bundled data-free calibration set, no real image): the FP32 IR pair; the PTQ INT8 recipe
(`openvino_int8_cpu` or `--recipe`); the shipped distilled INT8 encoder; INT8 weights with float activations
(`weight_compression: [encoder, decoder]`); and, for the decoder alone, full INT8 (`quantize_decoder`) and
INT8 weights, each decoding the FP32 encoder's embeddings (the decoder's own error, issue #15 item 2). With
``--variants`` also INT4 encoder weights (`weight_compression_mode: int4_sym` / `int4_asym`, groups of 32 input
channels, float activations, decoder float; issue #13 item 2), e.g.
    python benchmarks/latency/cpu_variants.py --variants fp32 "int8 weights" "int4 weights asym" "int4 weights sym"
``--try NAME KEY=VALUE ...`` adds a PTQ variant: the ``--recipe`` with those keys changed (values are YAML), e.g.
    python benchmarks/latency/cpu_variants.py --recipe openvino_int8_cpu_vnni --variants fp32 "int8 PTQ" \
        --try spr target_device=CPU_SPR --try "symmetric" preset=performance
or data-aware INT4 weights (GPTQ on the synthetic calibration inputs; docs/notebook/2026-12-03.md §12.1):
    --try "int4 gptq" weight_compression=[encoder] weight_compression_mode=int4_sym \
        "weight_compression_algorithms=[gptq]" weight_compression_group_size=16 weight_compression_ratio=0.8
Fidelity: Dice against the FP32 IR pinned to f32, nuclei + MNI prompts. Speed: `benchmark_app -hint latency`
medians, the variants interleaved for ``--rounds`` rounds so that a noisy host hits all alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def decoder_fidelity(fp, variant, sets) -> dict[str, float]:
    """Mean Dice of ``variant``'s decoder vs ``fp``'s, both decoding ``fp``'s (f32) embeddings, same prompts."""
    from dfq_sam_plugin.eval.metrics import dice
    from dfq_sam_plugin.models.preprocess import postprocess_masks

    out = {}
    for bset in sets:
        scores = []
        for item in bset.images:
            pixels, boxes, geo = fp._prepare(item.image, item.boxes)
            emb = fp.embed(pixels)
            a, b = (postprocess_masks(p.decode(emb, boxes), geo) for p in (fp, variant))
            scores += [dice(x, y) for x, y in zip(a, b)]
        out[bset.name] = float(np.mean(scores))
    return out


DEFAULT_VARIANTS = ["fp32", "int8 PTQ", "int8 distilled", "int8 weights", "int8 decoder"]
ALL_VARIANTS = DEFAULT_VARIANTS + ["int4 weights asym", "int4 weights sym"]


def main() -> None:
    from rich.console import Console

    from dfq_sam_plugin.backends.nncf import export_float, quantize_sam
    from dfq_sam_plugin.cpu import cpu_class
    from dfq_sam_plugin.data.dataset import DFQSAMDataset
    from dfq_sam_plugin.eval import evaluate, load_benchmark
    from dfq_sam_plugin.eval.latency import run_benchmark_app
    from dfq_sam_plugin.export.packaged import packaged_export
    from dfq_sam_plugin.models import load_sam
    from dfq_sam_plugin.recipes import load_recipe, parse_overrides, validate
    from dfq_sam_plugin.runtime import OVSamPredictor
    from dfq_sam_plugin.runtime.split import F32

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="openvino_int8_cpu")
    ap.add_argument("--out", default="/tmp/cpu_variants")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--niter", type=int, default=6)
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=ALL_VARIANTS,
                    help="IR pairs to build and compare (fp32 is always built: the reference)")
    ap.add_argument("--try", dest="tries", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE",
                    help="a PTQ variant: --recipe with these keys changed (repeatable)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    console = Console()
    out = Path(args.out)
    cls = cpu_class()
    console.print(f"CPU class: {cls.name} ({cls.describe()}; auto recipe {cls.recipe})")

    sam = load_sam("litemedsam")
    ds = DFQSAMDataset.bundled(sam)
    base = load_recipe(args.recipe)
    t0 = time.perf_counter()
    weights = {**base, "weight_compression": ["encoder", "decoder"]}
    int4 = {**weights, "weight_compression": ["encoder"], "weight_compression_group_size": 32}
    builders = {"fp32": lambda d: export_float(sam, d),
                "int8 PTQ": lambda d: quantize_sam(sam, ds, base).save(d),
                "int8 distilled": lambda d: packaged_export(sam, d),
                "int8 weights": lambda d: quantize_sam(sam, ds, weights).save(d),
                "int8 decoder": lambda d: quantize_sam(sam, ds, {**base, "quantize_decoder": True}).save(d),
                "int4 weights asym": lambda d: quantize_sam(sam, ds, {**int4, "weight_compression_mode": "int4_asym"}
                                                            ).save(d),
                "int4 weights sym": lambda d: quantize_sam(sam, ds, {**int4, "weight_compression_mode": "int4_sym"}
                                                           ).save(d)}
    tried = {}
    for name, *pairs in args.tries:
        if name in builders or not pairs:
            ap.error(f"--try {name} {' '.join(pairs)}: a new variant name, then KEY=VALUE pairs")
        tried[name] = validate({**base, **parse_overrides(pairs, f"--try {name}")}, f"--try {name}")
        builders[name] = lambda d, r=tried[name]: quantize_sam(sam, ds, r).save(d)
    names = dict.fromkeys(["fp32", *args.variants, *tried])
    dirs = {name: builders[name](out / name.replace(" ", "_")) for name in names}
    console.print(f"built {len(dirs)} IR pairs in {time.perf_counter() - t0:.0f} s")

    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    fp = OVSamPredictor(dirs["fp32"], config=F32)
    whole = {k: OVSamPredictor(d) for k, d in dirs.items() if k != "int8 decoder"}
    report = evaluate({"fp": fp, **whole}, sets)
    fidelity = {name: {s: report.results[s][name]["fidelity"] for s in report.results} for name in whole}
    dec = {}
    if "int8 decoder" in dirs and "int8 weights" in dirs:
        dec = {"int8 decoder (full INT8)": decoder_fidelity(fp, OVSamPredictor(dirs["int8 decoder"]), sets),
               "int8 decoder (weights only)": decoder_fidelity(fp, whole["int8 weights"], sets)}

    parts = [(name, part) for name in whole for part in ("encoder", "decoder")]
    parts += [("int8 decoder", "decoder")] if dec else []
    # where OpenVINO runs float IRs in bf16 by default (AMX / AVX-512 BF16), FP32 also pinned to f32
    pinned = [("fp32", part) for part in ("encoder", "decoder")] if cls.bf16_default else []
    runs = [(n, p, "default") for n, p in parts] + [(n, p, "f32") for n, p in pinned]
    times: dict[tuple[str, str, str], list[float]] = {key: [] for key in runs}
    for _ in range(args.rounds):
        for name, part, precision in runs:
            median, _, _ = run_benchmark_app(dirs[name] / f"{part}.xml", niter=args.niter, precision=precision)
            times[(name, part, precision)].append(median)
    latency = {f"{n} {p}" + (" f32" if c == "f32" else ""): {"median_ms": statistics.median(v), "rounds_ms": v}
               for (n, p, c), v in times.items()}
    sizes = {f"{n} {p}": (dirs[n] / f"{p}.bin").stat().st_size / 2**20 for n, p in parts}

    fp_enc = latency["fp32 encoder"]["median_ms"]
    f32_enc = latency.get("fp32 encoder f32", {}).get("median_ms")
    vs = "vs float IR (default precision)" + (" | vs f32" if f32_enc else "")
    console.print(f"\n| variant | nuclei FP-fidelity | MNI FP-fidelity | encoder ms | {vs} | encoder MB | decoder ms "
                  "| decoder MB |")
    console.print("|---|---|---|---|---|---|---|---|" + ("---|" if f32_enc else ""))
    if f32_enc:
        console.print(f"| fp32 pinned to f32 | 1 | 1 | {f32_enc:.1f} | {fp_enc / f32_enc:.2f}× | 1.00× | "
                      f"{sizes['fp32 encoder']:.1f} | {latency['fp32 decoder f32']['median_ms']:.1f} | "
                      f"{sizes['fp32 decoder']:.1f} |")
    for name in whole:
        e, d = latency[f"{name} encoder"]["median_ms"], latency[f"{name} decoder"]["median_ms"]
        ratio = f"{fp_enc / e:.2f}×" + (f" | {f32_enc / e:.2f}×" if f32_enc else "")
        console.print(f"| {name} | {fidelity[name]['nuclei']:.4f} | {fidelity[name]['mni']:.4f} | {e:.1f} | "
                      f"{ratio} | {sizes[f'{name} encoder']:.1f} | {d:.1f} | {sizes[f'{name} decoder']:.1f} |")
    if dec:
        console.print("\n| decoder alone (FP32 embeddings) | nuclei | MNI | decoder ms | decoder MB |")
        console.print("|---|---|---|---|---|")
    for label, key in (("int8 decoder (full INT8)", "int8 decoder decoder"),
                       ("int8 decoder (weights only)", "int8 weights decoder")) if dec else ():
        console.print(f"| {label} | {dec[label]['nuclei']:.4f} | {dec[label]['mni']:.4f} | "
                      f"{latency[key]['median_ms']:.1f} | {sizes[key]:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cls.to_dict(), "recipe": args.recipe, "fidelity": fidelity,
                                               "tried": {t[0]: " ".join(t[1:]) for t in args.tries},
                                               "decoder_fidelity": dec, "latency": latency, "sizes_mb": sizes},
                                              indent=2))


if __name__ == "__main__":
    main()
