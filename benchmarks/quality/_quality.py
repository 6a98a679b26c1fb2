"""Shared parts of the quality benchmarks: calibration sources, evaluation on the same prompts, the table."""

from __future__ import annotations

import json
from pathlib import Path


def calibration_sources(sam, dfqsam: str, psaq: str | None = None) -> dict:
    """name -> zero-argument factory of a calibration set (made on first use)."""
    from dfq_sam_plugin import DFQSAMDataset, synthesize
    from dfq_sam_plugin.eval.real_calibration import mni_calibration_set

    dfq = DFQSAMDataset.bundled(sam) if dfqsam == "bundled" else DFQSAMDataset.load(dfqsam, sam)
    n = len(dfq)
    sources = {"dfq-sam": lambda: dfq,
               "gaussian": lambda: synthesize(sam, num_images=n, method="gaussian", progress=False),
               "real-mni": lambda: mni_calibration_set(sam)}
    if psaq:
        sources["psaq"] = lambda: DFQSAMDataset.load(psaq, sam)
    return sources


def evaluate_and_report(predictors: dict, facts: dict, sets: list[str], json_path: str | None) -> None:
    """Evaluate every predictor (``fp`` first) on the same prompts; print the markdown table; write JSON."""
    from dfq_sam_plugin.eval import evaluate, load_benchmark

    report = evaluate(predictors, [load_benchmark(s) for s in sets])
    rows = []
    for name, fact in facts.items():
        row = {"config": name, **fact}
        for s in sets:
            r = report.results[s][name]
            row[f"{s}_fidelity"], row[f"{s}_gt_dice"] = r["fidelity"], r["dice"]
            row[f"{s}_gt_dice_change_pt"] = 100 * (r["dice"] - report.results[s]["fp"]["dice"])
        rows.append(row)
    print("| config | calib | " + " | ".join(f"{s} fidelity | {s} GT Dice (Δ pt)" for s in sets) + " |")
    print("|" + "---|" * (2 + 2 * len(sets)))
    for row in rows:
        cells = " | ".join(f"{row[f'{s}_fidelity']:.4f} | {row[f'{s}_gt_dice']:.4f} "
                           f"({row[f'{s}_gt_dice_change_pt']:+.2f})" for s in sets)
        print(f"| {row['config']} | {row['calibration']} ({row['images']}) | {cells} |")
    fp = {s: report.results[s]["fp"]["dice"] for s in sets}
    print("FP GT Dice:", fp)
    if json_path:
        Path(json_path).write_text(json.dumps({"fp_gt_dice": fp, "rows": rows, "sets": sets}, indent=1))
