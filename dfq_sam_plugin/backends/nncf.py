"""NNCF adapter: reparameterize in torch -> ``ov.convert_model`` -> ``nncf.quantize(ov.Model, ...)`` -> IR.

NNCF's torch backend is avoided on purpose (docs/architecture.md#decisions-and-their-measured-reasons: its C++ extension build and its quantized torch
SAM does not convert). Two entry points:

- ``reparameterize_sam(sam, dataset)``: the reparameterized-scale step on its own, for NNCF users who then
  call ``nncf.quantize`` themselves on ``ov.convert_model(sam.model.image_encoder)``;
- ``quantize_sam(sam, dataset, recipe)``: the whole flow from a recipe, encoder (and optionally decoder)
  quantized, returning OpenVINO models ready for ``save`` / ``OVSamPredictor``.

``dfq_sam_plugin.quantize`` calls ``quantize_sam`` for OpenVINO recipes.
"""

from __future__ import annotations

__all__ = ["QuantizedSam", "calibration_inputs", "compress_weights", "distill_sam", "export_float", "nncf_quantize",
           "nncf_student", "quantize_sam", "reparameterize_sam"]

import copy
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..models.spec import SamBundle
from ..recipes import Recipe, as_recipe, load_recipe
from ..result import QuantizationResult

_log = logging.getLogger("dfq_sam_plugin")


def reparameterize_sam(sam: SamBundle, dataset, bits: int = 8, subset_size: int | None = None,
                       strength: float = 1.0, depthwise: bool = False, letterbox: float = 0.0,
                       inputs: list[np.ndarray] | None = None) -> tuple[SamBundle, dict[str, Any]]:
    """A reparameterized copy of ``sam`` (the original is untouched) and a summary of the folds. ``inputs``: the
    encoder inputs already made from ``dataset`` (``calibration_inputs``), instead of making them again."""
    from ..reparam import reparameterize

    dataset.check_model(sam)
    model = copy.deepcopy(sam.model).eval()
    if inputs is None:
        batches = dataset.torch_batches(1, limit=subset_size, letterbox=letterbox)
    else:
        import torch

        batches = (torch.from_numpy(x) for x in inputs)
    result = reparameterize(model.image_encoder, batches, bits=bits, strength=strength, depthwise=depthwise)
    return replace(sam, model=model, extra={**sam.extra, "reparameterization": result}), result.summary()


def _reparameterize_per_recipe(sam: SamBundle, dataset, recipe: Recipe, report: dict[str, Any],
                               inputs: list[np.ndarray]) -> SamBundle:
    """The recipe's reparameterization step (``reparam*`` keys) on the calibration ``inputs``: a folded copy, its
    summary in ``report``; or ``sam`` itself when the recipe has ``reparam: false``."""
    rep = recipe.reparam
    if not rep.enabled:
        return sam
    work, report["reparam"] = reparameterize_sam(sam, dataset, bits=recipe.bits.activation_bits,
                                                 strength=rep.strength, depthwise=rep.equalize_depthwise,
                                                 inputs=inputs)
    return work


def calibration_inputs(dataset, recipe: dict[str, Any]) -> list[np.ndarray]:
    """The encoder inputs NNCF calibrates on: the first ``subset_size`` images (+ letterboxed copies)."""
    from ..data.inputs import encoder_inputs

    c = as_recipe(recipe).calibration
    return list(encoder_inputs(dataset.pixels, dataset.spec, c.subset_size, c.letterbox, c.support))


def _advanced(recipe: Recipe):
    """NNCF's AdvancedQuantizationParameters from the recipe (OverflowFix, activation ranges, SmoothQuant)."""
    from nncf import OverflowFix
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    overflow = {"enable": OverflowFix.ENABLE, "disable": OverflowFix.DISABLE,
                "first_layer_only": OverflowFix.FIRST_LAYER}[recipe.nncf.overflow_fix]
    activation_range = recipe.calibration.activation_range
    ranges = {} if activation_range == "default" else {
        "activations_range_estimator_params": getattr(RangeEstimatorParametersSet, activation_range.upper())}
    return AdvancedQuantizationParameters(
        overflow_fix=overflow,
        **ranges,
        smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=recipe.nncf.smooth_quant_alpha),
    )


