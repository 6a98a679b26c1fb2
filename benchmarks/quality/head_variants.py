"""Issue 34, the bf16 half: an export's encoder candidates as a bf16 CPU can run them — at its default precision, with
the f32 head variants (``NAME@input``: the first layer at f32; ``NAME@mixed``: LiteMedSAM's stem and stage 0 at f32;
``runtime.split``) and pinned to f32 — scored by FP-fidelity against the FP32 IR pinned to f32, each paired over
prompts against the FP32 IR at the default precision (the goal: at least as faithful as it):

    python benchmarks/quality/head_variants.py --export dfq_sam_out/int8 --variants int8 int8@input int8@mixed \
        float float@mixed int8@f32 --json benchmarks/results/R.json

Speed of the same variants: ``benchmarks/latency/ab_latency.py DIR/encoder.xml DIR/encoder.xml@mixed ...``.
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="an export folder with encoder candidates (dfq-sam quantize --out)")
    ap.add_argument("--variants", nargs="+", required=True, help="policies naming a candidate or a variant of one "
                    "(int8, int8@input, int8@mixed, int8@f32, float, float@mixed, ...)")
    ap.add_argument("--work", default="out_head_variants")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import openvino as ov

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.nncf import export_float
    from dfq_sam_plugin.cpu import cpu_class
    from dfq_sam_plugin.eval import evaluate, load_benchmark
    from dfq_sam_plugin.runtime import OVSamPredictor
    from dfq_sam_plugin.runtime.split import F32

    sam = load_sam("litemedsam")
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    fp_dir = export_float(sam, Path(args.work) / "fp32")
    predictors = {"fp": OVSamPredictor(fp_dir, config=F32), "float IR@default": OVSamPredictor(fp_dir)}
    for policy in args.variants:
        predictors[policy] = OVSamPredictor(args.export, policy=policy)
    report = evaluate(predictors, sets)
    rows = {}
    for name in predictors:
        if name == "fp":
            continue
        rows[name] = {"fidelity": {s: report.results[s][name]["fidelity"] for s in report.results},
                      "fidelity_ci95": {s: report.results[s][name]["fidelity_ci95"] for s in report.results}}
        if name != "float IR@default":
            rows[name]["minus_float_ir_default"] = {s: report.paired(s, name, "float IR@default") for s in report.results}
        print(f"{name:20s} " + " / ".join(f"{v:.4f}" for v in rows[name]["fidelity"].values()) + "   " + "; ".join(
            f"{s} {d['mean']:+.4f} ({d['ci95'][0]:+.4f} to {d['ci95'][1]:+.4f})"
            for s, d in rows[name].get("minus_float_ir_default", {}).items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cpu": platform.processor() or "x86_64", "cpu_class": cpu_class().name, "export": args.export,
            "default_precision": ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string(),
            "reference": "FP32 IR pinned to f32", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
