"""Data-free distillation on a GPU box that has torch but not OpenVINO or `datasets` (the device tool's H100),
scored there in torch against FP masks packed here, and the distilled student brought back as an IR.

    python benchmarks/training/distill_gpu.py pack --out carried/distill                  # here: real sets + FP masks
    python benchmarks/training/distill_gpu.py run --pack carried/distill --data dfq-sam --steps 600 \\
        --json $OUT/dfqsam.json [--save $OUT] [--work calib/w]                   # there: PTQ, distil, score
    python benchmarks/training/distill_gpu.py export --student DIR --out out/             # here: student -> IR pair
        [--float REGEX]  (also keep these modules float; no --student: the PTQ start instead)
    python benchmarks/training/distill_gpu.py average --student A B --out DIR              # here: a weight average

`run` measures FP-fidelity (Dice of the student's masks vs the FP model's, same prompts) of the NNCF torch
student after PTQ and after distillation; `--data gaussian` distils on Gaussian noise instead (the same
count and budget), `--data bundled` / `dfq-sam` on the bundled DFQ-SAM set, `--add SET...` joins more synthetic sets to it,
`--data sets --add SET...` distils on the given sets alone (issue 34's same-budget comparison of synthesis methods).
`--held-out NPZ` also scores every student's generalisation (eval.generalisation: encoder-output relative error on
those held-out synthetic images vs the packed real images, against the FP32 encoder in torch on the same GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import lzma
import pickle
import re
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
SHARD_MB = 15  # files coming back from the device are capped at 16 MB


def pack(args) -> None:
    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.eval import load_benchmark
    from dfq_sam_plugin.eval.harness import predict_set
    from dfq_sam_plugin.runtime import SamBoxPredictor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp = SamBoxPredictor(load_sam("litemedsam"))
    sets = [load_benchmark(s) for s in ("nuclei", "mni")]
    fp_masks = {b.name: predict_set(fp, b) for b in sets}
    (out / "sets.pkl.xz").write_bytes(lzma.compress(pickle.dumps({"sets": sets, "fp_masks": fp_masks})))
    print(f"packed {sum(len(b.images) for b in sets)} images into {out}")


def load_set(path: str, spec):
    """A synthetic set: NAME.npz (+ .json) or a synthesis --out folder (its .shards)."""
    from dfq_sam_plugin.data.arrays import ArraySet  # not data.dataset: it imports NNCF

    return ArraySet.from_npz(path) if path.endswith(".npz") else ArraySet.from_shards(path, spec)


@functools.cache
def packed(pack_dir: Path) -> dict:
    """The real sets and their FP masks written by `pack`, read once per process."""
    return pickle.loads(lzma.decompress((pack_dir / "sets.pkl.xz").read_bytes()))


def calibration(sam, kind: str, extra: list[str], n: int):
    from dfq_sam_plugin.data.arrays import ASSETS, ArraySet  # not data.dataset: it imports NNCF

    bundled = ArraySet.from_npz(ASSETS / "litemedsam_dfqsam16.npz")
    if extra and kind not in ("dfq-sam", "bundled", "sets"):
        raise SystemExit(f"--add joins DFQ-SAM sets; it cannot be combined with --data {kind}")
    if kind == "sets" and not extra:
        raise SystemExit("--data sets distils on the --add sets alone: name at least one")
    if extra:  # more synthetic images: npz files or synthesis run folders (their .shards)
        parts = [load_set(p, sam.spec) for p in extra]
        return ArraySet.concat(parts if kind == "sets" else [bundled] + parts)
    if kind in ("dfq-sam", "bundled"):
        return bundled
    if kind == "gaussian":  # the synthesis engine's own Gaussian initialisation, no optimisation
        import torch

        from dfq_sam_plugin.synthesis.config import SynthesisConfig
        from dfq_sam_plugin.synthesis.engine import Synthesizer

        eng = Synthesizer(sam, SynthesisConfig(method="gaussian", seed=1))
        states = [eng.initial_state(i) for i in range(n or len(bundled))]
        prov = {**bundled.provenance, "method": "gaussian"}
        return ArraySet(torch.stack([s[0] for s in states]).numpy(), torch.stack([s[2] for s in states]).numpy(),
                        prov)
    raise SystemExit(f"unknown --data {kind}")


def fidelity(sam, encoder, pack_dir: Path, device: str) -> dict[str, float]:
    from dfq_sam_plugin.eval.harness import per_prompt, predict_set
    from dfq_sam_plugin.runtime import SamBoxPredictor

    pack = packed(pack_dir)
    model = type(sam.model)(encoder, sam.model.prompt_encoder, sam.model.mask_decoder)
    pred = SamBoxPredictor(dataclasses.replace(sam, model=model), device=device)
    out = {}
    for bset in pack["sets"]:
        scores = per_prompt(bset, predict_set(pred, bset), pack["fp_masks"][bset.name])
        out[bset.name] = {"fidelity": float(scores["fidelity"].mean()), "dice": float(scores["dice"].mean())}
    model.to("cpu")
    return out


def generalisation_scorer(sam, held_out: str, pack_dir: Path, device: str):
    """``score(encoder)``: eval.generalisation of a torch encoder on ``device`` against the FP32 teacher encoder,
    the held-out synthetic and packed real inputs prepared, and the teacher's outputs computed, once."""
    import torch

    from dfq_sam_plugin.data.inputs import to_encoder_input
    from dfq_sam_plugin.eval.generalisation import (
        fp32_reference,
        generalisation,
        real_encoder_inputs,
        torch_embed,
    )

    synthetic = [to_encoder_input(p, sam.spec) for p in load_set(held_out, sam.spec).pixels]
    real = {b.name: real_encoder_inputs([b], sam.spec) for b in packed(pack_dir)["sets"]}
    reference = fp32_reference(sam.model.image_encoder, device)

    def score(encoder) -> dict:
        # models are moved before entering no_grad mode: a .to() under inference_mode makes inference-tensor
        # parameters, which a later training step (the pool refresh's pixel gradients) cannot save for backward
        sam.model.image_encoder.to(device).eval()
        encoder.to(device).eval()
        with torch.no_grad():
            return generalisation(torch_embed(encoder, device), reference, synthetic, real).to_dict()

    return score