def ignored_nodes(ov_model, recipe: dict[str, Any]) -> list[str]:
    """OpenVINO node names converted from the recipe's ``ignored_modules`` (none without the key); a pattern list
    that matches no node is an error."""
    from ..export.openvino import module_nodes

    patterns = as_recipe(recipe).calibration.ignored_modules
    if not patterns:
        return []
    names = module_nodes(ov_model, patterns)
    if not names:
        raise ValueError(f"recipe key 'ignored_modules' {patterns} matches no node of the model")
    return names


def nncf_quantize(ov_model, dataset, recipe: dict[str, Any], validation=None):
    """``nncf.quantize`` with the recipe's knobs mapped to NNCF's own parameters; with ``validation`` (a
    ``SyntheticFidelity``), ``nncf.quantize_with_accuracy_control`` with the recipe's ``max_drop``."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    recipe = as_recipe(recipe)
    n, subset = recipe.nncf, recipe.calibration.subset_size
    ignored = None
    names = ignored_nodes(ov_model, recipe)
    if n.ignored_types or n.ignored_patterns or names:
        ignored = nncf.IgnoredScope(names=names, types=list(n.ignored_types), patterns=list(n.ignored_patterns),
                                    validate=False)
    common = dict(
        preset=nncf.QuantizationPreset(n.preset),
        target_device=nncf.TargetDevice[n.target_device],
        subset_size=min(subset, dataset.get_length() or subset),
        fast_bias_correction=recipe.calibration.fast_bias_correction,
        model_type=nncf.ModelType.TRANSFORMER,
        ignored_scope=ignored,
    )
    if validation is None:
        return nncf.quantize(ov_model, dataset, advanced_parameters=_advanced(recipe), **common)
    restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=n.max_reverted,
                                                  ranking_subset_size=n.ranking_subset_size)
    return nncf.quantize_with_accuracy_control(
        ov_model, dataset, validation.dataset(), validation, max_drop=float(n.max_drop),
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=_advanced(recipe),
        advanced_accuracy_restorer_parameters=restorer, **common)


def compress_weights(ov_model, recipe: dict[str, Any], inputs: list | None = None):
    """Low-bit weights with float activations: ``nncf.compress_weights``. INT8_ASYM per output channel, or INT4
    (sym / asym) per group of input channels (``weight_compression_mode``, ``_group_size``), at most
    ``weight_compression_ratio`` of the weights in INT4; ``weight_compression_algorithms`` (scale estimation, GPTQ,
    AWQ) fit the INT4 weights on ``inputs`` (synthetic encoder inputs), otherwise no data is used. The recipe's
    ``ignored_modules`` stay float here too."""
    import nncf

    recipe = as_recipe(recipe)
    names = ignored_nodes(ov_model, recipe)
    ignored = nncf.IgnoredScope(names=names, validate=False) if names else None
    wc = recipe.weight_compression
    mode = wc.mode
    options: dict[str, Any] = {}
    if mode != "int8_asym":
        algorithms = wc.algorithms
        options = {"group_size": wc.group_size, "ratio": wc.ratio, **{name: True for name in algorithms}}
        if algorithms:
            if not inputs:
                raise ValueError(f"weight_compression_algorithms {algorithms} need calibration inputs")
            options.update(dataset=nncf.Dataset(inputs), subset_size=len(inputs))
    return nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode(mode), ignored_scope=ignored, **options)


def decoder_dataset(dataset, sam: SamBundle, boxes: int, limit: int):
    """Decoder calibration inputs from the FP encoder and the stored boxes (first ``boxes`` of each image)."""
    import nncf

    items = []
    for item in dataset.decoder_inputs(sam, limit=limit):
        b = item["boxes"]
        b = np.concatenate([b, np.repeat(b[-1:], max(0, boxes - len(b)), axis=0)])[:boxes]
        items.append({"image_embeddings": item["image_embeddings"], "boxes": b.astype(np.float32)})
    return nncf.Dataset(items)


@dataclass
class QuantizedSam(QuantizationResult):
    """The NNCF flow's result: OpenVINO encoder (and candidates) + decoder models, recipe, calibration facts."""

    encoder: Any  # ov.Model
    decoder: Any  # ov.Model
    sam: SamBundle
    calibration: dict[str, Any]
    recipe: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    candidates: dict[str, Any] = field(default_factory=dict)  # further encoders (ov.Model) sharing the decoder
    probe: dict[str, np.ndarray] | None = None  # synthetic probe the box measures candidates with
    loaded_from: dict[str, Any] | None = field(default=None, repr=False)  # the manifest ``load`` read, if loaded

    def save(self, folder: str | Path) -> Path:
        from ..export.openvino import save_export

        return save_export(folder, self.encoder, self.decoder, self.sam.spec, self.calibration, self.recipe,
                           self.report, candidates=self.candidates, probe=self.probe,
                           fp16_storage=bool(self.candidates), previous=self.loaded_from)

    @classmethod
    def load(cls, folder: str | Path, sam: SamBundle) -> QuantizedSam:
        """A saved export back as OpenVINO models (the primary encoder, the other candidates, the decoder)."""
        import openvino as ov

        from ..export.openvino import candidates_of, read_manifest
        from ..export.probe import load_probe

        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest["calibration"].get("model") not in (None, sam.name):
            raise ValueError(f"{folder} quantizes {manifest['calibration'].get('model')}, not {sam.name}")
        core = ov.Core()
        probe = load_probe(folder)  # as make_probe gives it (masks bit-packed), so that save() writes it unchanged
        if probe is not None:
            probe["reference"] = np.packbits(probe["reference"], axis=-1)
        candidates = {name: core.read_model(folder / c["xml"]) for name, c in candidates_of(manifest).items()
                      if c["xml"] != "encoder.xml"}
        return cls(core.read_model(folder / "encoder.xml"), core.read_model(folder / "decoder.xml"), sam,
                   manifest["calibration"], manifest["recipe"], manifest.get("report", {}), candidates, probe,
                   loaded_from=manifest)


