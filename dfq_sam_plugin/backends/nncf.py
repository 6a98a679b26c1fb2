"""NNCF adapter: reparameterize in torch -> ``ov.convert_model`` -> ``nncf.quantize(ov.Model, ...)`` -> IR.

NNCF's torch backend is avoided on purpose (DESIGN §8: its C++ extension build and its quantized torch
SAM does not convert). Two entry points:

- ``reparameterize_sam(sam, dataset)``: the reparameterized-scale step on its own, for NNCF users who then
  call ``nncf.quantize`` themselves on ``ov.convert_model(sam.model.image_encoder)``;
- ``quantize_sam(sam, dataset, recipe)``: the whole flow from a recipe, encoder (and optionally decoder)
  quantized, returning OpenVINO models ready for ``save`` / ``OVSamPredictor``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..models.spec import SamBundle
from ..recipes import load_recipe, validate


def reparameterize_sam(sam: SamBundle, dataset, bits: int = 8, subset_size: int | None = None,
                       strength: float = 1.0, depthwise: bool = False) -> tuple[SamBundle, dict[str, Any]]:
    """A reparameterized copy of ``sam`` (the original is untouched) and a summary of the folds."""
    from ..reparam import reparameterize

    dataset.check_model(sam)
    model = copy.deepcopy(sam.model).eval()
    result = reparameterize(model.image_encoder, dataset.torch_batches(1, limit=subset_size), bits=bits,
                            strength=strength, depthwise=depthwise)
    return replace(sam, model=model, extra={**sam.extra, "reparameterization": result}), result.summary()


def _advanced(recipe: dict[str, Any]):
    from nncf import OverflowFix
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    overflow = {"enable": OverflowFix.ENABLE, "disable": OverflowFix.DISABLE,
                "first_layer_only": OverflowFix.FIRST_LAYER}[recipe["overflow_fix"]]
    ranges = {} if recipe["activation_range"] == "default" else {
        "activations_range_estimator_params": getattr(RangeEstimatorParametersSet, recipe["activation_range"].upper())}
    return AdvancedQuantizationParameters(
        overflow_fix=overflow,
        **ranges,
        smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=recipe["smooth_quant_alpha"]),
    )


def nncf_quantize(ov_model, dataset, recipe: dict[str, Any], validation=None):
    """``nncf.quantize`` with the recipe's knobs mapped to NNCF's own parameters; with ``validation`` (a
    ``SyntheticFidelity``), ``nncf.quantize_with_accuracy_control`` with the recipe's ``max_drop``."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from ..export.openvino import module_nodes

    ignored = None
    names = module_nodes(ov_model, recipe["ignored_modules"]) if recipe["ignored_modules"] else []
    if recipe["ignored_modules"] and not names:
        raise ValueError(f"recipe key 'ignored_modules' {recipe['ignored_modules']} matches no node of the model")
    if recipe["ignored_types"] or recipe["ignored_patterns"] or names:
        ignored = nncf.IgnoredScope(names=names, types=list(recipe["ignored_types"]),
                                    patterns=list(recipe["ignored_patterns"]), validate=False)
    common = dict(
        preset=nncf.QuantizationPreset(recipe["preset"]),
        target_device=nncf.TargetDevice[recipe["target_device"]],
        subset_size=min(recipe["subset_size"], dataset.get_length() or recipe["subset_size"]),
        fast_bias_correction=recipe["fast_bias_correction"],
        model_type=nncf.ModelType.TRANSFORMER,
        ignored_scope=ignored,
    )
    if validation is None:
        return nncf.quantize(ov_model, dataset, advanced_parameters=_advanced(recipe), **common)
    restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=recipe["max_reverted"],
                                                  ranking_subset_size=recipe["ranking_subset_size"])
    return nncf.quantize_with_accuracy_control(
        ov_model, dataset, validation.dataset(), validation, max_drop=float(recipe["max_drop"]),
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=_advanced(recipe),
        advanced_accuracy_restorer_parameters=restorer, **common)


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
class QuantizedSam:
    encoder: Any  # ov.Model
    decoder: Any  # ov.Model
    sam: SamBundle
    calibration: dict[str, Any]
    recipe: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        from ..export.openvino import save_export

        return save_export(folder, self.encoder, self.decoder, self.sam.spec, self.calibration, self.recipe,
                           self.report)


def calibration_summary(dataset) -> dict[str, Any]:
    p = dataset.provenance
    keys = ("model", "weights_sha256", "method", "seed", "real_data_used", "num_images", "data_sources", "format")
    return {k: p[k] for k in keys if k in p}


def quantize_sam(sam: SamBundle, dataset, recipe: dict[str, Any] | str | Path = "recipes/openvino_int8_cpu.yaml"
                 ) -> QuantizedSam:
    """The whole NNCF flow for one SAM and one calibration set (a ``DFQSAMDataset``)."""
    from ..export.openvino import convert_decoder, convert_encoder, count_ops

    recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else validate(recipe)
    if recipe["backend"] != "openvino":
        raise ValueError(f"recipe {recipe['name']!r} is for backend {recipe['backend']!r}; use the Brevitas flow")
    dataset.check_model(sam)
    timings, report = {}, {}
    t0 = time.perf_counter()
    work = sam
    if recipe["reparam"]:
        work, report["reparam"] = reparameterize_sam(sam, dataset, bits=recipe["activation_bits"],
                                                     subset_size=recipe["subset_size"],
                                                     strength=recipe["reparam_strength"],
                                                     depthwise=recipe["equalize_depthwise"])
    timings["reparam_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder = convert_encoder(work.model, sam.spec.img_size)
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, recipe["decoder_boxes"])
    timings["convert_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    validation = None
    if recipe["accuracy_control"]:
        from ..eval.synthetic_fidelity import SyntheticFidelity

        validation = SyntheticFidelity(sam, dataset, limit=recipe["validation_images"])
    encoder = nncf_quantize(encoder, dataset, recipe, validation)
    timings["encoder_quantize_s"] = time.perf_counter() - t0
    if validation is not None:
        import openvino as ov

        report["synthetic_fidelity"] = validation(ov.Core().compile_model(encoder, "CPU"),
                                                  range(len(validation)))[0]
    if recipe["quantize_decoder"]:
        t0 = time.perf_counter()
        decoder = nncf_quantize(decoder, decoder_dataset(dataset, sam, recipe["decoder_boxes"], recipe["subset_size"]),
                                {**recipe, "ignored_modules": []})  # ignored_modules name encoder modules
        timings["decoder_quantize_s"] = time.perf_counter() - t0
    report.update(timings=timings, encoder_fake_quantize=count_ops(encoder, "FakeQuantize"),
                  decoder_fake_quantize=count_ops(decoder, "FakeQuantize"))
    return QuantizedSam(encoder, decoder, sam, calibration_summary(dataset), recipe, report)


def export_float(sam: SamBundle, folder: str | Path, decoder_boxes: int = 1) -> Path:
    """The FP32 IR pair (the float baseline for latency and for IR-vs-torch checks)."""
    from ..export.openvino import convert_decoder, convert_encoder, save_export

    encoder = convert_encoder(sam.model, sam.spec.img_size)
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, decoder_boxes)
    calib = {"model": sam.name, "weights_sha256": sam.weights_sha256, "method": "none (float)",
             "real_data_used": False}
    return save_export(folder, encoder, decoder, sam.spec, calib, {"name": "float32"})
