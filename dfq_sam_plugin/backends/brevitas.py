"""Brevitas adapter: fake-quantized SAM from a recipe, calibrated on a ``DFQSAMDataset``.

The flow (``quantize_sam``):

1. reparameterized scales (the shared ``reparam`` core): per-channel ranges of every post-LayerNorm
   activation are measured on the calibration set and folded into LayerNorm + the next Linear, so the
   per-tensor activation quantizer that Brevitas then calibrates on that input sees one grid for all channels;
2. attention made reachable (``models.attention.QuantPointAttention``): q, k, v and the softmax probabilities
   get quantizers, the probabilities a **log√2 quantizer** (``Log2SqrtSoftmaxQuant``) or a uniform one;
3. ``brevitas.graph.quantize.layerwise_quantize`` swaps every Linear/Conv2d of the image encoder (and of the
   mask decoder if the recipe says so) for ``QuantLinear``/``QuantConv2d``: per-output-channel weights,
   per-tensor asymmetric input activations, float bias; patch embedding and neck at ``first_last_bits``;
4. ``brevitas.graph.calibrate.calibration_mode`` over the calibration images (percentile, MSE or min-max
   ranges), then optional ``bias_correction_mode`` and ``gptq_mode``;
5. optionally (``reconstruct_iters`` > 0) block-wise reconstruction against the FP encoder on the same synthetic
   inputs (``distill.reconstruct``: QDrop, learned weights, activation step sizes and zero points), then
   (``distill_steps`` > 0) quantization-aware distillation of the whole encoder (``distill.Distiller``) — both
   on ``device``, synthetic images only. Brevitas' runtime-stats activation scales are ``nn.Parameter``s after
   calibration; ``weight_scale: learned`` makes the per-channel weight scales parameters too;
6. optionally (``compensate`` linear / channel) a closed-form float correction per residual encoder block, fitted
   by ridge least squares against the FP encoder on the same synthetic inputs (``distill.compensate``: QwT's
   linear compensation, DFQ-ViT's per-channel activation correction); saved with the state dict and rebuilt on
   load, exported as float MatMul / Multiply + Add beside the quantized layers.

Mixed precision: ``high_precision_modules`` (regexes) are quantized at ``first_last_bits``; the report gives the
weight bit-width averaged over all encoder Linear/Conv2d weights (float ones counted at 32).
``high_precision_activations`` (regexes) raise only activations to ``first_last_bits``: the inputs of matching
Linear/Conv2d modules and the q/k/v/probability quantizers of matching attention wrappers (weights keep
``weight_bits``; the report counts the activation quantizers by bit-width).

``BrevitasQuantizedSam.save`` writes the state dict + recipe (``load_quantized`` rebuilds it) and, for recipes
with 8-bit activations (W8A8, W4A8), a QCDQ ONNX encoder (``export_onnx_qcdq(..., dynamo=False)``) converted to an OpenVINO IR pair that
``OVSamPredictor`` and ``benchmark_app`` run. ``dfq_sam_plugin.quantize`` calls ``quantize_sam`` for Brevitas
recipes.
"""

from __future__ import annotations

__all__ = ["BrevitasQuantizedSam", "Log2SqrtQuant", "Log2SqrtSoftmaxQuant", "build_quantized", "calibrate",
           "load_quantized", "quantize_sam", "softmax_quantizer", "train"]

import copy
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from brevitas.core.stats import NegativeMinOrZero
from brevitas.graph.calibrate import bias_correction_mode, calibration_mode
from brevitas.graph.quantize import layerwise_quantize
from brevitas.inject import ExtendedInjector
from brevitas.inject.enum import QuantType, ScalingImplType, ScalingPerOutputType, StatsOp
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.proxy import ActQuantProxyFromInjector
from brevitas.proxy.groupwise_int_parameter_quant import GroupwiseWeightQuantProxyFromInjector
from brevitas.proxy.runtime_quant import FusedActivationQuantProxy
from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerChannelFloatMSE
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat, ShiftedUint8ActPerTensorFloatMSE
from torch import nn

from ..models.attention import QuantPointAttention, wrap_attention
from ..models.spec import SamBundle
from ..recipes import Recipe, as_recipe, load_recipe, matches_any, validate
from ..result import BREVITAS_STATE_DICT, QuantizationResult

STATE_DICT, RECIPE, CALIBRATION, ONNX = BREVITAS_STATE_DICT, "recipe.json", "calibration.json", "encoder.onnx"
QONNX = "encoder.qonnx.onnx"
FIRST_LAST = ("patch_embed", "neck")  # the encoder's first and last layers (SAM ViT and TinyViT)


# --- quantizers (declarative, in Brevitas' own style) ---------------------------------------------------