def encoder_candidates(sam: SamBundle, dataset, recipe: dict[str, Any], encoder, fp=None
                       ) -> tuple[dict[str, Any], Any]:
    """The recipe's further encoder candidates (``candidates``: ``float``, ``int8_weights``, ``int8_fc2_float``; the
    kind of the recipe's own ``encoder`` is not repeated) and the synthetic probe to choose among them with (None
    without). ``fp``: the FP encoder IR if the flow converted it already (else converted here). ``int8_fc2_float`` is
    derived from an INT8 ``encoder`` (its MLP-output activation quantizers bypassed: the error split's largest share,
    docs/notebook/2026-12-06.md §32); with an encoder that has none it is left out, with a warning."""
    from ..export.openvino import (
        MLP_OUTPUT_INPUTS,
        bypass_activation_quantizers,
        convert_encoder,
        encoder_kind,
    )
    from ..export.probe import make_probe

    recipe = as_recipe(recipe)
    wanted = [k for k in recipe.export.candidates if k != encoder_kind(encoder)]
    found = {}
    if "int8_fc2_float" in wanted:
        model = encoder.clone()
        if bypass_activation_quantizers(model, MLP_OUTPUT_INPUTS):
            found["int8_fc2_float"] = model
        else:
            _log.warning("candidate int8_fc2_float left out: the %s encoder has no activation quantizer on the MLP "
                         "outputs", encoder_kind(encoder))
    for kind in (k for k in wanted if k in ("float", "int8_weights")):
        fp = fp if fp is not None else convert_encoder(sam.model.image_encoder, sam.spec.img_size)
        model = fp.clone()
        if kind == "int8_weights":
            model = compress_weights(model, recipe.replace(weight_compression_mode="int8_asym",
                                                           weight_compression_algorithms=[],
                                                           weight_compression_ratio=1.0))
        found[kind] = model
    return (found, make_probe(sam, dataset)) if found else ({}, None)


