"""The end-to-end demo (``dfq-sam demo``, what ``make demo`` runs) on a CPU, no GPU, no network:

bundled LiteMedSAM -> data-free calibration set (bundled, made on a GPU with ``dfq-sam synthesize``; or one
made now) -> reparameterized scales + NNCF INT8 -> OpenVINO IR pairs (INT8 and FP32) -> FP vs INT8 on the
real benchmark sets -> ``benchmark_app`` latency -> one table and ``report.md`` with the figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

DEFAULT_RECIPE = "auto"  # the packaged recipe (dfq_sam_plugin/assets/recipes) for this machine's CPU class


def _recipe(path: str | Path | None) -> dict[str, Any]:
    from .recipes import load_recipe

    return load_recipe(DEFAULT_RECIPE if path is None else path)


def calibration_set(sam, console: Console, calib: str | None, synthesize: int):
    from .data.dataset import DFQSAMDataset

    if calib:
        return DFQSAMDataset.load(calib, sam)
    if synthesize:
        console.print(f"synthesizing {synthesize} images now on the CPU (a short, weak schedule: for the path only; "
                      f"real sets are made on a GPU)")
        from .synthesis.api import synthesize

        return synthesize(sam, num_images=synthesize, iterations=20, stages=1, batch_size=synthesize)
    return DFQSAMDataset.bundled(sam)


def latency_figure(rows: list[dict], path: Path) -> Path:
    from ._plot import pyplot, save

    plt = pyplot()
    labels = [f"{r['ir']}\n{r['part']} ({r['precision']})" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(rows)))
    ax.barh(labels, [r["median_ms"] or 0 for r in rows], color=["C0" if "int8" in r["ir"] else "C7" for r in rows])
    ax.set_xlabel("benchmark_app median latency (ms), this CPU")
    ax.invert_yaxis()
    fig.tight_layout()
    return save(fig, path)


def run(out: str | Path, console: Console, progress_factory, calib: str | None = None, synthesize: int = 0,
        recipe: str | None = None, niter: int = 5, float_precisions: tuple[str, ...] | None = None
        ) -> dict[str, Any]:
    from .backends.nncf import export_float, quantize_sam
    from .cpu import cpu_class
    from .eval import evaluate, load_benchmark
    from .eval.figures import overlay_figure
    from .eval.latency import benchmark_export
    from .export.openvino import read_manifest
    from .export.packaged import packaged_export
    from .models import load_sam
    from .runtime import OVSamPredictor
    from .synthesis.figures import samples_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    sam = load_sam("litemedsam")
    console.print(f"[bold]1[/] loaded {sam.model_id} (bundled weights, sha256 verified)")

    t0 = time.perf_counter()
    ds = calibration_set(sam, console, calib, synthesize)
    p = ds.provenance
    samples_figure(ds.pixels, ds.boxes, ds.masks, out / "samples.png",
                   title=f"calibration set: {p.get('method')}, real_data_used={p.get('real_data_used')}")
    timings["calibration_set_s"] = time.perf_counter() - t0
    console.print(f"[bold]2[/] calibration set: {len(ds)} images, method {p.get('method')}, "
                  f"real_data_used={p.get('real_data_used')} (figure: {out / 'samples.png'})")

    recipe_cfg = _recipe(recipe)
    t0 = time.perf_counter()
    weights_only = "encoder" in recipe_cfg["weight_compression"]
    step = "nncf.compress_weights (INT8 weights, float activations)" if weights_only else \
        f"reparameterize + nncf.quantize on {len(ds)} images"
    with console.status(f"[bold]3[/] {step} ({recipe_cfg['name']})"):
        quantized = quantize_sam(sam, ds, recipe_cfg)
        int8_dir = quantized.save(out / "int8")
        fp_dir = export_float(sam, out / "fp32")
    timings["quantize_s"] = time.perf_counter() - t0
    what = ("INT8 weights, float activations" if weights_only else
            f"{quantized.report['encoder_fake_quantize']} FakeQuantize in the encoder")
    console.print(f"[bold]3[/] INT8 IR pair: {int8_dir} ({what}); FP32 IR pair: {fp_dir}")

    dirs = {"int8": int8_dir}
    try:
        dirs["int8_distilled"] = packaged_export(sam, out / "int8_distilled")
        facts = read_manifest(dirs["int8_distilled"])["calibration"]
        console.print(f"[bold]3[/] shipped distilled INT8 encoder: {dirs['int8_distilled']} (distilled on a GPU, "
                      f"{facts['distillation']['steps']} steps on {facts.get('num_images')} synthetic images, "
                      f"real_data_used={facts.get('real_data_used')})")
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[yellow]no shipped distilled encoder[/]: {exc}")

    t0 = time.perf_counter()
    sets = [load_benchmark(n) for n in ("nuclei", "mni")]
    # FP reference: the FP32 IR pinned to f32 (OpenVINO would run it in bf16 on a bf16-capable CPU)
    predictors = {"fp": OVSamPredictor(fp_dir, config={"INFERENCE_PRECISION_HINT": "f32"}),
                  **{name: OVSamPredictor(folder) for name, folder in dirs.items()}}
    cpu = cpu_class()
    if cpu.bf16_default:  # the float IR as OpenVINO runs it here: bf16 is lossy too (docs/RESULTS.md §15)
        predictors["fp32_bf16"] = OVSamPredictor(fp_dir)
    with progress_factory() as progress:
        task = progress.add_task("[bold]4[/] FP vs INT8 on the real sets",
                                 total=len(predictors) * sum(len(s.images) for s in sets))
        report = evaluate(predictors, sets, on_image=lambda: progress.advance(task))
    figures = {s.name: overlay_figure(s, report.masks[s.name], out / f"overlay_{s.name}.png") for s in sets}
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = []
    with console.status(f"[bold]5[/] benchmark_app (latency hint, {niter} iterations) on both IR pairs"):
        for name, folder in (("fp32 IR", fp_dir), *((f"{k.replace('_', ' ')} IR", d) for k, d in dirs.items())):
            for r in benchmark_export(folder, niter=niter, float_precisions=float_precisions):
                rows.append({**r.to_dict(), "folder": r.ir, "ir": name})
    latency_figure(rows, out / "latency.png")
    timings["benchmark_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all

    summary = {"model": sam.model_id, "calibration": quantized.calibration, "recipe": recipe_cfg,
               "cpu": cpu.to_dict(),
               "results": report.results, "latency": rows, "timings": timings,
               "sizes_mb": {f"{d.name}/{f.name}": f.stat().st_size / 2**20
                            for d in (fp_dir, *dirs.values()) for f in sorted(d.glob("*.bin"))}}
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    console.print(summary_table(summary))
    console.print(latency_table(summary["latency"]))
    write_report(out, summary, figures)
    console.print(f"report: {out / 'report.md'}  (figures: samples.png, overlay_*.png, latency.png)")
    return summary


def _rows(summary: dict):
    """(set, prompts, FP GT Dice, [(model, GT Dice, Δ pt, FP-fidelity) per quantized model])."""
    for name, models in summary["results"].items():
        fp = models["fp"]
        yield name, fp["prompts"], fp["dice"], [(m, r["dice"], 100 * (r["dice"] - fp["dice"]), r["fidelity"])
                                                for m, r in models.items() if m != "fp"]


def summary_table(summary: dict) -> Table:
    table = Table(title=f"{summary['model']}: FP32 (f32) vs data-free INT8 (calibration real_data_used="
                        f"{summary['calibration'].get('real_data_used')})")
    for col in ("set", "prompts", "FP Dice", "model", "Dice", "Δ pt", "FP-fidelity"):
        table.add_column(col, justify="left" if col in ("set", "model") else "right", no_wrap=col == "model")
    for name, prompts, fp_dice, quantized in _rows(summary):
        for i, (model, dice, delta, fidelity) in enumerate(quantized):
            table.add_row(name if i == 0 else "", str(prompts) if i == 0 else "", f"{fp_dice:.4f}" if i == 0 else "",
                          model, f"{dice:.4f}", f"{delta:+.2f}", f"{fidelity:.4f}")
    return table


def latency_table(rows: list[dict]) -> Table:
    table = Table(title="benchmark_app latency hint, this CPU")
    for col in ("IR", "part", "precision", "median ms"):
        table.add_column(col, justify="right" if col == "median ms" else "left")
    for r in rows:
        table.add_row(r["ir"], r["part"], r["precision"], f"{r['median_ms']:.1f}" if r["median_ms"] else "—")
    return table


def write_report(out: Path, summary: dict, figures: dict[str, Path]) -> Path:
    lines = [f"# dfq-sam demo: {summary['model']}", "",
             f"Calibration: `{summary['calibration'].get('method')}`, "
             f"{summary['calibration'].get('num_images')} images, "
             f"real_data_used = **{summary['calibration'].get('real_data_used')}**. "
             f"Recipe: `{summary['recipe']['name']}` (reparam {summary['recipe']['reparam']}, "
             f"strength {summary['recipe']['reparam_strength']}, weight_compression "
             f"{summary['recipe']['weight_compression'] or 'none'}; CPU class {summary['cpu']['name']}).", "",
             "FP reference: the FP32 IR at `INFERENCE_PRECISION_HINT=f32`. `int8`: made now with that recipe "
             "(PTQ, or INT8 weights with float activations where the recipe says weight_compression); `int8_distilled`: "
             "the shipped encoder, distilled on a GPU from synthetic images only." + (
                 " `fp32_bf16`: the FP32 IR at OpenVINO's default precision, bf16 on this CPU (the INT8 IRs' float "
                 "parts run in bf16 here too)." if summary["cpu"]["bf16_default"] else ""), "",
             "| set | prompts | FP GT Dice | model | GT Dice | Δ pt | FP-fidelity |", "|---|---|---|---|---|---|---|"]
    for name, prompts, fp_dice, quantized in _rows(summary):
        for model, dice, delta, fidelity in quantized:
            lines.append(f"| {name} | {prompts} | {fp_dice:.4f} | {model} | {dice:.4f} | {delta:+.2f} | {fidelity:.4f} |")
    lines += ["", "| IR | part | precision | median latency (ms, this CPU) |", "|---|---|---|---|"]
    for r in summary["latency"]:
        lines.append(f"| {r['ir']} | {r['part']} | {r['precision']} | "
                     f"{r['median_ms']:.1f} |" if r["median_ms"] else f"| {r['ir']} | {r['part']} | — |")
    lines += ["", "Sizes (MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["sizes_mb"].items()), "",
              "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["timings"].items()), "",
              "![calibration samples](samples.png)", "", "![latency](latency.png)", ""]
    lines += [f"![{name} overlays: FP vs INT8]({Path(p).name})" for name, p in figures.items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
