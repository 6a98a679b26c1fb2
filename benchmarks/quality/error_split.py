"""Where an OpenVINO INT8 encoder's remaining error lies: its activation quantizers switched off, all, by stage or
by kind, against the IR as it is (issue 34: what keeps INT8 under 0.97 FP-fidelity after the block compensation).

    python benchmarks/quality/error_split.py --ir OUT/base --held-out carried/g3/val.npz --json split.json

Each variant is a copy of the IR whose activation FakeQuantize nodes (those not on a constant: NNCF's weights are
int8 constants, not FakeQuantize) of the variant's pattern are bypassed. What is left with every activation
quantizer off is the weights' error (and the corrections, fitted for quantized activations). Encoder-output
relative error against the FP32 torch encoder on held-out synthetic images and on the nuclei / MNI inputs, every IR
pinned to f32 (``eval.generalisation``).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from dfq_sam_plugin.export.openvino import MLP_OUTPUT_INPUTS, bypass_activation_quantizers
from dfq_sam_plugin.runtime.split import F32

VARIANTS = {  # name: regex of the torch module names (as ov.convert_model writes them) whose activation FQs go
    "as exported": None,
    "activations float": r".",
    "activations float in layers.1": r"__module\.layers\.1[./]",
    "activations float in layers.2": r"__module\.layers\.2[./]",
    "activations float in layers.3": r"__module\.layers\.3[./]",
    "activations float in the neck": r"__module\.neck[./]",
    "attention activations float": r"\.attn[./]",
    "MLP activations float": r"\.mlp[./]",
    "MLP fc1 inputs float (LayerNorm outputs)": r"\.mlp\.norm[./]",
    "MLP fc2 inputs float (GELU outputs)": MLP_OUTPUT_INPUTS,
    # the quantized aten::add outputs: the last residual add of stages 1-3 (into a patch merging or the neck) and the
    # neck's LayerNorm2d; the other residual adds feed the float local_conv and carry no quantizer
    "residual-add outputs float": r"aten::add/",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ir", required=True, help="export folder (encoder.xml) of the INT8 encoder")
    ap.add_argument("--held-out", required=True, help="synthetic ArraySet npz the encoder was not calibrated on")
    ap.add_argument("--held-out-images", type=int, default=16)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    import openvino as ov

    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.data.arrays import ArraySet
    from dfq_sam_plugin.data.inputs import to_encoder_input
    from dfq_sam_plugin.eval import load_benchmark
    from dfq_sam_plugin.eval.generalisation import fp32_reference, generalisation, real_encoder_inputs

    sam = load_sam("litemedsam")
    held = ArraySet.from_npz(args.held_out)
    synthetic = [to_encoder_input(p, sam.spec) for p in held.pixels[: args.held_out_images]]
    real = {s.name: real_encoder_inputs([s], sam.spec) for s in (load_benchmark(n) for n in ("nuclei", "mni"))}
    reference = fp32_reference(sam.model.image_encoder)

    core = ov.Core()
    out = {"cpu": platform.processor() or "x86_64", "ir": args.ir, "held_out": args.held_out,
           "held_out_images": len(synthetic), "precision": "f32", "rows": {}}
    for name in args.variants:
        model = core.read_model(Path(args.ir) / "encoder.xml")
        n = bypass_activation_quantizers(model, VARIANTS[name])
        compiled = core.compile_model(model, "CPU", F32)
        g = generalisation(lambda x, c=compiled: c(x)[0], reference, synthetic, real)
        out["rows"][name] = {"bypassed": n, **g.to_dict()}
        print(f"{name:34s} bypassed {n:3d}  synthetic {g.synthetic:.5f}  nuclei {g.real['nuclei']:.5f}  "
              f"mni {g.real['mni']:.5f}", flush=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
