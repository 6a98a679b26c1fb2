"""OpenVINO IR export: ``encoder.xml`` + ``decoder.xml`` (static shapes) and ``manifest.json`` in one folder.

Both IRs carry the calibration provenance in ``rt_info["dfq_sam"]`` (method, seed, weights sha256,
``real_data_used``), so an edge box can tell how its model was calibrated without the manifest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..integrity import digests

MANIFEST = "manifest.json"
FORMAT = "dfq-sam-openvino/1"
ENCODER_INPUT, ENCODER_OUTPUT = "pixels", "image_embeddings"
DECODER_INPUTS, DECODER_OUTPUTS = ("image_embeddings", "boxes"), ("low_res_logits", "iou")


def _convert(module, example, shapes):
    """``ov.convert_model`` of a torch module traced once: OpenVINO's TorchScript decoder with ``check_trace`` off
    (the default re-runs the traced graph to compare it with eager; every export here is checked against torch
    by its own tests; NNCF-student encoder 30.6 -> 17.0 s, FP encoder 18.0 -> 10.7 s on a 2-core CPU, docs/notebook/2026-12-02.md §13)."""
    import openvino as ov
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    traced = TorchScriptPythonDecoder(module.eval(), example_input=example, trace_kwargs={"check_trace": False})
    return ov.convert_model(traced, example_input=example, input=shapes)


def convert_encoder(encoder, img_size: int, batch: int = 1):
    """``ov.convert_model`` of an image encoder module (FP, reparameterized, or an NNCF torch student), static input
    ``[batch, 3, S, S]`` (the traced graph keeps its shapes: a batch-1 IR does not reshape)."""
    import torch

    model = _convert(encoder, torch.zeros(batch, 3, img_size, img_size), [batch, 3, img_size, img_size])
    _name_ports(model, model.inputs, (ENCODER_INPUT,))
    _name_ports(model, model.outputs, (ENCODER_OUTPUT,))
    return model


def convert_decoder(sam_model, embed_shape: tuple[int, int, int], boxes: int):
    import torch

    from ..models.sam_model import SamDecoder

    example = (torch.zeros(1, *embed_shape), torch.tensor([[8.0, 8.0, 64.0, 64.0]] * boxes))
    model = _convert(SamDecoder(sam_model), example, [[1, *embed_shape], [boxes, 4]])
    _name_ports(model, model.inputs, DECODER_INPUTS)
    _name_ports(model, model.outputs, DECODER_OUTPUTS)
    return model


def _name_ports(model, ports, names) -> None:
    """Give each port its name, taken off any inner tensor the trace named alike (the decoder's ``iou`` variable):
    a name held twice is renamed (``iou_1``) when a loaded model is saved again, so a re-saved IR would differ."""
    wanted = set(names)
    for op in model.get_ops():
        for out in op.outputs():
            if out.get_names() & wanted:
                out.get_tensor().set_names(out.get_names() - wanted)
    for port, name in zip(ports, names):
        port.get_tensor().set_names({name})


def _rt_info(provenance: dict[str, Any]) -> dict[str, str]:
    keep = ("model", "weights_sha256", "method", "seed", "real_data_used", "num_images", "format", "distillation")
    return {k: json.dumps(provenance.get(k)) if not isinstance(provenance.get(k), str) else provenance[k]
            for k in keep if k in provenance}


def count_ops(model, type_name: str) -> int:
    return sum(1 for op in model.get_ops() if op.get_type_name() == type_name)


_FUSED_INTO = ("Convolution", "GroupConvolution", "MatMul")


def integer_weight_constants(model, types: tuple[str, ...] = ("u8", "i8")) -> int:
    """Constants stored as integers of the element ``types`` (8-bit by default; ``("u4", "i4")`` for INT4): the INT8
    weights of a quantized IR or the low-bit weights of ``nncf.compress_weights``."""
    return sum(1 for op in model.get_ops()
               if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in types)


def with_fp16_constants(model, min_bytes: int = 16384):
    """A copy of ``model`` whose large f32 constants are stored as f16 (a Constant + Convert to f32, folded back at
    compile time). ``save_model(compress_to_fp16=True)`` does this for float IRs but leaves a quantized IR's float
    constants f32 (a distilled INT8 LiteMedSAM encoder: its float MLP fc2 weights and attention-bias tables, 11.2 of
    its 15.1 MiB). Constants feeding a FakeQuantize, and small ones (ranges, scales, biases), stay as they are."""
    import openvino as ov
    import openvino.opset13 as ops

    model = model.clone()
    for op in model.get_ops():
        if op.get_type_name() != "Constant" or op.get_element_type() != ov.Type.f32 or op.get_byte_size() < min_bytes:
            continue
        targets = list(op.output(0).get_target_inputs())
        if any(t.get_node().get_type_name() == "FakeQuantize" for t in targets):
            continue
        stored = ops.convert(ops.constant(op.get_data().astype(np.float16)), ov.Type.f32)
        for target in targets:
            target.replace_source_output(stored.output(0))
    return model


def module_of(node_name: str) -> str | None:
    """The torch module a converted node came from: ``__module.layers.0.conv1.bn/aten::...`` -> ``layers.0.conv1.bn``."""
    if not node_name.startswith("__module."):
        return None
    return node_name[len("__module."):].split("/", 1)[0]


def module_nodes(model, patterns: list[str]) -> list[str]:
    """Friendly names of the nodes of ``model`` converted from torch modules whose name matches one of
    ``patterns`` (``re.search``). ``convert_model`` folds BatchNorm into the convolution before it and renames
    that convolution (``Multiply_123``), so a matched node's unnamed Convolution/GroupConvolution/MatMul
    producer is included too: ignoring a Conv2d_BN module keeps its convolution float."""
    from ..recipes import matches_any

    ignored = matches_any(patterns)
    names = []
    for op in model.get_ordered_ops():
        module = module_of(op.get_friendly_name())
        if module is None or not ignored(module):
            continue
        names.append(op.get_friendly_name())
        for port in op.inputs():
            producer = port.get_source_output().get_node()
            if producer.get_type_name() in _FUSED_INTO and module_of(producer.get_friendly_name()) is None:
                names.append(producer.get_friendly_name())
    return list(dict.fromkeys(names))


def encoder_kind(model) -> str:
    """What an encoder IR computes in: ``int8`` (FakeQuantize: INT8 activations), ``int8_weights`` / ``int4_weights``
    (low-bit weight constants, float activations) or ``float``."""
    if count_ops(model, "FakeQuantize"):
        return "int8"
    if integer_weight_constants(model, ("u4", "i4")):
        return "int4_weights"
    return "int8_weights" if integer_weight_constants(model) else "float"


MLP_OUTPUT_INPUTS = r"\.mlp\.act[./]"  # the GELU outputs feeding each MLP's second Linear (TinyViT fc2, SAM ViT lin2)


def _constant_data(output) -> np.ndarray | None:
    """The value of a Constant (or of a Convert of one, as compressed IRs store ranges) feeding ``output``; None
    for anything computed."""
    node = output.get_node()
    if node.get_type_name() == "Convert" and node.input_value(0).get_node().get_type_name() == "Constant":
        return node.input_value(0).get_node().get_data().astype(np.float32)
    return node.get_data().astype(np.float32) if node.get_type_name() == "Constant" else None


def _fake_quantize_map(op):
    """A FakeQuantize's float map without its rounding and clamping: None where the output range equals the input
    range (the identity), else the output of ``x · scale + shift`` (per channel where the ranges are). OpenVINO's
    transformations fold a Multiply / Add next to a quantizer into its ranges (e.g. a LayerNorm's affine in front
    of the neck's quantizer: per-channel input ranges, one output range), so such a quantizer is also that map."""
    from openvino import opset13 as ops

    lo_in, hi_in, lo_out, hi_out = (_constant_data(op.input_value(i)) for i in (1, 2, 3, 4))
    if any(v is None for v in (lo_in, hi_in, lo_out, hi_out)):
        raise ValueError(f"{op.get_friendly_name()}: its ranges are not constants; cannot bypass it exactly")
    if np.array_equal(*np.broadcast_arrays(lo_in, lo_out)) and np.array_equal(*np.broadcast_arrays(hi_in, hi_out)):
        return None
    scale = (hi_out - lo_out) / (hi_in - lo_in)
    shift = lo_out - lo_in * scale
    x = op.input_value(0)
    return ops.add(ops.multiply(x, ops.constant(scale.astype(np.float32))), ops.constant(shift.astype(np.float32))).output(0)


def bypass_activation_quantizers(model, pattern: str | None) -> int:
    """Take every activation FakeQuantize (one not on a constant: NNCF's weights are integer constants) whose own
    name or a consumer's name matches ``pattern`` out of ``model``, in place: those activations stay float, the
    weights stay as quantized. A quantizer whose output range is its input range is replaced by its input; one whose
    ranges differ (a Multiply / Add folded into it) by that affine map of its input, so nothing but the rounding
    and clamping goes. Returns how many were bypassed."""
    if pattern is None:
        return 0
    rx = re.compile(pattern)
    count = 0
    for op in list(model.get_ordered_ops()):
        if op.get_type_name() != "FakeQuantize" or op.input_value(0).get_node().get_type_name() == "Constant":
            continue
        consumers = [t.get_node().get_friendly_name() for t in op.output(0).get_target_inputs()]
        if not any(rx.search(name) for name in [op.get_friendly_name(), *consumers]):
            continue
        mapped = _fake_quantize_map(op)
        source = op.input_value(0) if mapped is None else mapped
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(source)
        count += 1
    return count


_FOLDABLE = {"Convert", "Multiply", "Subtract", "Add", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}


def dequantize_weights(model) -> int:
    """Replace every integer weight constant and its decompression (``Convert`` -> ``Subtract`` -> ``Multiply``, and
    the reshapes after it) by one f32 constant of the same values, in place. The activation quantizers stay, so the
    CPU plugin finds no integer weights to pair them with and computes each quantized layer as its fake-quantized
    float math: the exact INT8 result (int32 accumulation) that a VNNI / AMX CPU computes, on any CPU — on an AVX2
    CPU that is what 8-bit weights would give without its saturating u8 x s8 pair sums. For scoring only: the IR
    grows to f32 weights and runs at float speed. Returns how many weight constants were folded."""
    from openvino import opset13 as ops

    count = 0
    for op in list(model.get_ordered_ops()):
        if op.get_type_name() != "Convert" or op.input_value(0).get_node().get_type_name() != "Constant":
            continue
        source = op.input_value(0).get_node()
        if not source.get_output_element_type(0).is_integral():
            continue
        node = op  # follow the single-consumer chain of constant-only ops
        while True:
            targets = list(node.output(0).get_target_inputs())
            nxt = targets[0].get_node() if len(targets) == 1 else None
            if nxt is None or nxt.get_type_name() not in _FOLDABLE or any(
                    i != targets[0].get_index() and _constant_data(nxt.input_value(i)) is None
                    for i in range(nxt.get_input_size())):
                break
            node = nxt
        values = node.output(0)
        folded = _evaluate_constant(values)
        for target in list(values.get_target_inputs()):
            target.replace_source_output(ops.constant(folded.astype(np.float32)).output(0))
        count += 1
    model.validate_nodes_and_infer_types()
    return count


_WEIGHT_CONSUMERS = {"MatMul", "Convolution", "GroupConvolution"}


def round_to_bf16(a: np.ndarray) -> np.ndarray:
    """f32 values rounded to the nearest bf16 (ties to even), as f32: what converting to bf16 and back gives."""
    bits = np.array(a, dtype=np.float32).view(np.uint32)  # a copy of the same shape (0-d stays 0-d)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32).reshape(np.shape(a))


# operations a CPU plugin runs as post-ops of the operation before them (oneDNN fuses them into a convolution's,
# a matrix product's or a normalisation's epilogue: computed on its f32 result before it is stored)
_POST_OPS = {"Add", "Multiply", "Subtract", "Divide", "Gelu", "Relu", "Clamp", "Sigmoid", "Swish", "HSwish", "Tanh",
             "FakeQuantize"}


def _post_op(out):
    """The one consumer of ``out`` if it is an operation a CPU plugin fuses into ``out``'s producer (a post-op whose
    other inputs are constants), else None."""
    targets = list(out.get_target_inputs())
    if len(targets) != 1 or out.get_node().get_output_size() != 1:
        return None
    node, index = targets[0].get_node(), targets[0].get_index()
    if node.get_type_name() not in _POST_OPS or any(
            i != index and _constant_data(node.input_value(i)) is None for i in range(node.get_input_size())):
        return None
    return node


def emulate_bf16(model, inputs: bool = True, fusions: bool = True) -> int:
    """Make ``model`` compute, pinned to f32, what a bf16 CPU (AMX, AVX-512 BF16) computes at OpenVINO's default
    precision, in place: every f32 tensor stored between operations is rounded to bf16 (a ``Convert`` to bf16 and
    back after its producer; the parameters too where ``inputs``), and so is every f32 weight, while each operation
    computes in f32 — as oneDNN does (bf16 operands, f32 accumulation, bf16 results). With ``fusions`` a result that
    goes only into a post-op (a bias, a scale, an activation, a quantizer: ``_POST_OPS`` with constant other inputs) is
    not stored, so not rounded, and that post-op's constants stay f32, as in the plugin's fused kernels; without, every
    operation's result is rounded (an upper bound of the rounding). What runs as integers on such a CPU stays exact: a
    FakeQuantize's output (the integer grid of an INT8 layer's input), its range constants and the weights of the
    layers it feeds (fold integer weights to f32 first with ``dequantize_weights``). For scoring only
    (docs/notebook/2026-12-08.md §47). Returns how many tensors it rounds."""
    import openvino as ov
    from openvino import opset13 as ops

    f32 = ov.Type.f32
    if integer_weight_constants(model):
        raise ValueError("the model has integer weights: fold them with dequantize_weights first (their "
                         "decompression would be rounded as if it were float math)")
    exact: set[str] = set()  # constants that stay f32: quantizer ranges, INT8 weights, fused post-ops' operands
    unrounded: set[str] = set()  # names of the operations whose result goes unstored into a fused post-op
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            exact.update(op.input_value(i).get_node().get_friendly_name() for i in range(5))
        elif kind in _WEIGHT_CONSUMERS and op.input_value(0).get_node().get_type_name() == "FakeQuantize":
            exact.add(op.input_value(1).get_node().get_friendly_name())
        if fusions and kind not in ("Constant", "Parameter") and (post := _post_op(op.output(0))) is not None:
            unrounded.add(op.get_friendly_name())
            exact.update(post.input_value(i).get_node().get_friendly_name() for i in range(post.get_input_size()))
    count = 0
    for op in list(model.get_ordered_ops()):
        kind = op.get_type_name()
        if kind == "Constant":
            if op.get_output_element_type(0) == f32 and op.get_friendly_name() not in exact:
                rounded = ops.constant(round_to_bf16(op.get_data()))
                rounded.set_friendly_name(op.get_friendly_name())
                for target in list(op.output(0).get_target_inputs()):
                    target.replace_source_output(rounded.output(0))
                count += 1
            continue
        if kind in ("Result", "FakeQuantize") or (kind == "Parameter" and not inputs) or op.get_friendly_name() in unrounded:
            continue
        for out in op.outputs():
            targets = list(out.get_target_inputs())
            if out.get_element_type() != f32 or not targets:
                continue
            rounded = ops.convert(ops.convert(out, "bf16"), "f32")
            for target in targets:
                target.replace_source_output(rounded.output(0))
            count += 1
    model.validate_nodes_and_infer_types()
    return count


def _evaluate_constant(output) -> np.ndarray:
    """The value of an output computed from constants alone (compiled on the CPU at f32)."""
    import openvino as ov

    graph = ov.Model([ov.opset13.result(output)], [], "constant")
    return ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({})[0]


def candidate_files(name: str, primary: str) -> tuple[str, str]:
    """(xml, bin) of encoder candidate ``name``: ``encoder.xml`` for the export's primary encoder (what
    ``benchmark_app`` and older readers take), ``encoder.<name>.xml`` for the others."""
    stem = "encoder" if name == primary else f"encoder.{name}"
    return f"{stem}.xml", f"{stem}.bin"


def save_export(folder: str | Path, encoder, decoder, spec, calibration: dict[str, Any], recipe: dict[str, Any],
                report: dict[str, Any] | None = None, candidates: dict[str, Any] | None = None,
                primary: str | None = None, probe: dict[str, np.ndarray] | None = None,
                fp16_storage: bool = False, previous: dict[str, Any] | None = None) -> Path:
    """Write the IR pair and manifest into ``folder`` via a staging folder: nothing half-written on failure.

    ``candidates``: further encoders (``{name: ov.Model}``) that share the decoder, written as
    ``encoder.<name>.xml``; ``primary`` names ``encoder`` (default: its kind, ``encoder_kind``). ``probe``: the
    synthetic probe (``export.probe.make_probe``), written as ``probe.npz``; with it every candidate's FP-fidelity is
    measured now, on this CPU (``export_fidelity``; the manifest names the CPU), and the measurement at OpenVINO's
    default config is left in the export's selection cache, so an ``OVSamPredictor`` opened on this CPU starts
    without measuring. ``previous``: the manifest the models were loaded from; a candidate whose files, decoder and
    probe are byte-identical to it and that was measured on this CPU and OpenVINO keeps its recorded fidelity
    (re-saving a loaded export measures nothing again). ``fp16_storage``: float constants stored as FP16 in every IR
    (half their bytes; the CPU plugin computes in f32 / bf16 all the same; integer weights are unchanged)."""
    import openvino as ov

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    primary = primary or encoder_kind(encoder)
    encoders = {primary: encoder, **(candidates or {})}
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
    try:
        for model in (*encoders.values(), decoder):
            for key, value in _rt_info(calibration).items():
                model.set_rt_info(value, ["dfq_sam", key])
            model.set_rt_info(recipe.get("name", "custom"), ["dfq_sam", "recipe"])
        info = {}
        for name, model in encoders.items():
            xml, bin_ = candidate_files(name, primary)
            model.set_rt_info(name, ["dfq_sam", "candidate"])
            # save_model compresses a float IR itself and ignores the flag for a quantized one
            quantized = count_ops(model, "FakeQuantize") or integer_weight_constants(model, ("u8", "i8", "u4", "i4"))
            ov.save_model(with_fp16_constants(model) if fp16_storage and quantized else model, staging / xml,
                          compress_to_fp16=fp16_storage)
            info[name] = {"xml": xml, "bin": bin_, "kind": encoder_kind(model),
                          "mib": (staging / bin_).stat().st_size / 2**20}
        ov.save_model(decoder, staging / "decoder.xml", compress_to_fp16=fp16_storage)
        at_default, core = None, ov.Core() if probe is not None else None  # one core: measurement and cache key
        if probe is not None:
            from .probe import save_probe

            save_probe(staging, probe)
        files = sorted(p.name for p in staging.iterdir())
        file_digests = digests(staging, tuple(files))
        if probe is not None:
            at_default = _measure_candidates(core, staging, info, file_digests, previous)
        manifest = {
            "format": FORMAT,
            "files": file_digests,  # checked by OVSamPredictor and `dfq-sam verify` before use
            "spec": spec.to_dict(),
            "decoder_boxes": int(decoder.inputs[1].get_partial_shape()[0].get_length()),
            "encoder_int8": count_ops(encoder, "FakeQuantize") > 0,
            "decoder_int8": count_ops(decoder, "FakeQuantize") > 0,
            "encoder_int8_weights": integer_weight_constants(encoder) > 0,  # INT8 (or weight-compressed) weights
            "decoder_int8_weights": integer_weight_constants(decoder) > 0,
            "encoder_int4_weights": integer_weight_constants(encoder, ("u4", "i4")) > 0,  # INT4 weight compression
            "decoder_int4_weights": integer_weight_constants(decoder, ("u4", "i4")) > 0,
            "primary": primary,
            "fp16_storage": fp16_storage,
            "candidates": info,
            "calibration": calibration,
            "recipe": recipe,
            "report": report or {},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_default))
        for f in files:
            os.replace(staging / f, folder / f)
        os.replace(staging / MANIFEST, folder / MANIFEST)  # last: its presence marks a complete export
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if at_default is not None:  # the predictor's own measurement on this CPU, made already
        from ..runtime.candidates import SelectionCache, box_key

        SelectionCache(folder).put(box_key(core, "CPU", None, manifest), at_default)
    return folder


def _measure_candidates(core, staging: Path, info: dict[str, dict[str, Any]], file_digests: dict[str, dict[str, Any]],
                        previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """``export_fidelity`` of the candidates in ``info`` (filled in place, with the CPU it was measured on), reusing
    ``previous``' figures for byte-identical candidates measured on this CPU; the default-config measurement when
    every candidate was measured now (else None)."""
    from ..runtime.candidates import export_fidelity, measuring_box
    from .probe import PROBE, load_probe

    box = measuring_box(core)
    old_files, old = (previous or {}).get("files", {}), (previous or {}).get("candidates", {})

    def same(name: str) -> bool:
        return name in old_files and old_files[name]["sha256"] == file_digests[name]["sha256"]

    reused = {}
    if all(same(f) for f in ("decoder.xml", "decoder.bin", PROBE)):
        reused = {name: old[name]["export_fidelity"] for name, c in info.items()
                  if name in old and old[name].get("fidelity_measured_on") == box and "export_fidelity" in old[name]
                  and (old[name]["xml"], old[name]["bin"]) == (c["xml"], c["bin"]) and same(c["xml"]) and same(c["bin"])}
    todo = {name: c for name, c in info.items() if name not in reused}
    found, at_default = export_fidelity(staging, todo, load_probe(staging), rounds=2, core=core) if todo else ({}, None)
    for name in info:
        info[name].update(export_fidelity=reused.get(name) or found[name], fidelity_measured_on=box)
    return at_default if not reused else None


def candidates_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The encoder candidates an export holds (an export made before candidates existed: its one encoder)."""
    if manifest.get("candidates"):
        return manifest["candidates"]
    kind = "int8" if manifest.get("encoder_int8") else "int8_weights" if manifest.get("encoder_int8_weights") else "float"
    return {kind: {"xml": "encoder.xml", "bin": "encoder.bin", "kind": kind}}


def read_manifest(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    missing = [f for f in (MANIFEST, "encoder.xml", "encoder.bin", "decoder.xml", "decoder.bin")
               if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a dfq-sam OpenVINO export (missing {', '.join(missing)}); "
                                f"make one with `dfq-sam quantize --out {folder}`")
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{folder / MANIFEST} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def _default(obj: Any) -> Any:
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return str(obj)