class Log2SqrtQuant(nn.Module):
    """x̂ = s·(√2)^(−q), q = round(−2·log2(x/s)) in [0, 2^b − 1]; below the last level x̂ = 0.

    Post-softmax probabilities are mostly tiny with a few large ones: a √2-spaced grid keeps both, where a
    uniform 4-bit grid rounds every small probability to 0. s = 1 (a softmax output never exceeds 1).
    Deviation from docs/architecture.md#reparameterization's clamp: values past the last level go to 0 (as RepQ-ViT does), since clamping
    them up to s·√2^−(2^b−1) would add mass to every tiny probability (≈0.0055 each at 4 bits). The straight-
    through estimator makes it usable under GPTQ/QAT too.
    """

    def __init__(self, bit_width: int) -> None:
        super().__init__()
        self.bits = int(bit_width)
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x: torch.Tensor):
        q = torch.round(-2.0 * torch.log2(x.clamp_min(1e-30) / self.scale))
        y = torch.where(q <= 2**self.bits - 1, self.scale * torch.exp2(-q.clamp_min(0) / 2), torch.zeros_like(x))
        y = x + (y - x).detach()
        return y, self.scale, torch.zeros_like(self.scale), torch.tensor(float(self.bits), device=x.device)


class Log2SqrtSoftmaxQuant(ExtendedInjector):
    """log√2 quantizer for attention probabilities (``QuantIdentity(act_quant=Log2SqrtSoftmaxQuant)``)."""

    proxy_class = ActQuantProxyFromInjector
    tensor_quant = Log2SqrtQuant
    quant_type = QuantType.INT
    bit_width = 8
    signed = False
    narrow_range = False


class ShiftedUintActMinMax(ShiftedUint8ActPerTensorFloat):
    """Per-tensor asymmetric activations, range = calibration min/max. Min/max statistics, not the percentile
    quantizer at its ends: percentiles cost a ``kthvalue`` per quantizer per image (~4 s an image on an H100)."""

    scaling_stats_op = StatsOp.MIN_MAX
    zero_point_stats_impl = NegativeMinOrZero


ACT_RANGES = {"minmax": ShiftedUintActMinMax, "percentile": ShiftedUint8ActPerTensorFloat,
              "percentile_mse": ShiftedUint8ActPerTensorFloatMSE}
WEIGHT_RANGES = {"minmax": Int8WeightPerChannelFloat, "mse": Int8WeightPerChannelFloatMSE}


def act_quant(bits: int, kind: str):
    """The per-tensor activation quantizer of this range kind (minmax / percentile / percentile_mse) at ``bits``."""
    return ACT_RANGES[kind].let(bit_width=bits)


def weight_quant(bits: int, kind: str, learned_scale: bool = False, group_size: int = 0):
    """The weight quantizer of this range kind (minmax / mse) at ``bits``: a scale per output channel, or per group
    of ``group_size`` input channels of an output channel (Brevitas' group-wise proxy, groups along dim 1)."""
    quant = WEIGHT_RANGES[kind].let(bit_width=bits)
    if group_size:
        quant = quant.let(scaling_per_output_type=ScalingPerOutputType.GROUP, group_size=group_size, group_dim=1,
                          proxy_class=GroupwiseWeightQuantProxyFromInjector)
    # learned: the scale is computed from the weights at the first forward, then an nn.Parameter
    return quant.let(scaling_impl_type=ScalingImplType.PARAMETER_FROM_STATS) if learned_scale else quant


def layer_map(weight_bits: int, act_bits: int, recipe: Recipe) -> dict:
    """``layerwise_quantize``'s map: Linear -> QuantLinear, Conv2d -> QuantConv2d with these bit-widths. Linear
    weights at the recipe's ``weight_bits`` take its ``weight_group_size`` (convolutions stay per channel: TinyViT's
    are the stem, the patch mergings and depthwise ones, whose input-channel groups have one channel)."""
    learned = recipe.bits.weight_scale == "learned"
    c = recipe.calibration
    common = {"weight_quant": weight_quant(weight_bits, c.weight_range, learned),
              "input_quant": act_quant(act_bits, c.activation_range),
              "bias_quant": None, "return_quant_tensor": False}
    group = recipe.bits.weight_group_size if weight_bits == recipe.bits.weight_bits else 0
    linear = {**common, "weight_quant": weight_quant(weight_bits, c.weight_range, learned, group)} if group else common
    return {nn.Linear: (QuantLinear, linear), nn.Conv2d: (QuantConv2d, common)}


def softmax_quantizer(recipe: dict[str, Any], bits: int | None = None) -> nn.Module:
    """The post-softmax quantizer the recipe names: log√2, uniform, or none (identity)."""
    recipe = as_recipe(recipe)
    kind, bits = recipe.bits.softmax_quantizer, bits or recipe.bits.activation_bits
    if kind == "log2sqrt":
        return QuantIdentity(act_quant=Log2SqrtSoftmaxQuant.let(bit_width=bits), return_quant_tensor=False)
    if kind == "uniform":
        return QuantIdentity(act_quant=act_quant(bits, recipe.calibration.activation_range), return_quant_tensor=False)
    return nn.Identity()