def calibration_summary(dataset) -> dict[str, Any]:
    """The calibration set's provenance facts an export records (model, weights, method, seed, real_data_used...)."""
    p = dataset.provenance
    keys = ("model", "weights_sha256", "method", "seed", "real_data_used", "num_images", "data_sources", "format",
            "parts")
    return {k: p[k] for k in keys if k in p}


def quantize_sam(sam: SamBundle, dataset, recipe: dict[str, Any] | str | Path = "recipes/openvino_int8_cpu.yaml",
                 device: str = "cpu", work_dir: str | Path | None = None, progress: bool = False) -> QuantizedSam:
    """The whole NNCF flow for one SAM and one calibration set (a ``DFQSAMDataset``). A recipe with
    ``distill_steps > 0`` quantizes through NNCF's torch backend and distils on ``device`` (checkpoints in
    ``work_dir``, resumable) before ``ov.convert_model``; otherwise ``nncf.quantize`` runs on the OpenVINO model."""
    from ..export.openvino import convert_decoder, convert_encoder, count_ops

    recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else as_recipe(recipe)
    if recipe.backend != "openvino":
        raise ValueError(f"recipe {recipe.name!r} is for backend {recipe.backend!r}; use the Brevitas flow")
    dataset.check_model(sam)
    if recipe.distill.steps or recipe.nncf.backend == "torch":
        if sam.spec.family == "sam":
            # found 2026-12-06: the trace of the NNCF-wrapped encoder runs SAM's relative-position arithmetic as
            # tensor ops, which moves NNCF's hooks onto integer tensors ("fake_quantize ... not implemented for
            # 'Long'") after the whole PTQ; say so before any work
            raise NotImplementedError(
                f"{sam.name}: NNCF's torch backend (distill_steps > 0 or nncf_backend: torch) cannot yet export a "
                "SAM ViT encoder to OpenVINO; use nncf_backend: openvino without distillation (PTQ), or the "
                "Brevitas recipes for training-based flows")
        return _quantize_torch(sam, dataset, recipe, device, work_dir, progress)
    timings, report = {}, {}
    weights_only = "encoder" in recipe.weight_compression.parts
    t0 = time.perf_counter()
    work = sam
    if not weights_only:  # calibration inputs: subset_size images + their letterboxed copies, all of them
        inputs = calibration_inputs(dataset, recipe)
        work = _reparameterize_per_recipe(sam, dataset, recipe, report, inputs)
    timings["reparam_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder = convert_encoder(work.model.image_encoder, sam.spec.img_size)
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, recipe.export.decoder_boxes)
    timings["convert_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    validation = None
    if recipe.nncf.accuracy_control:
        from ..eval.synthetic_fidelity import SyntheticFidelity

        validation = SyntheticFidelity(sam, dataset, limit=recipe.nncf.validation_images)
    import nncf

    fp = None
    if weights_only:
        fp = encoder.clone()  # the float candidate: no reparameterization on this path, the same conversion
        data = calibration_inputs(dataset, recipe) if recipe.weight_compression.algorithms else None
        encoder = compress_weights(encoder, recipe, data)
    else:
        encoder = nncf_quantize(encoder, nncf.Dataset(inputs), recipe.replace(subset_size=len(inputs)), validation)
    timings["encoder_quantize_s"] = time.perf_counter() - t0
    encoder = compensate_encoder(encoder, sam, dataset, recipe, report)
    decoder = _decoder_weights(decoder, recipe)
    if validation is not None:
        import openvino as ov

        report["synthetic_fidelity"] = validation(ov.Core().compile_model(encoder, "CPU"),
                                                  range(len(validation)))[0]
    if recipe.calibration.quantize_decoder:
        t0 = time.perf_counter()
        data = decoder_dataset(dataset, sam, recipe.export.decoder_boxes, recipe.calibration.subset_size)
        decoder = nncf_quantize(decoder, data, recipe.replace(ignored_modules=[]))  # they name encoder modules
        timings["decoder_quantize_s"] = time.perf_counter() - t0
    report.update(timings=timings, encoder_fake_quantize=count_ops(encoder, "FakeQuantize"),
                  decoder_fake_quantize=count_ops(decoder, "FakeQuantize"))
    t0 = time.perf_counter()
    candidates, probe = encoder_candidates(sam, dataset, recipe, encoder, fp)
    timings["candidates_s"] = time.perf_counter() - t0
    return QuantizedSam(encoder, decoder, sam, calibration_summary(dataset), recipe, report, candidates, probe)


def compensate_encoder(encoder, sam: SamBundle, dataset, recipe: Recipe, report: dict[str, Any]):
    """The encoder IR with the recipe's closed-form block corrections (``compensate``; unchanged with ``none``),
    fitted on the calibration inputs against the FP torch encoder (``backends/ov_compensate.py``); what it did goes
    into ``report["compensate"]``."""
    if recipe.compensate.mode == "none":
        return encoder
    from ..recipes import compensate_config
    from .ov_compensate import compensate_ir

    encoder, result = compensate_ir(encoder, sam.model.image_encoder, calibration_inputs(dataset, recipe),
                                    compensate_config(recipe))
    report["compensate"] = {**result.summary(), "data": "synthetic only", "real_data_used": False}
    report.setdefault("timings", {})["compensate_s"] = result.seconds
    return encoder


def _decoder_weights(decoder, recipe: Recipe):
    """The decoder with INT8 weights where the recipe's ``weight_compression`` lists it (else unchanged)."""
    if "decoder" not in recipe.weight_compression.parts:
        return decoder
    return compress_weights(decoder, recipe.replace(ignored_modules=[], weight_compression_algorithms=[]))


def _quantize_torch(sam: SamBundle, dataset, recipe: Recipe, device: str, work_dir, progress: bool
                    ) -> QuantizedSam:
    """NNCF's torch backend (PTQ, then distillation if the recipe asks) -> ``ov.convert_model``."""
    from ..export.openvino import convert_decoder, convert_encoder, count_ops

    student, _work, report = distill_sam(sam, dataset, recipe, device, work_dir, progress)
    t0 = time.perf_counter()
    encoder = convert_encoder(student, sam.spec.img_size)
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, recipe.export.decoder_boxes)
    report["timings"]["convert_s"] = time.perf_counter() - t0
    encoder = compensate_encoder(encoder, sam, dataset, recipe, report)
    report.update(encoder_fake_quantize=count_ops(encoder, "FakeQuantize"),
                  decoder_fake_quantize=count_ops(decoder, "FakeQuantize"))
    calibration = calibration_summary(dataset)
    if "distill" in report:
        calibration["distillation"] = {"steps": report["distill"]["steps"], "data": "synthetic only",
                                       "final_losses": report["distill"]["final_losses"], "real_data_used": False}
    decoder = _decoder_weights(decoder, recipe)
    candidates, probe = encoder_candidates(sam, dataset, recipe, encoder)
    return QuantizedSam(encoder, decoder, sam, calibration, recipe, report, candidates, probe)


