"""How long the OpenVINO block compensation (``backends/ov_compensate.compensate_ir``) takes, today's code against
the module as it was at a git revision, side by side in one run on one PTQ IR and the same fit inputs.

The INT8 encoder IR is made once (``quantize_sam`` with the recipe's ``compensate`` switched off: NNCF PTQ of the
calibration set); then each implementation fits the recipe's corrections into a copy, and the run records its
seconds (best and all of ``--repeats``), the encoder-output error on the fit inputs before and after, and each unit's
error. Both must agree up to the INT8 encoder's rounding chaos (a different sub-model may round a few values
differently).

    python benchmarks/training/compensation_ab.py --before 90b79a1 --json R.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
MODULE = "dfq_sam_plugin/backends/ov_compensate.py"


def module_at(revision: str):
    """``ov_compensate`` as it was at ``revision``, imported as a sibling of today's (its relative imports resolve
    against today's package)."""
    source = subprocess.run(["git", "show", f"{revision}:{MODULE}"], capture_output=True, text=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:  # executed once at import: the file need not outlive it
        path = Path(tmp) / "ov_compensate_before.py"
        path.write_text(source)
        name = "dfq_sam_plugin.backends._ov_compensate_before"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git revision of the implementation to compare against")
    ap.add_argument("--recipe", default="openvino_int8_cpu_vnni", help="a recipe with compensate on")
    ap.add_argument("--calib", default=None, help="calibration set folder (default: the bundled 16 images)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin import DFQSAMDataset, load_sam
    from dfq_sam_plugin.backends import ov_compensate
    from dfq_sam_plugin.backends.nncf import calibration_inputs, quantize_sam
    from dfq_sam_plugin.recipes import compensate_config, load_recipe

    sam = load_sam("litemedsam")
    data = DFQSAMDataset.load(args.calib, sam) if args.calib else DFQSAMDataset.bundled(sam)
    recipe = load_recipe(args.recipe)
    if recipe.compensate.mode == "none":
        raise SystemExit(f"recipe {args.recipe} has compensate: none")
    t0 = time.perf_counter()
    ptq = quantize_sam(sam, data, recipe.replace(compensate="none")).encoder
    inputs = calibration_inputs(data, recipe)
    out = {"cpu": platform.processor() or "x86_64", "recipe": args.recipe, "before": args.before,
           "fit_inputs": len(inputs), "ptq_s": time.perf_counter() - t0, "runs": {}}
    print(f"PTQ IR in {out['ptq_s']:.0f} s; {len(inputs)} fit inputs", flush=True)
    for label, module in (("before", module_at(args.before)), ("now", ov_compensate)):
        seconds = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            _model, result = module.compensate_ir(ptq, sam.model.image_encoder, inputs, compensate_config(recipe))
            seconds.append(time.perf_counter() - t)
        out["runs"][label] = {"seconds": min(seconds), "all_seconds": seconds, "output_before": result.output_before,
                              "output_after": result.output_after, "kept": result.kept, "units": result.units}
        print(label, f"{min(seconds):.1f} s", f"{result.output_before:.5f} -> {result.output_after:.5f}", flush=True)
    out["speedup"] = out["runs"]["before"]["seconds"] / out["runs"]["now"]["seconds"]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