# --- building the quantized model ----------------------------------------------------------------------

def _present(encoder: nn.Module, names: Iterable[str]) -> list[str]:
    return [n for n in names if hasattr(encoder, n)]


def ignored_modules(encoder: nn.Module, patterns: list[str]) -> list[str]:
    """Qualified names of the Linear/Conv2d modules that ``patterns`` (regexes, ``re.search``) keep float."""
    ignored = matches_any(patterns)
    return [name for name, m in encoder.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and ignored(name)]


def _quantize_only(encoder: nn.Module, names: list[str], mapping: dict, skip: list[str]) -> None:
    """``layerwise_quantize`` of exactly the Linear/Conv2d modules ``names`` (its blacklist matches whole names)."""
    if names:
        others = [n for n, m in encoder.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and n not in names]
        layerwise_quantize(encoder, mapping, name_blacklist=skip + others)


def build_quantized(model: nn.Module, recipe: dict[str, Any]) -> nn.Module:
    """Insert the recipe's quantizers into ``model`` (a ``SamModel``), in place; nothing is calibrated yet."""
    recipe = as_recipe(recipe)
    encoder, b = model.image_encoder, recipe.bits
    abits, edge_bits, act_range = b.activation_bits, b.first_last_bits, recipe.calibration.activation_range
    wrap_attention(encoder)
    high_act = matches_any(b.high_precision_activations)
    for name, m in encoder.named_modules():
        if isinstance(m, QuantPointAttention):  # q, k, v and probabilities at first_last_bits where asked
            bits = edge_bits if high_act(name) else abits
            for slot in ("q", "k", "v"):
                setattr(m, slot, QuantIdentity(act_quant=act_quant(bits, act_range),
                                               return_quant_tensor=False))
            m.probs = softmax_quantizer(recipe, bits)
    kept = ignored_modules(encoder, recipe.calibration.ignored_modules)
    edge = _present(encoder, FIRST_LAST)
    for name in edge:
        inner = [k[len(name) + 1:] for k in kept if k.startswith(name + ".")]
        layerwise_quantize(getattr(encoder, name), layer_map(edge_bits, edge_bits, recipe), name_blacklist=inner)

    def chosen(patterns: list[str], taken: list[str]) -> list[str]:
        return [n for n in ignored_modules(encoder, patterns)
                if n not in taken and not any(n.startswith(e + ".") for e in edge)]

    # mixed precision: these layers at first_last_bits (weights and inputs), then these inputs alone
    high = chosen(b.high_precision_modules, kept)
    _quantize_only(encoder, high, layer_map(edge_bits, edge_bits, recipe), edge)
    high_inputs = chosen(b.high_precision_activations, kept + high)
    _quantize_only(encoder, high_inputs, layer_map(b.weight_bits, edge_bits, recipe), edge)
    layerwise_quantize(encoder, layer_map(b.weight_bits, abits, recipe),
                       name_blacklist=edge + kept + high + high_inputs)
    if recipe.calibration.quantize_decoder:
        layerwise_quantize(model.mask_decoder, layer_map(b.weight_bits, abits, recipe))
    return model