def export_float(sam: SamBundle, folder: str | Path, decoder_boxes: int = 1) -> Path:
    """The FP32 IR pair (the float baseline for latency and for IR-vs-torch checks)."""
    from ..export.openvino import convert_decoder, convert_encoder, save_export

    encoder = convert_encoder(sam.model.image_encoder, sam.spec.img_size)
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, decoder_boxes)
    calib = {"model": sam.name, "weights_sha256": sam.weights_sha256, "method": "none (float)",
             "real_data_used": False}
    return save_export(folder, encoder, decoder, sam.spec, calib, {"name": "float32"})


# -- data-free distillation through NNCF's torch backend (docs/architecture.md#distillation-and-reconstruction) ---------------------------------------
# nncf.quantize(torch encoder) inserts NNCF's own FakeQuantize modules (the documented QAT path), the backend-free
# distill core trains them against the FP SAM on synthetic images, ov.convert_model turns the student into the
# IR. The INT8 encoder is chaotic (a 1e-6 input change moves its output ~9 %: rounding flips amplify), so NNCF's
# eager and export (traced FakeQuantize) paths, which differ by float ulps per quantizer, give masks that agree
# at the model's own self-agreement level, not bit for bit: docs/notebook/2026-11-25.md §9.


def torch_ignored_names(encoder, example, patterns: list[str]) -> list[str]:
    """NNCF torch-graph op names covered by the modules that ``patterns`` (``ignored_modules``) match.

    NNCF 3.4 names ops of modules reached through ``ModuleList`` iteration without their list scope
    (``layers.0.blocks.1.conv1`` runs ``conv1/c/conv2d/1``), so op names cannot be matched to module names
    directly; weight constants keep the full name. An op belongs to a matched module when one of its weights
    does. Within a run of matched ops that no unmatched weighted op interrupts (in execution order), the ops
    between them are ignored too, so the activations inside a float region (GELU, BatchNorm, residual adds) stay
    float; a pattern that matches modules spread over the network (``local_conv`` in every block) gives one
    short run per module, not one span from the first to the last."""
    import copy as _copy

    from nncf.torch.function_hook import wrap_model
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph

    from ..recipes import matches_any

    if not patterns:
        return []
    matched = matches_any(patterns)
    graph = build_nncf_graph(wrap_model(_copy.deepcopy(encoder)), example)
    ignored: list[str] = []
    run: list[str] = []  # ops since the first matched op of the current run
    last_hit = -1  # index in ``run`` of its last matched op
    for node in graph.topological_sort():
        if node.node_type in ("nncf_model_const", "nncf_model_input", "nncf_model_output"):
            continue
        weights = [e.from_node.node_name for e in graph.get_input_edges(node)
                   if e.from_node.node_type == "nncf_model_const" and e.from_node.node_name.endswith(".weight")]
        if weights and any(matched(w[: -len(".weight")]) for w in weights):
            run.append(node.node_name)
            last_hit = len(run) - 1
        elif weights:  # an unmatched weighted op ends the run
            ignored += run[: last_hit + 1]
            run, last_hit = [], -1
        elif last_hit >= 0:
            run.append(node.node_name)
    ignored += run[: last_hit + 1]
    if not ignored:
        raise ValueError(f"recipe key 'ignored_modules' {patterns} matches no weighted module of the encoder")
    return ignored


