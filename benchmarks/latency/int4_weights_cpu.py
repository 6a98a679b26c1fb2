"""Issue 35 item 3a: what the OpenVINO CPU plugin of the machine it runs on does with 4-bit encoder weights,
beside INT8 and float.

    python benchmarks/latency/int4_weights_cpu.py --out /tmp/ov4 --json benchmarks/results/DATE_MACHINE_int4_weights.json
    python benchmarks/latency/ab_latency.py /tmp/ov4/fp32/encoder.xml /tmp/ov4/int8/encoder.xml \\
        /tmp/ov4/int4/encoder.xml /tmp/ov4/fp32/encoder.xml@f32 /tmp/ov4/int4/encoder.xml@f32 --rounds 30 --json AB.json

Builds three LiteMedSAM exports from the bundled synthetic set: the FP32 IR pair, INT8 PTQ (``--recipe``,
`auto`'s recipe on VNNI / AMX CPUs) and INT4 encoder weights with float activations (``nncf.compress_weights``
int4_sym, GPTQ on the synthetic calibration inputs, groups of 16, 80 % of the weights at INT4 and the rest INT8:
the best of docs/notebook/2026-12-03.md §12.1). Then, per IR and CPU configuration (default precision,
``DYNAMIC_QUANTIZATION_GROUP_SIZE`` 32 / 16, f32): the node types and kernels the plugin runs its matrix products
with (``PERF_COUNT``), i.e. whether INT4 layers compute in INT8 (dynamic activation quantization) or decompress to
the float precision; and FP-fidelity / GT Dice of each export's own encoder on nuclei + MNI against torch FP32.
Latency: the paired A/B above (`ab_latency.py`), with nothing else running.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

INT4 = {"weight_compression": ["encoder"], "weight_compression_mode": "int4_sym",
        "weight_compression_algorithms": ["gptq"], "weight_compression_group_size": 16,
        "weight_compression_ratio": 0.8}
CONFIGS = {"default": {}, "dq32": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"},
           "dq16": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": "16"}, "f32": {"INFERENCE_PRECISION_HINT": "f32"}}


def kernels(core, xml: str, config: dict) -> dict:
    """Matrix-product nodes (FullyConnected*, Convolution*, MatMul) by (node type, kernel) after one inference."""
    import numpy as np

    model = core.compile_model(xml, "CPU", {**config, "PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY"})
    request = model.create_infer_request()
    request.infer({i: np.random.default_rng(0).random(tuple(p.shape), np.float32) for i, p in enumerate(model.inputs)})
    found = collections.Counter(f"{i.node_type} / {i.exec_type}" for i in request.profiling_info
                                if i.status == i.Status.EXECUTED
                                and any(k in i.node_type for k in ("FullyConnected", "Convolution", "MatMul")))
    return {"inference_precision": str(model.get_property("INFERENCE_PRECISION_HINT")),
            "dynamic_quantization_group_size": int(model.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")),
            "kernels": dict(found)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/ov4")
    ap.add_argument("--recipe", default="openvino_int8_cpu_vnni")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import openvino as ov

    from dfq_sam_plugin import DFQSAMDataset, load_sam
    from dfq_sam_plugin.backends.nncf import export_float, quantize_sam
    from dfq_sam_plugin.cpu import cpu_class
    from dfq_sam_plugin.eval import load_benchmark, per_prompt, predict_set
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.runtime import OVSamPredictor, SamBoxPredictor

    out = Path(args.out)
    sam = load_sam("litemedsam")
    ds = DFQSAMDataset.bundled(sam)
    base = load_recipe(args.recipe)
    builders = {"fp32": lambda d: export_float(sam, d), "int8": lambda d: quantize_sam(sam, ds, base).save(d),
                "int4": lambda d: quantize_sam(sam, ds, {**base, **INT4}).save(d)}
    result = {"cpu": platform.processor() or "x86_64", "cpu_class": cpu_class().name, "openvino": ov.__version__,
              "recipe": args.recipe, "int4_keys": INT4, "exports": {}}
    core = ov.Core()
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    fp = {b.name: predict_set(SamBoxPredictor(sam), b) for b in sets}
    result["fp32_torch_dice"] = {b.name: float(per_prompt(b, fp[b.name])["dice"].mean()) for b in sets}
    for name, build in builders.items():
        t0 = time.perf_counter()
        folder = build(out / name)
        entry = {"build_s": round(time.perf_counter() - t0, 1),
                 "encoder_mib": ((out / name / "encoder.bin").stat().st_size / 2**20),
                 "kernels": {c: kernels(core, str(out / name / "encoder.xml"), cfg) for c, cfg in CONFIGS.items()},
                 "fidelity": {}}
        manifest = json.loads((out / name / "manifest.json").read_text())
        own = next(iter(manifest.get("candidates", {})), None)  # the recipe's own encoder, not a float candidate
        for precision, cfg in (("default", {}), ("f32", CONFIGS["f32"])):
            predictor = OVSamPredictor(folder, config=cfg, **({"policy": own} if own else {}))
            entry["fidelity"][precision] = {
                b.name: {k: float(v.mean()) for k, v in per_prompt(b, predict_set(predictor, b), fp[b.name]).items()
                         if k in ("fidelity", "dice")} for b in sets}
        result["exports"][name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k != "kernels"}), flush=True)
        print("  ", json.dumps(entry["kernels"]["default"]["kernels"]), flush=True)
        if args.json:  # rewritten after every export: a run cut short keeps what finished
            Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