def weight_bits_report(encoder: nn.Module) -> dict[str, Any]:
    """Bit-width of every encoder Linear/Conv2d weight, averaged by parameter count (float weights at 32 bits), and
    the scales the quantized weights carry: one per output channel, or per group of ``group_size`` input channels
    (``scale_bits_per_weight`` counts them as 16-bit numbers)."""
    bits, counts, scales = [], [], 0
    for m in encoder.modules():
        if isinstance(m, (QuantLinear, QuantConv2d)) and m.weight_quant.is_quant_enabled:
            bits.append(float(m.weight_quant.bit_width()))
            group = getattr(m.weight_quant, "group_size", None)
            scales += m.weight.shape[0] * (-(-m.weight[0].numel() // group) if group else 1)
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            bits.append(32.0)
        else:
            continue
        counts.append(m.weight.numel())
    total = sum(counts)
    histogram: dict[str, int] = {}
    for b, c in zip(bits, counts):
        histogram[f"{b:g}"] = histogram.get(f"{b:g}", 0) + c
    return {"average_weight_bits": sum(b * c for b, c in zip(bits, counts)) / total if total else float("nan"),
            "weights_by_bits": histogram, "weight_scales": scales,
            "scale_bits_per_weight": 16 * scales / total if total else float("nan")}


def activation_bits_report(encoder: nn.Module) -> dict[str, int]:
    """How many enabled activation quantizers of the encoder run at each bit-width."""
    histogram: dict[str, int] = {}
    for m in encoder.modules():
        if isinstance(m, ActQuantProxyFromInjector) and m.is_quant_enabled:
            key = f"{float(m.bit_width()):g}"
            histogram[key] = histogram.get(key, 0) + 1
    return histogram


def is_brevitas_quantizer(module: nn.Module) -> bool:
    """Modules holding Brevitas quantizer parameters (scales, zero points, learned rounding)."""
    return type(module).__module__.startswith("brevitas.core") and any(True for _ in module.parameters(recurse=False))


def act_quant_points(module: nn.Module) -> list[nn.Module]:
    """Brevitas activation quantizers under ``module``: each maps its input to ``(fake-quantized, scale, ...)``."""
    return [m for m in module.modules() if isinstance(m, FusedActivationQuantProxy)]


def _calibration_items(dataset, recipe: dict[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(encoder input (1, 3, S, S), boxes (1, K, 4)) per calibration image (+ letterboxed copies)."""
    from ..data.inputs import calibration_pairs

    c = as_recipe(recipe).calibration
    pairs = calibration_pairs(dataset.pixels, dataset.boxes, dataset.spec, c.subset_size, c.letterbox, c.support)
    return [(torch.from_numpy(x), torch.from_numpy(b)[None]) for x, b in pairs]


def _augmented_inputs(dataset, copies: int, seed: int) -> list[torch.Tensor]:
    """Encoder inputs (1, 3, S, S) of ``copies`` augmented versions of every image of ``dataset``."""
    from ..data.inputs import encoder_inputs
    from ..distill.augment import augmented_copies

    if not copies:
        return []
    pixels = augmented_copies(torch.as_tensor(np.asarray(dataset.pixels, np.float32)), copies, seed).numpy()
    return [torch.from_numpy(x) for x in encoder_inputs(pixels, dataset.spec)]


@torch.no_grad()
def _run(model: nn.Module, items, with_decoder: bool, progress: Callable[[str], None] | None, label: str) -> None:
    for x, boxes in items:
        emb = model.image_encoder(x)
        if with_decoder:
            model.decode(emb, boxes)
        if progress:
            progress(label)


def gpxq_mode(algorithm: str):
    """Brevitas' context manager for the recipe's ``gptq_algorithm``: GPTQ fits each layer's rounding to its
    quantized inputs; GPFQ and Qronos run every forward twice (quantized, then float) and fit the quantized
    layer on its quantized inputs to the *float* layer's output on float inputs, so a layer also corrects the
    error of those before it."""
    from functools import partial

    if algorithm == "gptq":
        from brevitas.graph.gptq import gptq_mode

        return gptq_mode
    from brevitas.graph.gpfq import gpfq_mode

    if algorithm == "qronos":
        from brevitas.graph.qronos import Qronos

        return partial(gpfq_mode, algorithm_impl=Qronos)
    return gpfq_mode


def calibrate(model: nn.Module, items, recipe: dict[str, Any], progress=None) -> dict[str, Any]:
    """Brevitas calibration passes over ``items``: ranges, then GPTQ, learned rounding and bias correction if the
    recipe asks."""
    c = as_recipe(recipe).calibration
    timings: dict[str, Any] = {}
    for key in ("gptq", "bias_correction"):
        if getattr(c, key) and hasattr(model.image_encoder, "blocks"):
            raise ValueError(f"{key}: Brevitas 0.13 treats Linear inputs as (B, N, C) and SAM ViT's tokens are "
                             f"(B, H, W, C); set {key}: false for vit_b/l/h (TinyViT/LiteMedSAM is supported)")
    target = model if c.quantize_decoder else model.image_encoder
    float_weights = {name: m.weight.detach().clone() for name, m in _rounding_layers(model.image_encoder)} \
        if c.rounding_iters else {}
    t0 = time.perf_counter()
    with calibration_mode(target):
        _run(model, items, c.quantize_decoder, progress, "ranges")
    timings["ranges_s"] = time.perf_counter() - t0
    if c.gptq:
        t0 = time.perf_counter()
        _run(model, items[:1], c.quantize_decoder, None, "gptq")  # learned weight scales take their init
        with gpxq_mode(c.gptq_algorithm)(target, use_quant_activations=True) as gptq:  # one input a pass: batching changes the
            for _ in range(gptq.num_layers):                         # result and is slower (docs/notebook/2026-12-04.md §10.5)
                _run(model, items, c.quantize_decoder, None, "gptq")
                gptq.update()
        timings["gptq_s"] = time.perf_counter() - t0
    if c.rounding_iters:
        t0 = time.perf_counter()
        timings["rounding"] = learn_weight_rounding(model.image_encoder, [x for x, _ in items], float_weights,
                                                    c.rounding_iters, c.rounding_rows)
        timings["rounding_s"] = time.perf_counter() - t0
    if c.gptq:  # GPxQ's copies of the float weights: not part of the student (a saved one must load back)
        for m in target.modules():
            m._buffers.pop("weight_orig", None)
    if c.bias_correction:
        t0 = time.perf_counter()
        with bias_correction_mode(target):
            _run(model, items, c.quantize_decoder, progress, "bias correction")
        timings["bias_correction_s"] = time.perf_counter() - t0
    return timings


def _rounding_layers(encoder: nn.Module) -> list[tuple[str, QuantLinear]]:
    """The Linear layers learned rounding works on: quantized weights under 8 bits."""
    return [(name, m) for name, m in encoder.named_modules() if isinstance(m, QuantLinear)
            and m.weight_quant.is_quant_enabled and int(m.weight_quant.bit_width()) < 8]


def _value(t):
    return t.value if hasattr(t, "value") else t


def _rows(name: str, image: int, flat: torch.Tensor, rows: int) -> torch.Tensor:
    """The same ``rows`` random tokens of ``image`` for ``name`` in every pass."""
    n = flat.shape[0]
    if n <= rows:
        return flat
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()) + image)
    return flat[torch.randperm(n, generator=gen)[:rows].to(flat.device)]


@torch.no_grad()
def _float_outputs(encoder: nn.Module, inputs: list[torch.Tensor], layers, float_weights: dict[str, torch.Tensor],
                   rows: int) -> dict[str, torch.Tensor]:
    """Each layer's outputs in the float encoder (float weights, every quantizer off) at its ``rows`` tokens, keyed
    in the order the forward first called the layers (execution order, whatever the module tree's order)."""
    from brevitas.graph.calibrate import quantization_status_manager

    ys: dict[str, list] = {name: [] for name, _ in layers}
    order: dict[str, None] = {}
    image = [0]

    def take(name):
        def hook(_, __, out):
            order.setdefault(name)
            out = _value(out)
            ys[name].append(_rows(name, image[0], out.reshape(-1, out.shape[-1]), rows).cpu())
        return hook

    current = {name: m.weight.detach().clone() for name, m in layers}
    handles = [m.register_forward_hook(take(name)) for name, m in layers]
    try:
        for name, m in layers:
            m.weight.copy_(float_weights[name])
        with quantization_status_manager(encoder, disable_act_quant=True, disable_weight_quant=True,
                                         disable_bias_quant=True):
            for i, x in enumerate(inputs):
                image[0] = i
                encoder(x)
    finally:
        for h in handles:
            h.remove()
        for name, m in layers:
            m.weight.copy_(current[name])
    return {name: torch.cat(ys[name]) for name in order}


@torch.no_grad()
def _quantized_inputs(encoder: nn.Module, inputs: list[torch.Tensor], name: str, layer: nn.Module,
                      rows: int) -> torch.Tensor:
    """``layer``'s quantized inputs in the quantized encoder as it is now (layers before it already rounded) at its
    ``rows`` tokens; each forward stops at the layer (Brevitas' ``StopFwdException``, as its GPxQ passes do)."""
    from brevitas.utils.torch_utils import StopFwdException

    xs = []
    image = [0]

    def hook(_, args):
        x = _value(layer.input_quant(_value(args[0])))
        xs.append(_rows(name, image[0], x.reshape(-1, x.shape[-1]), rows).cpu())
        raise StopFwdException

    handle = layer.register_forward_pre_hook(hook)
    try:
        for i, x in enumerate(inputs):
            image[0] = i
            try:
                encoder(x)
            except StopFwdException:
                pass
    finally:
        handle.remove()
    return torch.cat(xs)


def learn_weight_rounding(encoder: nn.Module, inputs: list[torch.Tensor], float_weights: dict[str, torch.Tensor],
                          iters: int, rows: int) -> dict[str, Any]:
    """Learned rounding (``distill.rounding``) of every Linear layer with weights under 8 bits, in execution
    order, from its current integer weights (GPTQ's when it ran) and its ``float_weights`` (before GPTQ): each
    layer is fitted on its quantized inputs with the layers before it already rounded, to the float layer's outputs
    in the float encoder (GPTAQ's asymmetric target: a layer also corrects the error handed to it). A layer is
    changed only if its output error went down, and only if its weight scale stays (a scale recomputed from the
    weights would move with them). Returns per layer: error before / after, fraction of weights changed."""
    from brevitas.function.ops import max_int, min_int

    from ..distill.rounding import RoundingConfig, learn_rounding

    layers = [(name, m) for name, m in _rounding_layers(encoder) if name in float_weights]
    targets = _float_outputs(encoder, inputs, layers, float_weights, rows)
    modules = dict(layers)
    layers = [(name, modules[name]) for name in targets]  # execution order, not the module tree's
    report = {}
    for name, m in layers:
        with torch.no_grad():
            qw = m.quant_weight()
            signed, narrow = bool(qw.signed), bool(m.weight_quant.is_narrow_range)
            qmin, qmax = (int(f(signed, narrow, qw.bit_width)) for f in (min_int, max_int))
            q0, scale, zero_point = qw.int().float(), qw.scale.detach(), qw.zero_point.detach()
        device = m.weight.device  # stored rows wait on the CPU; each layer learns where it lives
        x = _quantized_inputs(encoder, inputs, name, m, rows).to(device)
        bias = None if m.bias is None else m.bias.detach()
        q, rep = learn_rounding(q0, float_weights[name].to(device), scale, zero_point, qmin, qmax, x,
                                targets.pop(name).to(device), bias, RoundingConfig(iters=iters))
        if rep["kept"]:
            with torch.no_grad():
                before = m.weight.detach().clone()
                m.weight.copy_((q - zero_point) * scale)
                if not torch.equal(m.quant_weight().int().float(), q):
                    m.weight.copy_(before)
                    rep.update(kept=False, after=rep["before"], changed=0.0, note="weight scale follows the weights")
        report[name] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in rep.items()}
    return report


@dataclass
class BrevitasQuantizedSam(QuantizationResult):
    """A fake-quantized SAM (``sam.model`` holds Brevitas layers) with its recipe and calibration facts."""

    sam: SamBundle
    recipe: dict[str, Any]
    calibration: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def exportable(self) -> bool:
        """QCDQ carries 8-bit activations; weights of fewer bits export as int8 constants clipped to their grid
        (``QuantizeLinear`` + ``Clip``), which OpenVINO runs as INT8 FullyConnected / Convolution (docs/notebook/2026-12-03.md §12.2).
        Group-wise weights (``weight_group_size``) do not export: Brevitas 0.13 has no QCDQ / QONNX handler for them."""
        r = as_recipe(self.recipe)
        return (r.export.onnx and r.bits.activation_bits == 8 and r.bits.first_last_bits == 8
                and not r.bits.weight_group_size)

    def save(self, folder: str | Path, exports: bool = True) -> Path:
        """State dict + recipe + calibration facts and, where ``exportable``, ``encoder.onnx`` and an OpenVINO IR
        pair (``OVSamPredictor``-ready), and ``encoder.qonnx.onnx`` where the recipe sets ``export_qonnx``.
        ``exports=False`` writes the first three only: a checkpoint ``load_quantized`` resumes from, on a box
        without OpenVINO. Written via a staging folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".brevitas-", dir=folder))
        try:
            names = [STATE_DICT, RECIPE, CALIBRATION]
            if exports and as_recipe(self.recipe).export.qonnx:
                self.export_qonnx(staging / QONNX)
                names.append(QONNX)
            torch.save(self.sam.model.state_dict(), staging / STATE_DICT)
            (staging / RECIPE).write_text(json.dumps(self.recipe, indent=2))
            (staging / CALIBRATION).write_text(json.dumps({**self.calibration, "report": self.report}, indent=2,
                                                          default=str))
            if exports and self.exportable:
                self._export(staging)
                names += [ONNX, "encoder.xml", "encoder.bin", "decoder.xml", "decoder.bin", "manifest.json"]
            for name in names:
                os.replace(staging / name, folder / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def _export_encoder(self) -> nn.Module:
        """A copy of the quantized encoder as the ONNX exports write it: under ``log2sqrt`` the attention
        probabilities stay float (neither OpenVINO nor QONNX has a log√2 quantizer)."""
        recipe = as_recipe(self.recipe)
        if recipe.calibration.quantize_decoder:
            raise NotImplementedError("ONNX export of a Brevitas-quantized decoder is not supported; set "
                                      "quantize_decoder: false or export_onnx / export_qonnx: false")
        encoder = copy.deepcopy(self.sam.model.image_encoder).eval()
        if recipe.bits.softmax_quantizer == "log2sqrt":
            for m in encoder.modules():
                if isinstance(m, QuantPointAttention):
                    m.probs = nn.Identity()
        return encoder

    def _softmax_in_export(self) -> str:
        softmax = as_recipe(self.recipe).bits.softmax_quantizer
        return "float (no log2sqrt quantizer in the format)" if softmax == "log2sqrt" else softmax

    def export_qonnx(self, path: str | Path) -> Path:
        """The encoder as QONNX (``brevitas.export.export_qonnx``, TorchScript exporter): ONNX with ``Quant`` nodes
        at the student's bit-widths, W4A4 included, for FINN / FPGA flows; ``export.qonnx.QONNXModel`` reads it
        back and computes it. Under ``log2sqrt`` the attention probabilities stay float. Records the export in
        ``report['qonnx']``."""
        from brevitas.export import export_qonnx

        from ..export.openvino import ENCODER_INPUT, ENCODER_OUTPUT

        path = Path(path)
        if as_recipe(self.recipe).bits.weight_group_size:
            raise NotImplementedError("QONNX export of group-wise weights (weight_group_size > 0): Brevitas 0.13 has "
                                      "no export handler for them; use weight_group_size: 0 (per channel)")
        encoder = self._export_encoder()
        size = self.sam.spec.img_size
        t0 = time.perf_counter()
        with torch.no_grad():
            export_qonnx(encoder, args=torch.zeros(1, 3, size, size), export_path=str(path), dynamo=False,
                         input_names=[ENCODER_INPUT], output_names=[ENCODER_OUTPUT])
        self.report["qonnx"] = {"file": path.name, "export_s": round(time.perf_counter() - t0, 1),
                                "softmax": self._softmax_in_export()}
        return path

    def _export(self, folder: Path) -> None:
        import openvino as ov
        from brevitas.export import export_onnx_qcdq

        from ..export.openvino import ENCODER_INPUT, ENCODER_OUTPUT, convert_decoder, save_export

        encoder = self._export_encoder()
        size = self.sam.spec.img_size
        with torch.no_grad():
            export_onnx_qcdq(encoder, args=torch.zeros(1, 3, size, size), export_path=str(folder / ONNX),
                             dynamo=False, input_names=[ENCODER_INPUT], output_names=[ENCODER_OUTPUT])
        ov_encoder = ov.convert_model(str(folder / ONNX))
        ov_decoder = convert_decoder(self.sam.model, self.sam.spec.embed_shape, 1)
        report = {**self.report, "onnx": "QCDQ (brevitas export_onnx_qcdq, dynamo=False)",
                  "softmax_in_ir": self._softmax_in_export()}
        save_export(folder, ov_encoder, ov_decoder, self.sam.spec, self.calibration, self.recipe, report)


def train(sam: SamBundle, model: nn.Module, dataset, recipe: dict[str, Any], device: str = "cpu",
          work_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Block reconstruction, then distillation, of the calibrated ``model`` (in place) against ``sam``'s FP
    encoder, on ``device``; synthetic images only: every image of ``dataset`` (``subset_size`` limits only the
    range calibration), plus letterboxed copies (``calibration_letterbox``) for the reconstruction. A ``work_dir`` holding a distillation checkpoint resumes it
    (its state replaces the reconstruction, which is then skipped). Then, with ``compensate``, the closed-form
    block corrections on the reconstruction's inputs."""
    from ..distill import Distiller
    from ..distill.compensate import BlockCompensator
    from ..distill.engine import CHECKPOINT
    from ..distill.reconstruct import BlockReconstructor, reconstruction_figure
    from ..recipes import compensate_config, distill_config, reconstruct_config

    report: dict[str, Any] = {}
    resuming = work_dir is not None and (Path(work_dir) / CHECKPOINT).exists()
    recipe = as_recipe(recipe)

    def synthetic_inputs() -> list[torch.Tensor]:
        items = _calibration_items(dataset, recipe.replace(subset_size=len(dataset.pixels)))
        return [x for x, _ in items] + _augmented_inputs(dataset, recipe.reconstruct.augment, recipe.distill.seed)

    if recipe.reconstruct.iters and not resuming:
        teacher = copy.deepcopy(sam.model.image_encoder)
        inputs = synthetic_inputs()
        decoder = None
        if recipe.reconstruct.decoder_weight:
            sam.model.to(device).eval().requires_grad_(False)  # frozen, as the Distiller keeps it
            decoder = lambda emb, boxes: sam.model.decode(emb, boxes)[0]  # noqa: E731  the FP prompt/mask decoder
        rec = BlockReconstructor(teacher, model.image_encoder, inputs, reconstruct_config(recipe),
                                 is_quantizer=is_brevitas_quantizer, act_quant_points=act_quant_points, device=device,
                                 decoder=decoder)
        result = rec.run(progress=progress)
        if decoder is not None:
            sam.model.cpu()
        report["reconstruct"] = {**result.summary(), "device": str(device), "data": "synthetic only",
                                 "inputs": len(inputs)}
        if work_dir is not None:
            reconstruction_figure(result, Path(work_dir) / "reconstruction.png")
        del teacher, rec
    if recipe.distill.steps:
        distiller = Distiller(sam, model.image_encoder, dataset.pixels, dataset.boxes, distill_config(recipe),
                              is_quantizer=is_brevitas_quantizer, device=device)
        result = distiller.run(work_dir, progress=progress)
        report["distill"] = {**result.summary(), "device": str(device), "data": "synthetic only",
                             "quantizer_params": distiller.num_quantizer_params, "images": len(dataset.pixels)}
        sam.model.cpu()
    if recipe.compensate.mode != "none":
        inputs = torch.cat(synthetic_inputs())
        comp = BlockCompensator(copy.deepcopy(sam.model.image_encoder), model.image_encoder, inputs,
                                compensate_config(recipe), device=device).run()
        report["compensate"] = {**comp.summary(), "device": str(device), "data": "synthetic only",
                                "inputs": len(inputs)}
    model.cpu().eval()
    return report


def quantize_sam(sam: SamBundle, dataset, recipe: dict[str, Any] | str | Path = "recipes/brevitas_w8a8.yaml",
                 progress: Callable[[str], None] | None = None, device: str = "cpu",
                 work_dir: str | Path | None = None, train_progress: bool = True) -> BrevitasQuantizedSam:
    """The Brevitas flow for one SAM and one calibration set (a ``DFQSAMDataset``); ``sam`` is untouched.
    Recipes with ``reconstruct_iters`` / ``distill_steps`` then train on ``device`` (checkpoints in
    ``work_dir``)."""
    from ..reparam import reparameterize
    from .nncf import calibration_summary

    recipe = load_recipe(recipe) if isinstance(recipe, (str, Path)) else as_recipe(recipe)
    if recipe.backend != "brevitas":
        raise ValueError(f"recipe {recipe.name!r} is for backend {recipe.backend!r}; use the NNCF flow")
    dataset.check_model(sam)
    model = copy.deepcopy(sam.model).eval()
    items = _calibration_items(dataset, recipe)
    report: dict[str, Any] = {}
    t0 = time.perf_counter()
    if recipe.reparam.enabled:
        result = reparameterize(model.image_encoder, (x for x, _ in items), bits=recipe.bits.activation_bits,
                                strength=recipe.reparam.strength, depthwise=recipe.reparam.equalize_depthwise)
        report["reparam"] = result.summary()
    report["reparam_s"] = time.perf_counter() - t0
    build_quantized(model, recipe)
    dev = torch.device(device)  # calibration and training run there (reparameterization on the CPU)
    model.to(dev)
    items = [(x.to(dev), b.to(dev)) for x, b in items]
    report.update(calibrate(model, items, recipe, progress))
    report["calibration_images"] = len(items)
    report.update(weight_bits_report(model.image_encoder))
    report["activation_quantizers_by_bits"] = activation_bits_report(model.image_encoder)
    if recipe.reconstruct.iters or recipe.distill.steps or recipe.compensate.mode != "none":
        t0 = time.perf_counter()
        report.update(train(sam, model, dataset, recipe, device, work_dir, train_progress))
        report["train_s"] = time.perf_counter() - t0
    model.cpu()
    return BrevitasQuantizedSam(replace(sam, model=model, extra=dict(sam.extra)), recipe,
                                calibration_summary(dataset), report)


def load_quantized(folder: str | Path, sam: SamBundle) -> BrevitasQuantizedSam:
    """Rebuild a saved Brevitas-quantized SAM on ``sam``'s architecture and load its state dict."""
    from ..distill.compensate import restore_wrappers
    from ..reparam import add_pad_compensation, wrap_depthwise

    folder = Path(folder)
    missing = [f for f in (STATE_DICT, RECIPE, CALIBRATION) if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a Brevitas-quantized SAM (missing {', '.join(missing)})")
    recipe = validate(json.loads((folder / RECIPE).read_text()), str(folder / RECIPE))
    calibration = json.loads((folder / CALIBRATION).read_text())
    report = calibration.pop("report", {})
    if calibration.get("model") != sam.name:
        raise ValueError(f"{folder} quantizes {calibration.get('model')}, not {sam.name}")
    model = copy.deepcopy(sam.model).eval()
    if recipe.reparam.enabled:
        add_pad_compensation(model.image_encoder)
        if recipe.reparam.equalize_depthwise:
            wrap_depthwise(model.image_encoder)
    build_quantized(model, recipe)
    state = torch.load(folder / STATE_DICT, map_location="cpu", weights_only=True)
    restore_wrappers(model.image_encoder, {k.removeprefix("image_encoder."): v for k, v in state.items()
                                           if k.startswith("image_encoder.")})
    for key, value in state.items():  # bias correction gives bias-free layers a bias
        if key.endswith(".bias") and getattr(model.get_submodule(key[: -len(".bias")]), "bias", 0) is None:
            model.get_submodule(key[: -len(".bias")]).bias = nn.Parameter(torch.zeros_like(value))
    model.load_state_dict(state)
    return BrevitasQuantizedSam(replace(sam, model=model.eval(), extra=dict(sam.extra)), recipe, calibration, report)
