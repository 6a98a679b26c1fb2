"""Paired latency A/B of IRs on a noisy host: every IR compiled once in this process, then ``--rounds`` rounds
that each run ``--iters`` inferences of every IR in turn; the figure is the median over rounds of the per-round
ratio to the first IR (its quartiles say how sure it is). On a shared 2-core VM, `benchmark_app` medians move
±15 % between calls while a paired ratio holds to ±2 % (docs/notebook/2026-12-02.md §15).

    python benchmarks/latency/ab_latency.py fp32/encoder.xml int8/encoder.xml other/encoder.xml --rounds 30 --json ab.json

An IR written ``path.xml@f32`` runs with ``INFERENCE_PRECISION_HINT=f32`` (on CPUs where OpenVINO defaults to
bf16), e.g. ``fp32/encoder.xml fp32/encoder.xml@f32 int8/encoder.xml int8/encoder.xml@f32``; ``path.xml@KEY=VALUE``
(comma-separated pairs) sets other CPU properties, e.g. ``int4/encoder.xml@DYNAMIC_QUANTIZATION_GROUP_SIZE=0``;
``path.xml@input`` / ``path.xml@mixed`` runs the encoder as the product's split variant of that name (its head at f32,
the rest at the default precision: ``runtime.split.HEADS``, compiled by ``runtime.split.compile_encoder``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import openvino as ov
from cpu_profile import warm_request

from dfq_sam_plugin.runtime.split import HEADS, compile_encoder


def split_request(core: ov.Core, xml: str, precision: str, config: dict) -> tuple:
    """A warmed infer request of the product's ``@precision`` split variant of encoder ``xml`` (the family whose
    cut node the IR holds), with fixed random inputs."""
    model = core.read_model(xml)
    names = {op.get_friendly_name() for op in model.get_ops()}
    heads = [h[precision] for h in HEADS.values() if h.get(precision) in names]
    if not heads:
        raise SystemExit(f"{xml}: no {precision!r} cut node of any family ({sorted(HEADS)}) in this IR")
    request = compile_encoder(core, xml, "CPU", config, {"head": heads[0]}).create_infer_request()
    inputs = {0: np.random.default_rng(0).random(tuple(model.inputs[0].get_partial_shape().to_shape()), np.float32)}
    request.infer(inputs)
    return request, inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("irs", nargs="+", help="IR .xml files (PATH@f32: pinned to f32); the first is the baseline")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--iters", type=int, default=8, help="inferences of each IR per round (their median counts)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if len(args.irs) < 2:
        ap.error("give at least two IRs")
    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY"}
    runs = []
    for name in args.irs:
        xml, _, suffix = name.partition("@")
        if suffix in ("input", "mixed"):
            runs.append(split_request(core, xml, suffix, config))
            continue
        pairs = [p.partition("=") for p in suffix.split(",")] if suffix and suffix != "f32" else []
        if any(not k or not v for k, _, v in pairs):
            ap.error(f"{name}: the suffix is @f32, @input, @mixed or @KEY=VALUE[,KEY=VALUE]")
        extra = {"INFERENCE_PRECISION_HINT": "f32"} if suffix == "f32" else {k: v for k, _, v in pairs}
        runs.append(warm_request(core, xml, {**config, **extra}))
    ms = np.zeros((args.rounds, len(runs)))
    for r in range(args.rounds):
        for j, (request, inputs) in enumerate(runs):
            lat = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                request.infer(inputs)
                lat.append((time.perf_counter() - t0) * 1e3)
            ms[r, j] = np.median(lat)
    speedup = ms[:, :1] / ms  # > 1: faster than the first IR
    out = {"config": config, "rounds": args.rounds, "iters": args.iters, "irs": []}
    print(f"{'IR':<48} {'median ms':>10} {'min ms':>8} {'speed-up vs first (quartiles)':>32}")
    for j, xml in enumerate(args.irs):
        q1, q2, q3 = np.percentile(speedup[:, j], [25, 50, 75])
        print(f"{xml:<48} {np.median(ms[:, j]):10.1f} {ms[:, j].min():8.1f} {q2:14.3f} ({q1:.3f}-{q3:.3f})")
        out["irs"].append({"ir": xml, "median_ms": float(np.median(ms[:, j])), "min_ms": float(ms[:, j].min()),
                           "speedup_vs_first": {"q1": q1, "median": q2, "q3": q3}, "rounds_ms": ms[:, j].tolist()})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
