"""Where an IR's CPU time goes: OpenVINO's per-node performance counters (``PERF_COUNT``), summed by node type
and kernel (exec type), for several IRs side by side in one process.

    python benchmarks/latency/cpu_profile.py /tmp/fp32/encoder.xml /tmp/int8/encoder.xml --iters 5 --json out.json

Prints the CPU's class (what ``dfq_sam_plugin.cpu`` reads), each IR's median latency and its top rows
(node type, kernel, ms per inference, share), then the time of each encoder part (patch embedding, every
TinyViT / SAM ViT block, downsampling, neck) side by side for all IRs: where an INT8 IR loses or wins against
the float one. The same call on every CPU class makes the tables comparable.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import openvino as ov


def warm_request(core: ov.Core, xml: str, config: dict) -> tuple[ov.InferRequest, dict]:
    """An infer request of ``xml`` compiled for CPU with ``config`` and fixed random inputs, run once (warm-up)."""
    model = core.compile_model(xml, "CPU", config)
    request = model.create_infer_request()
    inputs = {i: np.random.default_rng(0).random(tuple(p.shape), np.float32) for i, p in enumerate(model.inputs)}
    request.infer(inputs)
    return request, inputs


def profile(core: ov.Core, xml: str, iters: int, config: dict) -> dict:
    request, inputs = warm_request(core, xml, {**config, "PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY"})
    totals: dict[tuple[str, str], float] = defaultdict(float)
    parts: dict[str, float] = defaultdict(float)
    latencies = []
    for _ in range(iters):
        t0 = time.perf_counter()
        request.infer(inputs)
        latencies.append((time.perf_counter() - t0) * 1e3)
        for info in request.profiling_info:
            if info.status == ov.ProfilingInfo.Status.EXECUTED:
                ms = info.real_time.total_seconds() * 1e3 / iters
                totals[(info.node_type, info.exec_type)] += ms
                parts[part_of(info.node_name)] += ms
    rows = sorted(({"node_type": k[0], "exec_type": k[1], "ms": v} for k, v in totals.items()),
                  key=lambda r: -r["ms"])
    return {"ir": xml, "config": config, "median_ms": float(np.median(latencies)),
            "counted_ms": sum(r["ms"] for r in rows), "rows": rows, "parts_ms": dict(parts)}


_PART = re.compile(r"(patch_embed|layers\.\d+\.(?:blocks\.\d+|downsample)|blocks\.\d+|neck)[./]")


def part_of(node_name: str) -> str:
    """The encoder part a node was converted from (its torch module path), or 'other' (FakeQuantize and
    constant subgraphs NNCF named itself, input / output conversions)."""
    m = _PART.search(node_name)
    return m.group(1) if m else "other"


def main() -> None:
    from dfq_sam_plugin.cpu import cpu_class
    from dfq_sam_plugin.runtime.split import F32

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("irs", nargs="+", help="IR .xml files")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--f32", action="store_true", help="INFERENCE_PRECISION_HINT=f32 (float IRs on bf16 CPUs)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    core = ov.Core()
    cls = cpu_class(core)
    print(f"CPU: {cls.name} ({cls.describe()}; recipe {cls.recipe})")
    config = dict(F32) if args.f32 else {}
    results = [profile(core, xml, args.iters, config) for xml in args.irs]
    for r in results:
        print(f"\n{r['ir']}: median {r['median_ms']:.1f} ms, counters sum {r['counted_ms']:.1f} ms")
        for row in r["rows"][: args.top]:
            print(f"  {row['node_type']:<22} {row['exec_type']:<34} {row['ms']:8.1f} ms "
                  f"{100 * row['ms'] / r['counted_ms']:5.1f} %")
    names = list(dict.fromkeys(p for r in results for p in r["parts_ms"]))
    print("\nms per encoder part: " + " | ".join(Path(r["ir"]).parent.name or r["ir"] for r in results))
    for name in names:
        print(f"  {name:<24}" + "".join(f"{r['parts_ms'].get(name, 0.0):9.2f}" for r in results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cls.to_dict(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