def save_student(state: dict, folder: Path) -> list[str]:
    """A student's state dict as ``student-*.pt`` shards under the device's file-size cap."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if current and size + nbytes > SHARD_MB * 2**20:
            shards.append(current)
            current, size = {}, 0
        current[k] = v.detach().cpu()
        size += nbytes
    shards.append(current)
    names = []
    for i, shard in enumerate(shards):
        names.append(f"student-{i}.pt")
        torch.save(shard, folder / names[-1])
    return names


def _variant_folder(variant: str) -> str:
    """A variant's checkpoint folder under --work: its overrides, spelled as a file name."""
    return "variant-" + (re.sub(r"[^A-Za-z0-9_.=-]+", "_", variant.strip()) or "recipe")


def run(args) -> None:
    """PTQ once, then one distillation per ``--variant`` (distill_* overrides) from a copy of the PTQ student;
    the JSON is written after the PTQ and rewritten after every variant, so a call cut short keeps what finished."""
    import copy

    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.nncf import calibration_summary, is_nncf_quantizer, nncf_student
    from dfq_sam_plugin.distill import Distiller
    from dfq_sam_plugin.recipes import distill_config, load_recipe, parse_overrides

    sam = load_sam("litemedsam")
    recipe = load_recipe(args.recipe).replace(distill_steps=args.steps, **parse_overrides(args.set or [], "--set"))
    data = calibration(sam, args.data, args.add, args.images)
    t0 = time.perf_counter()
    ptq_student, work, report = nncf_student(sam, data, recipe, args.work)  # --work: kept, or rebuilt from there
    if args.start:  # distil on from a distilled student, in this recipe's (equal or more float) structure
        load_distilled(ptq_student, args.start, fewer_quantizers=args.start_float)
    # the set's provenance travels in the JSON: a pool synthesized on the GPU box need not come back for `export`
    result = {"data": args.data, "images": len(data), "calibration": calibration_summary(data), "add": args.add,
              "recipe": recipe, "ptq_s": time.perf_counter() - t0, "ptq_loaded_from": report.get("ptq_loaded_from"),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "held_out": args.held_out,
              "start": args.start}
    result["ptq"] = fidelity(sam, ptq_student, Path(args.pack), args.device)
    scorer = generalisation_scorer(sam, args.held_out, Path(args.pack), args.device) if args.held_out else None
    if scorer:
        result["ptq"]["generalisation"] = scorer(ptq_student)
    print("PTQ", result["ptq"], flush=True)
    result["variants"] = []
    Path(args.json).write_text(json.dumps(result, indent=1, default=str))  # a call cut short keeps the PTQ row
    for variant in args.variant or [""]:
        changes = parse_overrides(variant, "--variant")
        vrecipe = recipe.replace(**changes)
        if any(not k.startswith("distill_") for k in changes):
            raise SystemExit(f"--variant may only change distill_* keys (the PTQ student is shared): {variant}")
        student = copy.deepcopy(ptq_student)
        distiller = Distiller(sam, student, data.pixels, data.boxes, distill_config(vrecipe),
                              is_quantizer=is_nncf_quantizer, device=args.device)
        # --work: each variant checkpoints in a folder named by its overrides, so a call cut short resumes it in the
        # next one, and another command's variants (same PTQ student) get folders of their own
        res = distiller.run(Path(args.work) / _variant_folder(variant) if args.work else None, progress=False)
        entry = {"variant": variant, "recipe": vrecipe, "distill": res.summary(),
                 "steps_per_s": res.steps / res.seconds if res.seconds else None,
                 "distilled": fidelity(sam, student.eval(), Path(args.pack), args.device), "history": res.history}
        if scorer:
            entry["distilled"]["generalisation"] = scorer(student)
        print("distilled", variant or "(recipe)", entry["distilled"], f"{res.seconds:.0f} s", flush=True)
        if args.save:
            entry["student_files"] = save_student(student.state_dict(), Path(args.save) / f"{args.data}{len(result['variants'])}")
        result["variants"].append(entry)
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
        del student, distiller
        torch.cuda.empty_cache() if torch.cuda.is_available() else None