def is_nncf_quantizer(module) -> bool:
    """True for NNCF's torch FakeQuantize modules (what ``distill`` trains as quantizer parameters)."""
    from nncf.torch.quantization.layers import BaseQuantizer

    return isinstance(module, BaseQuantizer)


def _calibrated_student(sam: SamBundle, dataset, recipe: dict[str, Any]):
    """``nncf_student``'s PTQ itself."""
    import nncf

    recipe = as_recipe(recipe)
    dataset.check_model(sam)
    # NNCF compiles its torch quantization kernels on first use and gives up after 60 s, too short for a
    # 2-core machine's first build; a user's own setting wins
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")
    report: dict[str, Any] = {}
    arrays = calibration_inputs(dataset, recipe)
    work = _reparameterize_per_recipe(sam, dataset, recipe, report, arrays)
    encoder = work.model.image_encoder.eval()
    import torch

    inputs = [torch.from_numpy(x) for x in arrays]
    names = torch_ignored_names(encoder, inputs[0], recipe.calibration.ignored_modules)
    ignored = None
    if names or recipe.nncf.ignored_patterns:
        ignored = nncf.IgnoredScope(names=names, patterns=list(recipe.nncf.ignored_patterns), validate=False)
    student = nncf.quantize(encoder, nncf.Dataset(inputs), preset=nncf.QuantizationPreset(recipe.nncf.preset),
                            target_device=nncf.TargetDevice[recipe.nncf.target_device], subset_size=len(inputs),
                            model_type=nncf.ModelType.TRANSFORMER, ignored_scope=ignored,
                            advanced_parameters=_advanced(recipe))
    report["ignored_ops"] = len(names)
    return student, work, report


PTQ_FILE = "ptq.pt"


