"""What pinning a precision changes in the box's choice: an export's encoder candidates at OpenVINO's default
precision and pinned to f32, measured as ``OVSamPredictor(precisions=("default", "f32"))`` measures them (encoder
latency, probe FP-fidelity), the candidate each policy picks with and without the pinned variants, and every
variant's FP-fidelity and GT Dice on the real sets (against the torch FP32 masks, same prompts).

    python benchmarks/latency/pinned_choice.py dfq_sam_out/int8 --rounds 6 \
        --json benchmarks/results/2026-12-06_xeon-amx-2c-m207_pinned_choice.json

On a CPU whose default is f32 the pinned variants are the candidates themselves and add nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", help="an export folder with encoder candidates and a probe (dfq-sam quantize --out)")
    ap.add_argument("--rounds", type=int, default=6, help="timed passes over the probe per variant (interleaved)")
    ap.add_argument("--tolerances", nargs="+", type=float, default=[0.01, 0.03, 0.05])
    ap.add_argument("--sets", nargs="+", default=["nuclei", "mni"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import openvino as ov

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.eval import load_benchmark
    from dfq_sam_plugin.eval.harness import evaluate
    from dfq_sam_plugin.export.openvino import candidates_of, read_manifest
    from dfq_sam_plugin.export.probe import load_probe
    from dfq_sam_plugin.runtime import OVSamPredictor, SamBoxPredictor
    from dfq_sam_plugin.runtime.candidates import as_measured, at_precisions, default_precision, measure
    from dfq_sam_plugin.runtime.selection import choose

    folder = Path(args.export)
    core = ov.Core()
    default = default_precision(core)
    candidates = at_precisions(candidates_of(read_manifest(folder)), ("default", "f32"), default)
    measured = measure(core, folder, candidates, load_probe(folder), rounds=args.rounds)
    plain = {k: v for k, v in measured.items() if "@" not in k}
    choices = {}
    for label, subset in (("default precision", plain), ("default + f32", measured)):
        rows = as_measured(candidates, subset)
        choices[label] = {**{f"fastest_faithful {t:g}": choose(rows, tolerance=t).name for t in args.tolerances},
                          "fastest": choose(rows, "fastest").name, "most_faithful": choose(rows, "most_faithful").name}
    for name, m in measured.items():
        print(f"{name:20s} {m['precision']:5s} {m['ms']:8.1f} ms  probe {m['fidelity']:.4f}", flush=True)
    print(json.dumps(choices, indent=1), flush=True)

    sets = [load_benchmark(s) for s in args.sets]
    predictors = {"fp": SamBoxPredictor(load_sam("litemedsam"))}
    predictors.update({name: OVSamPredictor(folder, policy=name) for name in candidates})
    report = evaluate(predictors, sets)
    real = {name: {s.name: {k: report.results[s.name][name][k] for k in ("fidelity", "dice")} for s in sets}
            for name in candidates}
    real["fp"] = {s.name: {"dice": report.results[s.name]["fp"]["dice"]} for s in sets}
    for name in candidates:
        print(f"{name:20s} " + "  ".join(f"{s}: {v['fidelity']:.4f} (GT Dice {v['dice']:.4f})"
                                         for s, v in real[name].items()), flush=True)
    result = {"cpu": core.get_property("CPU", "FULL_DEVICE_NAME"), "openvino": ov.get_version(),
              "python": platform.python_version(), "export": str(folder), "default_precision": default,
              "rounds": args.rounds, "measured": {k: {kk: v[kk] for kk in ("ms", "fidelity", "precision")}
                                                  for k, v in measured.items()},
              "choices": choices, "real": real}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