def load_student_state(folder: str) -> dict:
    import torch

    state = {}
    for f in sorted(Path(folder).glob("student-*.pt")):
        state.update(torch.load(f, map_location="cpu", weights_only=True))
    if not state:
        raise SystemExit(f"{folder} holds no student-*.pt shards")
    return state


def load_distilled(student, folder: str, fewer_quantizers: bool) -> None:
    """Load a distilled student's shards into ``student``; ``fewer_quantizers``: ``student`` was built with more
    modules float (a longer ``ignored_modules``) than the distilled one, whose quantizers for them are dropped —
    and nothing else may be missing or left over."""
    loaded = student.load_state_dict(load_student_state(folder), strict=not fewer_quantizers)
    if fewer_quantizers:
        stray = [k for k in loaded.unexpected_keys if "__nncf_hooks" not in k]
        if loaded.missing_keys or stray or not loaded.unexpected_keys:
            raise SystemExit(f"{folder}: missing {loaded.missing_keys[:5]}, not a quantizer {stray[:5]}, "
                             f"{len(loaded.unexpected_keys)} quantizer tensors dropped (none: the extra float "
                             "patterns name no quantized module)")
        print(f"{len(loaded.unexpected_keys)} quantizer tensors of the distilled student dropped", flush=True)


def average(args) -> None:
    """The element-wise mean of students distilled from one PTQ student (a "model soup"): float tensors averaged,
    integer ones (quantizer levels) required equal. Export it with `export --json` of any of its runs."""
    import torch

    states = [load_student_state(f) for f in args.student]
    if any(s.keys() != states[0].keys() for s in states):
        raise SystemExit("the students' state dicts have different keys: not distilled from one PTQ student")
    mean = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            mean[key] = torch.stack([s[key] for s in states]).mean(0)
        elif all(torch.equal(s[key], first) for s in states):
            mean[key] = first
        else:
            raise SystemExit(f"{key}: integer tensors differ between the students")
    print("averaged", len(states), "students into", save_student(mean, Path(args.out)))


