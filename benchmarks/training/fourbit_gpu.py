"""4-bit Brevitas students on a GPU box (issue #13): calibration only vs block reconstruction vs distillation,
one recipe per call, scored there in torch against the FP masks packed by `distill_gpu.py pack`.

    python benchmarks/training/fourbit_gpu.py --pack carried/distill --recipe brevitas_w4a8 --add carried/s1_48 \\
        --stages calib recon recon+distill distill --json $OUT/w4a8.json

Stages (each from its own copy of the calibrated student, same prompts and images):
  calib          the recipe's calibration (reparam, Brevitas ranges), no training
  recon          + block reconstruction (reconstruct_* keys; per-unit error before/after recorded)
  recon+decoder  block reconstruction with the decoder-aware term (reconstruct_decoder_weight: --decoder-weight)
  recon+distill  + distillation of the reconstructed student (distill_* keys)
  comp           closed-form block compensation of the calibrated student (distill.compensate), once per
                 --compensate mode and --ridge value (stage names comp:MODE:RIDGE); no training
  recon+comp     the same compensations of the reconstructed student (recon+comp:MODE:RIDGE)
  distill        distillation of the calibrated student, no reconstruction
--ablate also scores the calibrated student with one error source removed (where the error comes from):
  weights-only   activation quantizers (softmax included) disabled, Brevitas' quantization_status_manager
  activations-only  weight quantizers disabled
  probs-float    the attention-probability quantizers alone removed
--held-out NPZ also scores each stage's generalisation ratio (eval.generalisation: encoder-output relative error on
those held-out synthetic images vs the packed real images, against the FP32 encoder on the same device).
The JSON is rewritten after every stage, so a call cut short keeps what finished.
--checkpoint DIR makes the calibration resumable: the calibrated student is saved there (state dict, recipe,
calibration facts; no exports) and a later call with the same DIR, recipe and set loads it instead of calibrating
(a slow calibration, e.g. GPTQ + learned rounding, in one call and the training stages in the next, on a machine
that kept DIR: a device box that stayed warm, or DIR carried to it).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

from distill_gpu import _overrides, calibration, fidelity, generalisation_scorer

warnings.filterwarnings("ignore")
STAGES = ("calib", "recon", "recon+distill", "distill", "recon+decoder", "comp", "recon+comp")
ABLATIONS = ("weights-only", "activations-only", "probs-float")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", required=True)
    ap.add_argument("--recipe", default="brevitas_w4a8")
    ap.add_argument("--data", default="dfq-sam", help="dfq-sam (bundled set) | gaussian")
    ap.add_argument("--add", nargs="*", default=[], help="more synthetic sets (NAME.npz or synthesis folders)")
    ap.add_argument("--images", type=int, default=0, help="gaussian: image count")
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides KEY=VALUE (YAML values)")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--ablate", nargs="*", default=[], choices=ABLATIONS)
    ap.add_argument("--decoder-weight", type=float, default=1.0, help="recon+decoder: reconstruct_decoder_weight")
    ap.add_argument("--compensate", nargs="+", default=["linear"], choices=("linear", "channel"),
                    help="comp: compensation modes")
    ap.add_argument("--ridge", nargs="+", type=float, default=[1.0], help="comp: compensate_ridge values")
    ap.add_argument("--held-out", default=None, help="synthetic ArraySet npz never calibrated or trained on: also "
                    "score every stage's generalisation ratio (issue 34's Brevitas column)")
    ap.add_argument("--checkpoint", default=None, help="folder: load the calibrated student from it if it holds "
                    "one, else save it there after calibrating")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    import torch

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.backends.brevitas import train
    from dfq_sam_plugin.recipes import load_recipe

    sam = load_sam("litemedsam")
    recipe = _overrides(load_recipe(args.recipe), args.set)
    data = calibration(sam, args.data, args.add, args.images)
    calib_only = {**recipe, "reconstruct_iters": 0, "distill_steps": 0}
    t0 = time.perf_counter()
    q = calibrated(sam, data, calib_only, args.device, args.checkpoint)
    out = {"recipe": recipe, "data": args.data, "images": len(data), "calibration_s": time.perf_counter() - t0,
           "checkpoint": q.report.get("checkpoint"),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
           "bits": {k: q.report[k] for k in ("average_weight_bits", "weights_by_bits", "activation_quantizers_by_bits",
                                               "weight_scales", "scale_bits_per_weight")},
           "stages": {}}
    print(f"calibrated in {out['calibration_s']:.0f} s", flush=True)

    scorer = generalisation_scorer(sam, args.held_out, Path(args.pack), args.device) if args.held_out else None

    def score(name, model, report=None):
        out["stages"][name] = {"fidelity": fidelity(sam, model.image_encoder.eval(), Path(args.pack), args.device),
                               **(report or {})}
        if scorer:
            out["stages"][name]["generalisation"] = scorer(model.image_encoder)
        print(name, out["stages"][name]["fidelity"], flush=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))

    if "calib" in args.stages:
        score("calib", q.sam.model)
    for name in args.ablate:
        score(f"calib[{name}]", ablated(q.sam.model, name))
    def stage(name, model, **overrides):
        """Train ``model`` (in place) with the recipe and ``overrides``, time it, score it as stage ``name``."""
        t0 = time.perf_counter()
        try:
            rep = train(sam, model, data, {**recipe, **overrides}, args.device, progress=False)
        except RuntimeError:
            print("off-device tensors:", off_device(model.image_encoder, args.device), flush=True)
            raise
        score(name, model, {**rep, "seconds": time.perf_counter() - t0})
        return model

    def compensated(prefix, model):
        for mode in args.compensate:
            for ridge in args.ridge:
                stage(f"{prefix}:{mode}:{ridge:g}", copy.deepcopy(model), reconstruct_iters=0, distill_steps=0,
                      compensate=mode, compensate_ridge=ridge)

    if {"recon", "recon+distill", "recon+comp"} & set(args.stages):
        recon = stage("recon", copy.deepcopy(q.sam.model), distill_steps=0)
        if "recon+comp" in args.stages:
            compensated("recon+comp", recon)
        if "recon+distill" in args.stages:
            stage("recon+distill", recon, reconstruct_iters=0)
    if "recon+decoder" in args.stages:
        stage("recon+decoder", copy.deepcopy(q.sam.model), distill_steps=0,
              reconstruct_decoder_weight=args.decoder_weight)
    if "distill" in args.stages:
        stage("distill", copy.deepcopy(q.sam.model), reconstruct_iters=0)
    if "comp" in args.stages:
        compensated("comp", q.sam.model)


def calibrated(sam, data, recipe: dict, device: str, checkpoint: str | None):
    """The recipe's calibrated student: loaded from ``checkpoint`` if it holds one made with the same recipe and
    calibration set (its provenance facts), else calibrated (and saved there if given). ``report['checkpoint']``
    says which."""
    from dfq_sam_plugin.backends.brevitas import STATE_DICT, load_quantized, quantize_sam
    from dfq_sam_plugin.backends.nncf import calibration_summary
    from dfq_sam_plugin.recipes import as_recipe

    def key(recipe_, facts):
        return json.dumps([as_recipe(recipe_), facts], sort_keys=True, default=str)

    folder = Path(checkpoint) if checkpoint else None
    if folder and (folder / STATE_DICT).exists():
        q = load_quantized(folder, sam)
        if key(q.recipe, q.calibration) != key(recipe, calibration_summary(data)):
            raise SystemExit(f"{folder} holds a student calibrated with another recipe or calibration set; use "
                             f"another --checkpoint")
        q.sam.model.to(device)
        q.report["checkpoint"] = f"loaded {folder}"
        return q
    q = quantize_sam(sam, data, recipe, device=device)
    if folder:
        q.save(folder, exports=False)
        q.report["checkpoint"] = f"saved {folder}"
    return q


def off_device(encoder, device: str) -> list[str]:
    """Parameters, buffers, plain tensor attributes and weight-quantizer scales of ``encoder`` not on ``device``."""
    import torch

    want = torch.device(device).type
    found = []
    for name, m in encoder.named_modules():
        tensors = {**dict(m.named_parameters(recurse=False)), **dict(m.named_buffers(recurse=False)),
                   **{k: v for k, v in vars(m).items() if torch.is_tensor(v)}}
        found += [f"{name}.{k} {v.device}" for k, v in tensors.items() if v.device.type != want]
        if hasattr(m, "quant_weight"):
            with torch.no_grad():
                scale = m.quant_weight().scale
            if scale is not None and scale.device.type != want:
                found.append(f"{name}.quant_weight().scale {scale.device}")
    return found


def ablated(model, name: str):
    """A copy of the calibrated ``model`` (with ``.image_encoder``) with the error source ``name`` removed."""
    from types import SimpleNamespace

    from brevitas.graph.calibrate import quantization_status_manager
    from torch import nn

    from dfq_sam_plugin.models.attention import QuantPointAttention

    encoder = copy.deepcopy(model.image_encoder).eval()
    if name == "probs-float":
        for m in encoder.modules():
            if isinstance(m, QuantPointAttention):
                m.probs = nn.Identity()
        return SimpleNamespace(image_encoder=encoder)

    class Disabled(nn.Module):  # the encoder run inside Brevitas' quantization-status context
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            with quantization_status_manager(self.encoder, is_training=False,
                                             disable_act_quant=name == "weights-only",
                                             disable_weight_quant=name == "activations-only"):
                return self.encoder(x)

    return SimpleNamespace(image_encoder=Disabled())


if __name__ == "__main__":
    main()
