"""Data-free accuracy control: ``nncf.quantize_with_accuracy_control`` driven by synthetic FP-fidelity
(``dfq_sam_plugin.eval.synthetic_fidelity``), then (where the benchmark images are installed) FP-fidelity and
GT Dice on the real sets, beside the same recipe without accuracy control, in one run.

    python benchmarks/quality/accuracy_control.py --max-drop 0.03 --out /tmp/ac --json benchmarks/results/ac.json

The ranking re-validates the model once per quantizer group (79 for LiteMedSAM): minutes on a 16-core Xeon,
over an hour on a 2-core CPU. ``--no-eval`` skips the real sets (for hosts without them); the export folders
can then be evaluated elsewhere with ``dfq-sam evaluate --ir``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", default=None, help="calibration set folder (default: the bundled 16-image set)")
    ap.add_argument("--recipe", default="recipes/openvino_int8_cpu.yaml")
    ap.add_argument("--max-drop", type=float, default=0.03)
    ap.add_argument("--validation-images", type=int, default=8)
    ap.add_argument("--ranking-subset-size", type=int, default=8)
    ap.add_argument("--max-reverted", type=int, default=40)
    ap.add_argument("--out", required=True, help="folder for the export folders")
    ap.add_argument("--no-eval", action="store_true", help="skip the real-set evaluation")
    ap.add_argument("--baseline", action="store_true", help="also quantize without accuracy control")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.nncf import quantize_sam
    from dfq_sam_plugin.data.dataset import DFQSAMDataset
    from dfq_sam_plugin.recipes import load_recipe

    sam = load_sam("litemedsam")
    ds = DFQSAMDataset.load(args.calib, sam) if args.calib else DFQSAMDataset.bundled(sam)
    base = load_recipe(args.recipe)
    configs = {"accuracy-control": {**base, "accuracy_control": True, "max_drop": args.max_drop,
                                    "validation_images": args.validation_images,
                                    "ranking_subset_size": args.ranking_subset_size,
                                    "max_reverted": args.max_reverted}}
    if args.baseline:
        configs = {"no-accuracy-control": dict(base), **configs}
    rows, folders = [], {}
    for name, recipe in configs.items():
        recipe["name"] = name
        t0 = time.perf_counter()
        q = quantize_sam(sam, ds, recipe)
        folders[name] = q.save(Path(args.out) / name)
        rows.append({"config": name, "calibration": ds.provenance.get("method", "?"),
                     "quantize_s": round(time.perf_counter() - t0, 1), "images": len(ds),
                     "encoder_fake_quantize": q.report["encoder_fake_quantize"],
                     "synthetic_fidelity": q.report.get("synthetic_fidelity"),
                     "recipe": {k: recipe[k] for k in ("max_drop", "validation_images", "ranking_subset_size",
                                                       "max_reverted", "reparam_strength")}})
        print(json.dumps(rows[-1]), flush=True)
    if not args.no_eval:
        from _quality import evaluate_and_report

        from dfq_sam_plugin.runtime import OVSamPredictor, SamBoxPredictor

        predictors = {"fp": SamBoxPredictor(sam), **{n: OVSamPredictor(f) for n, f in folders.items()}}
        evaluate_and_report(predictors, {r["config"]: r for r in rows}, ["nuclei", "mni"], args.json)
    elif args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