def export(args) -> None:
    from dfq_sam_plugin import DFQSAMDataset, load_sam
    from dfq_sam_plugin.backends.nncf import calibration_summary, nncf_student
    from dfq_sam_plugin.export.openvino import convert_decoder, convert_encoder, count_ops, save_export
    from dfq_sam_plugin.recipes import load_recipe, parse_overrides

    sam = load_sam("litemedsam")
    meta = json.loads(Path(args.json).read_text())
    meta = {**meta, **meta["variants"][args.variant]} if "variants" in meta else meta
    recipe = {**load_recipe(args.recipe), **{k: v for k, v in meta["recipe"].items() if k != "name"}}
    recipe["ignored_modules"] = recipe["ignored_modules"] + args.float
    overrides = parse_overrides(args.set, "--set")
    if args.student and "overflow_fix" in overrides and overrides["overflow_fix"] != recipe["overflow_fix"]:
        # NNCF's torch OverflowFix keeps 8-bit weight quantizers with doubled scales: the student's own (trained)
        # scales would export the same IR, and re-rounding its weights to 8 bits (scales halved, or NNCF's 8-bit
        # ranges) raised its real errors 2.4-5x (docs/notebook/2026-12-08.md §46): distillation learns the rounding
        raise SystemExit("--set overflow_fix cannot change a distilled student's weight bits: distil with it instead "
                         "(run --set overflow_fix=...)")
    recipe.update(overrides)
    if not args.student and meta["data"] != "dfq-sam":
        raise SystemExit(f"without --student the export is a PTQ on the bundled set, not this run's start ("
                         f"--data {meta['data']})")
    # the quantizer structure comes from the bundled set, from one image when a distilled state then sets every value
    # (the same export to the bit as from 16 images, 12 s instead of 134 s on epyc-avx2-2c-m49: notebook
    # 2026-12-07 §45); the provenance from the set the run distilled on (--add: the same sets as the run)
    structure = {**recipe, "subset_size": 1} if args.student else recipe
    student, _work, _ = nncf_student(sam, DFQSAMDataset.bundled(sam), structure)
    if "calibration" in meta and not args.add:  # recorded by `run` since 2026-12-07: the sets need not be here
        summary = meta["calibration"]
    else:
        data = calibration(sam, meta["data"], args.add, meta["images"])
        if len(data) != meta["images"]:
            raise SystemExit(f"the run distilled on {meta['images']} images, --add gives {len(data)}: pass its --add")
        summary = calibration_summary(data)
    floats = {"float_after_distillation": args.float} if args.float else {}
    if overrides:  # the export's quantizers differ from the run's (e.g. the PTQ start with 8-bit weights)
        floats["export_overrides"] = overrides
    if not args.student:  # the PTQ start itself (a --data dfq-sam run's own start, up to CPU / GPU numerics)
        calib, report = summary, {"ptq_only": True, **floats}
    else:
        load_distilled(student, args.student, fewer_quantizers=bool(args.float))
        calib = {**summary, "distillation": {
            "steps": meta["distill"]["steps"], "final_losses": meta["distill"]["final_losses"], "device": meta["gpu"],
            "data": "synthetic only", "real_data_used": False}}
        report = {"distill": meta["distill"], **floats}
    encoder = convert_encoder(student, sam.spec.img_size)
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, recipe["decoder_boxes"])
    report["encoder_fake_quantize"] = count_ops(encoder, "FakeQuantize")
    save_export(args.out, encoder, decoder, sam.spec, calib, recipe, report)
    print("exported", args.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", required=True)
    p.set_defaults(func=pack)
    p = sub.add_parser("run")
    p.add_argument("--pack", required=True)
    p.add_argument("--recipe", default="openvino_int8_cpu_distill")
    p.add_argument("--data", default="dfq-sam", help="dfq-sam (bundled set) | gaussian | sets (the --add sets "
                   "alone)")
    p.add_argument("--held-out", default=None, help="synthetic ArraySet npz (or synthesis folder) never trained on: also score each "
                   "student's generalisation ratio")
    p.add_argument("--add", nargs="*", default=[], help="more synthetic sets (NAME.npz or a synthesis --out "
                   "folder holding .shards), joined to the bundled set (--data dfq-sam) or used alone (--data other)")
    p.add_argument("--images", type=int, default=0, help="gaussian: image count (default: the bundled set's)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--set", nargs="*", help="recipe overrides KEY=VALUE or a YAML mapping {KEY: VALUE} (YAML values; "
                   "dfq_sam_plugin.recipes.parse_overrides)")
    p.add_argument("--variant", action="append", help="distill_* overrides 'KEY=VALUE KEY=VALUE' of one "
                   "distillation from the shared PTQ student; repeatable (default: the recipe's)")
    p.add_argument("--start", default=None, help="a distilled student's folder (student-*.pt shards): the variants "
                   "distil on from it instead of from the PTQ student (its scores are the JSON's 'ptq' row)")
    p.add_argument("--start-float", action="store_true", help="with --start: --set made more modules float than "
                   "the student was distilled with; their quantizers are dropped from it")
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", required=True)
    p.add_argument("--save", default=None, help="folder for the student's state dict (shards < 16 MB)")
    p.add_argument("--work", default=None, help="folder for the PTQ student (ptq.pt) and each variant's distillation "
                   "checkpoints: the same command in a later call on the same machine (e.g. --work calib/NAME_work, "
                   "kept between the device tool's calls) skips the PTQ and resumes the variants")
    p.set_defaults(func=run)
    p = sub.add_parser("export")
    p.add_argument("--student", default=None, help="folder of the student's student-*.pt shards (none: the PTQ "
                   "student the distillation starts from, rebuilt here on the bundled set)")
    p.add_argument("--json", required=True)
    p.add_argument("--recipe", default="openvino_int8_cpu_distill")
    p.add_argument("--variant", type=int, default=0, help="which of the run's variants --student holds")
    p.add_argument("--add", nargs="*", default=[], help="the run's --add sets (for the export's provenance; "
                   "not needed where the run's JSON records it)")
    p.add_argument("--float", action="append", default=[], metavar="REGEX", help="an encoder module regex kept "
                   "float in the export though it was quantized while distilling (added to ignored_modules; its "
                   "quantizers' values are dropped, the distilled weights kept); repeatable")
    p.add_argument("--set", nargs="*", default=[], help="recipe overrides for the export alone, e.g. "
                   "overflow_fix=disable without --student: the PTQ start with 8-bit weights (a distilled student keeps the "
                   "bits it was distilled with); recorded in the export's report")
    p.add_argument("--out", required=True)
    p.set_defaults(func=export)
    p = sub.add_parser("average")
    p.add_argument("--student", nargs="+", required=True, help="student folders (student-*.pt shards) of one PTQ")
    p.add_argument("--out", required=True)
    p.set_defaults(func=average)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