def _ptq_key(sam: SamBundle, dataset, recipe: Recipe) -> str:
    """What the PTQ student depends on: the model's weights, the calibration set's arrays and every recipe key but
    the distillation's (``distill_*``: they act after the PTQ)."""
    import hashlib
    import json

    h = hashlib.sha256(f"{sam.name}:{sam.weights_sha256}".encode())
    for array in (dataset.pixels, dataset.boxes):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(json.dumps({k: v for k, v in recipe.items() if not k.startswith("distill_")}, sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def nncf_student(sam: SamBundle, dataset, recipe: dict[str, Any], work_dir: str | Path | None = None):
    """(student encoder, reparameterized bundle, report): ``nncf.quantize`` on the (reparameterized) torch
    encoder with the recipe's knobs; the student holds NNCF's trainable FakeQuantize modules.

    With ``work_dir`` the student is kept in ``work_dir/ptq.pt`` (NNCF's ``get_config`` and the state dict, written
    whole or not at all) and, where that file was made from the same weights, set and recipe (``_ptq_key``), rebuilt
    from it with ``nncf.torch.load_from_config`` instead of calibrating: a resumed or finished distillation skips
    the PTQ (seconds on a CPU, minutes on a GPU for a large pool) and gets the same student to the bit. Another set or
    recipe makes a new PTQ student, which replaces the file."""
    import torch

    recipe = as_recipe(recipe)
    path = Path(work_dir) / PTQ_FILE if work_dir is not None else None
    key = _ptq_key(sam, dataset, recipe) if path is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)  # NNCF's config: our own file, as checkpoint.pt
        if saved.get("key") == key:
            import nncf.torch

            encoder = copy.deepcopy(sam.model.image_encoder).eval()
            student = nncf.torch.load_from_config(encoder, saved["config"])
            student.load_state_dict(saved["state"])
            floats = copy.deepcopy(sam.model.image_encoder)  # the reparameterized float encoder, from the same weights
            floats.load_state_dict({k: saved["state"][k] for k in floats.state_dict()})
            work = replace(sam, model=type(sam.model)(floats, sam.model.prompt_encoder, sam.model.mask_decoder))
            return student.eval(), work, {**saved["report"], "ptq_loaded_from": str(path)}
    student, work, report = _calibrated_student(sam, dataset, recipe)
    if path is not None:
        import nncf.torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{PTQ_FILE}.tmp")
        torch.save({"key": key, "config": nncf.torch.get_config(student), "state": student.state_dict(),
                    "report": report}, tmp)
        os.replace(tmp, path)
    return student, work, report


def distill_sam(sam: SamBundle, dataset, recipe: dict[str, Any] | str | Path, device: str = "cpu",
                work_dir: str | Path | None = None, progress: bool = True):
    """PTQ student (``nncf_student``), then ``recipe.distill.steps`` steps of data-free distillation.

    Returns (student, reparameterized bundle, report). ``work_dir`` holds ``ptq.pt`` (the PTQ student) and
    ``checkpoint.pt``: a run resumes from them, and a finished one (made on a GPU box, say) is only loaded; neither
    repeats the PTQ where ``ptq.pt`` was made from the same weights, set and recipe (``nncf_student``)."""
    from ..distill import Distiller
    from ..recipes import distill_config

    recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else as_recipe(recipe)
    t0 = time.perf_counter()
    student, work, report = nncf_student(sam, dataset, recipe, work_dir)
    report.setdefault("timings", {})["ptq_s"] = time.perf_counter() - t0
    if not recipe.distill.steps:  # PTQ through the torch backend only
        return student.eval(), work, report
    distiller = Distiller(sam, student, dataset.pixels, dataset.boxes, distill_config(recipe),
                          is_quantizer=is_nncf_quantizer, device=device)
    result = distiller.run(work_dir, progress=progress)
    student.cpu().eval()
    report["distill"] = {**result.summary(), "device": str(device), "data": "synthetic only",
                         "quantizer_params": distiller.num_quantizer_params, "images": len(dataset.pixels)}
    report["timings"]["distill_s"] = result.seconds
    return student, work, report



