"""The end-to-end demo (``dfq-sam demo``, what ``make demo`` runs) on a CPU, no GPU, no network:

bundled LiteMedSAM -> data-free calibration set (bundled, made on a GPU with ``dfq-sam synthesize``; or one
made now) -> reparameterized scales + NNCF INT8 -> OpenVINO IR pairs (INT8 and FP32) -> FP vs INT8 on the
real benchmark sets (on a CPU that runs float in bf16, also the INT8 encoder pinned to f32: what f32-level masks
cost there) -> ``benchmark_app`` latency -> one table and ``report.md`` with the figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

DEFAULT_RECIPE = "auto"  # the packaged recipe (dfq_sam_plugin/assets/recipes) for this machine's CPU class


def _recipe(path: str | Path | None):
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
    from .eval.figures import disagreement_figure, fidelity_spread_figure, overlay_figure
    from .eval.latency import benchmark_export
    from .export.openvino import candidates_of, read_manifest
    from .export.packaged import packaged_export
    from .models import load_sam
    from .runtime import OVSamPredictor
    from .runtime.split import F32, HEADS
    from .synthesis.figures import samples_figure

    recipe_cfg = _recipe(recipe)  # a bad recipe fails here, before any work
    if recipe_cfg.backend != "openvino":
        raise ValueError(f"--recipe {recipe_cfg.name} is a {recipe_cfg.backend} recipe; the demo exports "
                         f"OpenVINO IRs: name an openvino_* recipe (dfq-sam recipes lists them)")
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

    t0 = time.perf_counter()
    weights_only = "encoder" in recipe_cfg.weight_compression.parts
    step = "nncf.compress_weights (INT8 weights, float activations)" if weights_only else \
        f"reparameterize + nncf.quantize on {len(ds)} images"
    with console.status(f"[bold]3[/] {step} ({recipe_cfg.name})"):
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
    # the export measures its encoder candidates on this CPU and picks one, as it will on any box it is copied to
    chosen = OVSamPredictor(int8_dir)
    console.print(f"[bold]4[/] on this CPU {int8_dir} runs encoder [bold]{chosen.candidate}[/]: {chosen.choice.reason}")
    # FP reference: the FP32 IR pinned to f32 (OpenVINO would run it in bf16 on a bf16-capable CPU)
    predictors = {"fp": OVSamPredictor(fp_dir, config=F32)}
    cpu = cpu_class()
    if cpu.bf16_default:  # the float IR as OpenVINO runs it here: bf16 is lossy too (docs/notebook/2026-12-02.md §15)
        predictors["fp32_bf16"] = OVSamPredictor(fp_dir)
    candidates = candidates_of(chosen.manifest)  # the chosen one is already compiled: reuse it
    predictors.update({name: chosen if name == chosen.candidate else OVSamPredictor(int8_dir, policy=name)
                       for name in candidates})
    primary = chosen.manifest.get("primary", next(iter(candidates)))
    if cpu.bf16_default and primary != "float":  # the quantized encoder pinned to f32: what f32-level masks cost here
        predictors[f"{primary}@f32"] = OVSamPredictor(int8_dir, policy=f"{primary}@f32")
    if cpu.bf16_default:  # the first layer / the head at f32, the rest bf16: of the float and the quantized encoder
        # (a Zen 4 EPYC: INT8 with its first layer at f32 at the same speed, MNI 0.945 -> 0.958, docs/notebook/2026-12-08.md §47)
        predictors.update({f"{name}@{p}": OVSamPredictor(int8_dir, policy=f"{name}@{p}", precisions=("default", p))
                           for name in dict.fromkeys(("float", primary)) if name in candidates
                           for p in HEADS.get(sam.spec.family, {})})
    predictors.update({name: OVSamPredictor(folder) for name, folder in dirs.items() if name != "int8"})
    with progress_factory() as progress:
        task = progress.add_task("[bold]4[/] FP vs the quantized models on the real sets",
                                 total=len(predictors) * sum(len(s.images) for s in sets))
        report = evaluate(predictors, sets, on_image=lambda: progress.advance(task))
    figures = {s.name: overlay_figure(s, report.masks[s.name], out / f"overlay_{s.name}.png") for s in sets}
    figures["fidelity spread"] = fidelity_spread_figure(sets, report.masks, out / "fidelity_spread.png")
    worst = "int8" if "int8" in predictors else next(k for k in predictors if k not in ("fp", "fp32_bf16"))
    for s in sets:
        figures[f"{s.name} disagreement ({worst})"] = disagreement_figure(
            s, report.masks[s.name], worst, out / f"disagreement_{s.name}.png")
    timings["evaluate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with console.status(f"[bold]5[/] end-to-end time of an image + {PROMPTS} prompts, every model"):
        end_to_end_rounds = end_to_end_rounds_ms(predictors, sets[0].images[0].image, sets[0].images[0].boxes[:PROMPTS])
        end_to_end = {name: median(t) for name, t in end_to_end_rounds.items()}
    rows = []
    with console.status(f"[bold]5[/] benchmark_app (latency hint, {niter} iterations) on every IR"):
        for name, folder in (("fp32 IR", fp_dir), *((f"{k.replace('_', ' ')} IR", d) for k, d in dirs.items())):
            for r in benchmark_export(folder, niter=niter, float_precisions=float_precisions):
                rows.append({**r.to_dict(), "folder": r.ir, "ir": name})
    latency_figure(rows, out / "latency.png")
    timings["benchmark_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all
    sizes = {name: model_mib(int8_dir, name.partition("@")[0]) for name in predictors if name.partition("@")[0]
             in candidates}
    sizes.update({"fp": model_mib(fp_dir), "fp32_bf16": model_mib(fp_dir)},
                 **{name: model_mib(folder) for name, folder in dirs.items() if name != "int8"})

    summary = {"model": sam.model_id, "calibration": quantized.calibration, "recipe": recipe_cfg,
               "cpu": cpu.to_dict(), "export": str(int8_dir), "choice": chosen.choice.to_dict(),
               "end_to_end_ms": end_to_end, "end_to_end_rounds_ms": end_to_end_rounds, "model_mib": sizes,
               "prompts": PROMPTS,
               "results": report.results, "latency": rows, "timings": timings,
               "sizes_mb": {f"{d.name}/{f.name}": f.stat().st_size / 2**20
                            for d in (fp_dir, *dirs.values()) for f in sorted(d.glob("*.bin"))}}
    summary["recommendation"] = recommendation(summary)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    console.print(summary_table(summary))
    console.print(latency_table(summary["latency"]))
    console.print(f"[bold green]deploy[/]: {summary['recommendation']}")
    write_report(out, summary, figures)
    console.print(f"report: {out / 'report.md'}  (figures: samples.png, overlay_*.png, fidelity_spread.png, "
                  f"disagreement_*.png, latency.png)")
    return summary


PROMPTS = 4  # box prompts per image in the end-to-end time


def end_to_end_rounds_ms(predictors: dict, image, boxes, rounds: int = 7) -> dict[str, list[float]]:
    """ms of ``set_image(image)`` + ``predict(boxes)`` per predictor and round, what a user waits for one image and
    its prompts; rounds interleaved across predictors, so a load spike hits them all alike (``time_ratio`` pairs
    them by round)."""
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for p in predictors.values():  # warm-up
        p.set_image(image)
        p.predict(boxes)
    for _ in range(rounds):
        for name, p in predictors.items():
            t0 = time.perf_counter()
            p.set_image(image)
            p.predict(boxes)
            times[name].append(1e3 * (time.perf_counter() - t0))
    for p in predictors.values():
        p.reset_image()
    return times


def median(values: list[float]) -> float:
    return float(sorted(values)[len(values) // 2])


def time_ratio(rounds: dict[str, list[float]], name: str, pick: str) -> str:
    """``name``'s time against ``pick``'s, round by round: a ratio only where every round agrees on the order; on a
    shared or throttled host the rounds often disagree, and then the two are not ranked."""
    ratios = sorted(a / b for a, b in zip(rounds[name], rounds[pick]))
    mid, lo, hi = median(ratios), ratios[0], ratios[-1]
    if lo <= 1 <= hi:
        return f"about the same time (rounds {lo:.2f}-{hi:.2f}x, not ranked)"
    return f"{mid:.2f}x the time (every round {lo:.2f}-{hi:.2f}x)"


def model_mib(folder: Path, candidate: str | None = None) -> float:
    """MiB a box loads for one model: the encoder candidate's weights + the decoder's."""
    from .export.openvino import candidates_of, read_manifest

    candidates = candidates_of(read_manifest(folder))
    c = candidates[candidate] if candidate else next(iter(candidates.values()))
    return ((folder / c["bin"]).stat().st_size + (folder / "decoder.bin").stat().st_size) / 2**20


def recommendation(summary: dict) -> str:
    """One computed line: the model the export runs on this CPU (the predictor's own choice), its end-to-end time,
    real FP-fidelity and size, and what each other model trades against it."""
    pick = summary["choice"]["name"]
    sets = list(summary["results"])
    fid = {m: [summary["results"][s][m]["fidelity"] for s in sets] for m in summary["end_to_end_ms"] if m != "fp"}
    e2e, mib = summary["end_to_end_ms"], summary["model_mib"]
    others = []
    for m in fid:
        if m == pick:
            continue
        delta = " / ".join(f"{a - b:+.3f}" for a, b in zip(fid[m], fid[pick]))
        others.append(f"{m} {time_ratio(summary['end_to_end_rounds_ms'], m, pick)}, fidelity {delta}, "
                      f"{mib[m]:.1f} MiB")
    return (f"{summary['export']} runs encoder '{pick}' on this CPU (class {summary['cpu']['name']}, chosen by "
            f"OVSamPredictor itself): {e2e[pick]:.0f} ms for an image + {summary['prompts']} prompts, FP-fidelity "
            f"{' / '.join(f'{x:.3f}' for x in fid[pick])} ({' / '.join(sets)}), {mib[pick]:.1f} MiB. Others: "
            + "; ".join(others) + ".")


def _rows(summary: dict):
    """(set, prompts, FP GT Dice, [(model, GT Dice, Δ pt, FP-fidelity) per quantized model])."""
    for name, models in summary["results"].items():
        fp = models["fp"]
        yield name, fp["prompts"], fp["dice"], [(m, r["dice"], 100 * (r["dice"] - fp["dice"]), r["fidelity"])
                                                for m, r in models.items() if m != "fp"]


def summary_table(summary: dict) -> Table:
    table = Table(title=f"{summary['model']}: FP32 (f32) vs data-free INT8 (calibration real_data_used="
                        f"{summary['calibration'].get('real_data_used')})")
    e2e = summary.get("end_to_end_ms", {})
    for col in ("set", "n", "FP Dice", "model", "Dice", "Δ pt", "fidelity", "ms"):
        table.add_column(col, justify="left" if col in ("set", "model") else "right", no_wrap=col == "model")
    pick = summary.get("choice", {}).get("name")
    for name, prompts, fp_dice, quantized in _rows(summary):
        for i, (model, dice, delta, fidelity) in enumerate(quantized):
            table.add_row(name if i == 0 else "", str(prompts) if i == 0 else "", f"{fp_dice:.4f}" if i == 0 else "",
                          model + (" *" if model == pick else ""), f"{dice:.4f}", f"{delta:+.2f}", f"{fidelity:.4f}",
                          f"{e2e[model]:.0f}" if model in e2e else "—")
    table.caption = (f"n: prompts; fidelity: Dice vs FP32 (f32) masks; ms: an image + {summary.get('prompts')} prompts end "
                     f"to end; * the encoder the export runs on this CPU (chosen by OVSamPredictor)")
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
    lines += ["", f"| model | image + {summary['prompts']} prompts (ms, this CPU) | MiB loaded |", "|---|---|---|"]
    lines += [f"| {m} | {ms:.1f} | {summary['model_mib'][m]:.1f} |" for m, ms in summary["end_to_end_ms"].items()]
    lines += ["", "Sizes (MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["sizes_mb"].items()), "",
              "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["timings"].items()), "",
              "![calibration samples](samples.png)", "", "![latency](latency.png)", ""]
    lines += [f"![{name}]({Path(p).name})" for name, p in figures.items()]
    lines += ["", f"**Deploy**: {summary['recommendation']}"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
