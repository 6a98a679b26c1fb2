"""YAML recipes: a flat mapping of options (the brevitas_examples convention), validated on load into a typed,
sectioned ``Recipe``.

Every key has a type, a default and a check; an unknown key, a wrong type or a bad value is one
``RecipeError`` naming the key and what was expected (with a "did you mean"). The YAML files stay flat and
readable; in code a recipe reads by section, as NNCF's typed parameters do::

    r = load_recipe("openvino_int8_cpu_vnni")
    r.calibration.subset_size, r.reparam.strength, r.nncf.preset, r.weight_compression.parts, r.distill.steps
    r.replace(subset_size=8)          # a validated copy with flat keys changed
    r["subset_size"]                  # a Recipe is also the flat dict (JSON, manifests, old code)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class RecipeError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    default: Any
    kind: type | tuple[type, ...]
    choices: tuple | None = None
    check: Any = None  # callable(value) -> error message or None
    help: str = ""


def _bits(v: int) -> str | None:
    return None if 2 <= v <= 8 else "must be between 2 and 8"


def _positive(v: int) -> str | None:
    return None if v >= 1 else "must be >= 1"


def _regexes(v: list) -> str | None:
    import re

    for item in v:
        if not isinstance(item, str):
            return f"must be a list of regex strings ({item!r} is not a string)"
        try:
            re.compile(item)
        except re.error as exc:
            return f"holds an invalid regex {item!r} ({exc})"
    return None


def matches_any(patterns: list[str]) -> Callable[[str], bool]:
    """What a list of name regexes in a recipe (``ignored_modules``) means: True for a name that one of the
    ``patterns`` finds (``re.search``)."""
    import re

    regexes = [re.compile(p) for p in patterns]
    return lambda name: any(r.search(name) for r in regexes)


def _fraction(v: float) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _alpha(v: float) -> str | None:
    return None if v == -1 or 0 <= v <= 1 else "must be in [0, 1], or -1 to switch SmoothQuant off"


COMMON = {
    "backend": Option("openvino", str, ("openvino", "brevitas"), help="which flow runs the recipe"),
    "name": Option("custom", str, help="defaults to the file name"),
    "description": Option("", str, help="free text"),
    "measured": Option({}, dict, check=lambda v: None if all(isinstance(k, str) and isinstance(x, str) for k, x in
                                                            v.items()) else "must map machine names to text",
                       help="what docs/RESULTS.md measured for the recipe, per machine (shown by `dfq-sam recipes`)"),
    "reparam": Option(True, bool, help="fold per-channel post-LayerNorm ranges into LayerNorm + Linear"),
    "reparam_strength": Option(1.0, (int, float), check=_fraction,
                               help="fold r**strength (1: RepQ-ViT, every channel on one grid)"),
    "equalize_depthwise": Option(False, bool, help="move per-channel input ranges of depthwise convs into their "
                                 "weights (with reparam; TinyViT)"),
    "subset_size": Option(64, int, check=_positive, help="calibration images used"),
    "calibration_letterbox": Option(0.0, (int, float), check=_fraction,
                                    help="fraction of calibration images that also give a letterboxed copy (zero "
                                    "padding as for a non-square image; data.inputs)"),
    "calibration_support": Option(0.0, (int, float), check=_fraction,
                                  help="fraction of calibration images that also give a copy on a black background "
                                  "(times a soft random ellipse: an object on a dark field as in MR/CT slices; "
                                  "data.inputs)"),
    "quantize_decoder": Option(False, bool, help="also quantize the prompt/mask decoder"),
    "ignored_modules": Option([], list, check=_regexes, help="regexes (re.search) of encoder module names kept "
                              "float, e.g. '^patch_embed\\.' (OpenVINO: every node converted from them)"),
}

def _nonneg(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


# Data-free distillation (docs/architecture.md#distillation-and-reconstruction, dfq_sam_plugin.distill): after PTQ, the quantized encoder learns the FP
# SAM on the synthetic images. distill_steps 0 = calibration only.
DISTILL = {
    "distill_steps": Option(0, int, check=lambda v: None if v >= 0 else "must be >= 0",
                            help="quantization-aware distillation steps after PTQ (0: PTQ only)"),
    "distill_batch": Option(8, int, check=_positive, help="global batch of synthetic images per step"),
    "distill_micro_batch": Option(0, int, check=_nonneg,
                                  help="images per forward/backward pass, the step's gradient accumulated over them "
                                  "(the same update in less memory; 0: the whole batch on a GPU, 2 on a CPU)"),
    "distill_lr_weights": Option(2e-5, (int, float), check=_nonneg, help="Adam learning rate of the weights"),
    "distill_lr_quant": Option(1e-3, (int, float), check=_nonneg,
                               help="relative (log-space) Adam step of quantizer scales/ranges"),
    "distill_random_boxes": Option(8, int, check=_nonneg, help="random box prompts per image for the mask loss"),
    "distill_embed_weight": Option(1.0, (int, float), check=_nonneg, help="weight of the embedding rel. MSE"),
    "distill_mask_weight": Option(1.0, (int, float), check=_nonneg, help="weight of the mask-logit KL"),
    "distill_feature_weight": Option(0.0, (int, float), check=_nonneg,
                                     help="weight of the intermediate-feature rel. MSE (distill_feature_layers)"),
    "distill_feature_layers": Option([], list, check=lambda v: None if all(isinstance(x, str) for x in v)
                                     else "must be a list of module names", help="encoder submodule names whose outputs are distilled too, "
                                     "e.g. ['layers.1', 'layers.2'] (TinyViT) or ['blocks.5'] (SAM ViT)"),
    "distill_augment": Option(True, bool, help="flips, 90° rotations, resized crops, gamma, mixup"),
    "distill_letterbox": Option(0.0, (int, float), check=_fraction,
                                help="probability that a training image is letterboxed (zero padding as for a "
                                "non-square image)"),
    "distill_support": Option(0.0, (int, float), check=_fraction,
                              help="probability that a training image is put on a black background (a soft random "
                              "ellipse of it kept, as calibration_support does): MR / CT slices and microscopy "
                              "fields are an object on a dark field, optimised synthetic images texture everywhere"),
    "distill_seed": Option(0, int, help="seed of batches, augmentation and boxes"),
    # against fitting the synthetic pool (issue 34; DistillConfig says what each does)
    "distill_feature_mode": Option("mse", str, choices=("mse", "attention"),
                                   help="feature loss of distill_feature_layers: rel. MSE of the outputs, or their "
                                   "spatial + channel attention maps (AKT)"),
    "distill_validation": Option(0.0, (int, float), check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)",
                                 help="fraction of the synthetic pool held out of training and scored; the "
                                 "best-scoring student is kept"),
    "distill_validate_every": Option(50, int, check=_positive, help="steps between validation scores"),
    "distill_patience": Option(0, int, check=_nonneg,
                               help="validation scores without a gain before stopping early (0: never)"),
    "distill_refresh_every": Option(0, int, check=_nonneg,
                                    help="steps between student-aware refreshes of the pool (0: none)"),
    "distill_refresh_fraction": Option(0.25, (int, float), check=lambda v: None if 0 < v <= 1 else
                                       "must be in (0, 1]", help="fraction of the training pool each refresh "
                                       "re-optimises toward student-teacher disagreement"),
    "distill_refresh_iters": Option(10, int, check=_positive, help="pixel optimisation steps per refresh"),
    "distill_curriculum": Option(0.0, (int, float), check=_nonneg,
                                 help="easy -> hard strength: training images drawn by the student's disagreement, "
                                 "the easiest favoured first and the hardest last (DFQ-ViT; 0: uniform)"),
    "distill_curriculum_every": Option(50, int, check=_positive,
                                       help="steps between difficulty scores of the training pool (distill_curriculum)"),
}

# Block-wise reconstruction (dfq_sam_plugin.distill.reconstruct, Brevitas flow): after calibration, each encoder
# block learns the FP block's output on the synthetic images, QDrop-style. reconstruct_iters 0 = off.
RECONSTRUCT = {
    "reconstruct_iters": Option(0, int, check=_nonneg, help="training iterations per encoder block (0: off)"),
    "reconstruct_batch": Option(8, int, check=_positive, help="stored block inputs per iteration"),
    "reconstruct_lr_weights": Option(1e-5, (int, float), check=_nonneg, help="Adam learning rate of the weights"),
    "reconstruct_lr_quant": Option(1e-3, (int, float), check=_nonneg,
                                   help="relative (log-space) Adam step of quantizer scales/zero points"),
    "reconstruct_drop": Option(0.5, (int, float), check=_fraction,
                               help="QDrop: probability that an activation element skips its quantizer"),
    "reconstruct_augment": Option(0, int, check=_nonneg,
                                  help="label-free augmented copies (flips, 90-degree rotations, crops, gamma, mixup) "
                                       "of every synthetic image added to the reconstruction inputs"),
    "reconstruct_decoder_weight": Option(0.0, (int, float), check=_nonneg,
                                         help="weight of the decoder-aware term: mask KL of random boxes through the FP "
                                              "rest of the encoder and the FP mask decoder (0: block output only)"),
    "reconstruct_decoder_boxes": Option(4, int, check=_positive, help="random boxes per image of that term"),
}

# Closed-form block compensation (dfq_sam_plugin.distill.compensate): after calibration and any training, each
# residual encoder block gets a float correction fitted by ridge least squares on the synthetic images. Brevitas: on
# the torch student; OpenVINO: float nodes inserted into the quantized encoder IR (backends/ov_compensate.py).
COMPENSATE = {
    "compensate": Option("none", str, ("none", "linear", "channel"),
                         help="none | linear: a C x C correction from each block's input (QwT) | channel: a "
                         "per-channel scale and shift of each block's output (DFQ-ViT's activation correction)"),
    "compensate_ridge": Option(1.0, (int, float), check=_nonneg,
                               help="ridge of that fit, relative to the regressors' mean variance (larger: a "
                               "smaller correction)"),
    "compensate_reshaping": Option(False, bool,
                                   help="also correct the units that change the shape (patch embedding, patch "
                                   "mergings, the neck, whose output is the encoder's), from their own output"),
}

WEIGHT_MODES = ("int8_asym", "int4_sym", "int4_asym")  # nncf.CompressWeightsMode of recipe key weight_compression_mode
WEIGHT_ALGORITHMS = ("scale_estimation", "gptq", "awq")
CANDIDATES = ("float", "int8_weights", "int8_fc2_float")  # encoder candidates an export may carry beside the recipe's own
OPENVINO = {
    **COMMON,
    "target_device": Option("CPU", str, ("CPU", "CPU_SPR", "NPU", "GPU", "ANY"),
                            help="nncf.TargetDevice (CPU_SPR: AMX Xeons, NNCF's OpenVINO backend only)"),
    "nncf_backend": Option("openvino", str, ("openvino", "torch"),
                           help="where nncf.quantize runs: on the converted OpenVINO model, or on the torch encoder "
                           "(NNCF's torch backend, then ov.convert_model; always so with distill_steps > 0)"),
    "preset": Option("mixed", str, ("performance", "mixed"), help="nncf.QuantizationPreset"),
    "weight_bits": Option(8, int, (8,), help="OpenVINO INT8 only"),
    "activation_bits": Option(8, int, (8,), help="OpenVINO INT8 only"),
    "smooth_quant_alpha": Option(-1.0, (int, float), check=_alpha, help="SmoothQuant alpha for MatMuls; -1: off"),
    "overflow_fix": Option("enable", str, ("enable", "disable", "first_layer_only"),
                           help="nncf OverflowFix (enable on AVX2-only CPUs)"),
    "fast_bias_correction": Option(True, bool, help="nncf fast bias correction (False: full BiasCorrection)"),
    "activation_range": Option("default", str, ("default", "minmax", "histogram"),
                               help="activation ranges: NNCF's default (per-tensor: mean of per-image min/max; "
                               "per-channel: min/max), or one nncf RangeEstimatorParametersSet for all"),
    "ignored_types": Option([], list, help="OpenVINO op types kept float (nncf.IgnoredScope types)"),
    "ignored_patterns": Option([], list, check=_regexes, help="node-name regexes kept float (nncf.IgnoredScope patterns)"),
    "decoder_boxes": Option(1, int, check=_positive, help="static box count of the decoder IR"),
    "weight_compression": Option([], list, check=lambda v: None if set(v) <= {"encoder", "decoder"} and len(set(v))
                                 == len(v) else "must list 'encoder' and/or 'decoder' once each",
                                 help="parts whose weights become INT8 with float activations (nncf.compress_weights, "
                                 "INT8_ASYM, per channel; no calibration): CPUs without int8 dot products run INT8 "
                                 "activations slower than float (docs/notebook/2026-12-01.md §11)"),
    "weight_compression_mode": Option("int8_asym", str, check=lambda v: None if v in WEIGHT_MODES else
                                      f"must be one of {', '.join(WEIGHT_MODES)}",
                                      help="nncf.compress_weights mode of the weight_compression parts: int8_asym "
                                      "(per channel), int4_sym / int4_asym (per group of weight_compression_group_size "
                                      "input channels; NNCF keeps the last layer at INT8)"),
    "weight_compression_group_size": Option(32, int, check=lambda v: None if v == -1 or v > 0 else
                                            "must be a positive group size or -1 (per output channel)",
                                            help="int4 modes: input channels that share one scale (-1: per channel)"),
    "weight_compression_algorithms": Option([], list, check=lambda v: None if set(v) <= set(WEIGHT_ALGORITHMS) else
                                            f"may list only {', '.join(WEIGHT_ALGORITHMS)}",
                                            help="int4 modes: nncf.compress_weights' data-aware steps, run on the "
                                            "synthetic calibration images (subset_size, + letterboxed copies)"),
    "weight_compression_ratio": Option(1.0, (int, float), check=lambda v: None if 0 < v <= 1 else
                                       "must be in (0, 1]",
                                       help="int4 modes: share of the compressible weights at INT4, the rest INT8, "
                                       "ranked by NNCF's sensitivity metric (activation-aware with algorithms)"),
    "candidates": Option([], list, check=lambda v: None if set(v) <= set(CANDIDATES) and len(set(v)) == len(v) else
                         f"may list {', '.join(CANDIDATES)}, each once",
                         help="further encoders the export carries beside the recipe's own, sharing its decoder: "
                         "'float' (the FP encoder, FP16-stored weights), 'int8_weights' (INT8 weights, float "
                         "activations), 'int8_fc2_float' (the recipe's INT8 encoder with the inputs of each MLP's "
                         "second Linear, the GELU outputs, left float: no second PTQ); the predictor measures them "
                         "on the CPU it runs on and runs the fastest faithful one (runtime.selection)"),
    "accuracy_control": Option(False, bool, help="nncf.quantize_with_accuracy_control on synthetic fidelity: "
                               "revert the most harmful quantizers to float until max_drop holds"),
    "max_drop": Option(0.02, (int, float), check=lambda v: None if 0 < v < 1 else "must be in (0, 1)",
                       help="largest allowed drop of synthetic FP-fidelity (float model = 1.0)"),
    "validation_images": Option(8, int, check=_positive, help="synthetic images validated by accuracy control"),
    "ranking_subset_size": Option(8, int, check=_positive, help="images used to rank quantizer groups"),
    "max_reverted": Option(30, int, check=_positive, help="most quantizer groups accuracy control may revert"),
    **DISTILL,
    **COMPENSATE,
}

BREVITAS = {
    **COMMON,
    "weight_bits": Option(8, int, check=_bits),
    "activation_bits": Option(8, int, check=_bits),
    "first_last_bits": Option(8, int, check=_bits, help="patch embedding and neck"),
    "softmax_quantizer": Option("log2sqrt", str, ("log2sqrt", "uniform", "none")),
    "weight_range": Option("minmax", str, ("minmax", "mse")),
    "activation_range": Option("percentile_mse", str, ("minmax", "percentile", "percentile_mse")),
    "bias_correction": Option(False, bool),
    "gptq": Option(False, bool, help="GPxQ weight rounding after the ranges (gptq_algorithm says which)"),
    "gptq_algorithm": Option("gptq", str, ("gptq", "gpfq", "qronos"),
                             help="gptq: each layer fitted on its quantized inputs; gpfq / qronos: fitted against "
                             "the float model's inputs too (asymmetric, GPTAQ's idea: corrects the error the "
                             "layers before left; Brevitas' gpfq_mode, qronos its Qronos update)"),
    "rounding_iters": Option(0, int, check=_nonneg,
                             help="learned rounding after the ranges (and GPTQ): iterations per Linear layer "
                             "with weights under 8 bits; each weight picks its start (GPTQ's) or the grid point "
                             "towards its float value, trained on the float layer's outputs on float inputs; "
                             "0 switches it off"),
    "rounding_rows": Option(4096, int, check=_positive, help="input rows (tokens) per calibration image and layer "
                            "that learned rounding stores"),
    "weight_group_size": Option(0, int, check=_nonneg,
                                help="Linear weights at weight_bits: one scale per group of this many input channels "
                                "of an output channel (group-wise, e.g. 32 / 64 / 128; a 16-bit scale per group "
                                "adds 16/G bits a weight); 0: one scale per output channel"),
    "weight_scale": Option("stats", str, ("stats", "learned"),
                           help="per-channel weight scales recomputed from the weights (stats) or initialised "
                           "from them once and then learned by reconstruction/distillation (learned)"),
    "high_precision_modules": Option([], list, check=_regexes,
                                     help="regexes of encoder Linear/Conv2d modules quantized at first_last_bits "
                                     "(weights and inputs): mixed precision; the report gives the average bits"),
    "high_precision_activations": Option([], list, check=_regexes,
                                         help="regexes of encoder modules whose activations are quantized at "
                                         "first_last_bits, weights unchanged: Linear/Conv2d inputs and the q/k/v/"
                                         "softmax quantizers of attention wrappers (e.g. '\\.attn$' for all)"),
    "export_onnx": Option(True, bool, help="QCDQ ONNX export + OpenVINO IR pair (recipes with 8-bit activations; weights of any bit-width)"),
    "export_qonnx": Option(False, bool, help="also write the encoder as QONNX (encoder.qonnx.onnx: Brevitas' format "
                           "for FINN / FPGA flows, any bit-width, W4A4 included; attention probabilities float "
                           "under log2sqrt)"),
    **DISTILL,
    **RECONSTRUCT,
    **COMPENSATE,
}

SCHEMAS = {"openvino": OPENVINO, "brevitas": BREVITAS}


def distill_config(recipe: dict[str, Any]):
    """The recipe's ``distill_*`` keys as a ``DistillConfig``."""
    from .distill import DistillConfig

    d = as_recipe(recipe).distill
    return DistillConfig(steps=d.steps, batch_size=d.batch, micro_batch=d.micro_batch, lr_weights=d.lr_weights,
                         lr_quant=d.lr_quant,
                         random_boxes=d.random_boxes, embed_weight=d.embed_weight, mask_weight=d.mask_weight,
                         feature_weight=d.feature_weight, feature_layers=tuple(d.feature_layers),
                         augment=d.augment, letterbox=d.letterbox, support=d.support, seed=d.seed,
                         feature_mode=d.feature_mode,
                         validation=d.validation, validate_every=d.validate_every, patience=d.patience,
                         refresh_every=d.refresh_every, refresh_fraction=d.refresh_fraction,
                         refresh_iters=d.refresh_iters, curriculum=d.curriculum,
                         curriculum_every=d.curriculum_every)


def reconstruct_config(recipe: dict[str, Any]):
    """The recipe's ``reconstruct_*`` keys as a ``ReconstructConfig``."""
    from .distill.reconstruct import ReconstructConfig

    r = as_recipe(recipe)
    c = r.reconstruct
    return ReconstructConfig(iters=c.iters, batch_size=c.batch, lr_weights=c.lr_weights, lr_quant=c.lr_quant,
                             drop=c.drop, seed=r.distill.seed, decoder_weight=c.decoder_weight,
                             decoder_boxes=c.decoder_boxes)


def compensate_config(recipe: dict[str, Any]):
    """The recipe's ``compensate*`` keys (and ``reconstruct_batch`` where the backend has it) as a
    ``CompensateConfig``."""
    from .distill.compensate import CompensateConfig

    r = as_recipe(recipe)
    batch = r["reconstruct_batch"] if "reconstruct_batch" in SCHEMAS[r.backend] else CompensateConfig.batch_size
    return CompensateConfig(mode=r.compensate.mode, ridge=r.compensate.ridge, batch_size=batch,
                            reshaping=r.compensate.reshaping)


# Sections of a Recipe: flat key -> (section, attribute). The attribute is the key without its section prefix
# (distill_steps -> distill.steps); `reparam` is reparam.enabled, `weight_compression` weight_compression.parts.
SECTIONS = {
    "calibration": ("subset_size", "calibration_letterbox", "calibration_support", "activation_range", "weight_range",
                    "fast_bias_correction",
                    "bias_correction", "gptq", "gptq_algorithm", "rounding_iters", "rounding_rows", "ignored_modules",
                    "quantize_decoder"),
    "reparam": ("reparam", "reparam_strength", "equalize_depthwise"),
    "nncf": ("target_device", "nncf_backend", "preset", "smooth_quant_alpha", "overflow_fix", "ignored_types",
             "ignored_patterns", "accuracy_control", "max_drop", "validation_images", "ranking_subset_size",
             "max_reverted"),
    "bits": ("weight_bits", "activation_bits", "first_last_bits", "softmax_quantizer", "weight_scale",
             "weight_group_size", "high_precision_modules", "high_precision_activations"),
    "weight_compression": ("weight_compression", "weight_compression_mode", "weight_compression_group_size",
                           "weight_compression_algorithms", "weight_compression_ratio"),
    "distill": tuple(DISTILL),
    "reconstruct": tuple(RECONSTRUCT),
    "compensate": tuple(COMPENSATE),
    "export": ("decoder_boxes", "candidates", "export_onnx", "export_qonnx"),
}
_RENAMED = {"reparam": "enabled", "weight_compression": "parts", "compensate": "mode"}


def _attribute(section: str, key: str) -> str:
    if key in _RENAMED and section == key:
        return _RENAMED[key]
    return key[len(section) + 1:] if key.startswith(section + "_") else key


_SECTION_TYPES: dict[tuple[str, str], type] = {}


def _section_type(backend: str, section: str) -> type:
    """A frozen dataclass per (backend, section) whose typed fields are that section's keys the backend has."""
    from dataclasses import make_dataclass

    key = (backend, section)
    if key not in _SECTION_TYPES:
        schema = SCHEMAS[backend]
        fields = [(_attribute(section, k), schema[k].kind if isinstance(schema[k].kind, type) else Any)
                  for k in SECTIONS[section] if k in schema]
        _SECTION_TYPES[key] = make_dataclass(f"{backend.title()}{section.title().replace('_', '')}", fields,
                                             frozen=True)
    return _SECTION_TYPES[key]


def _edit(method: str):
    """dict's mutator ``method``, marking the recipe edited (the next flow validates it again)."""

    def edit(self, *args, **kwargs):
        self._edited = True
        return getattr(dict, method)(self, *args, **kwargs)

    return edit


class Recipe(dict):
    """A validated recipe: the flat mapping (``recipe["subset_size"]``, JSON-ready) plus typed sections
    (``recipe.calibration.subset_size``, frozen dataclasses). Build one with ``load_recipe`` or ``validate``;
    change one with ``replace`` (validated again). Flat in-place edits (``recipe.update(...)``, old code) still
    work: the sections follow them and the next flow validates the edited recipe again. Sections a backend does
    not have are absent (AttributeError)."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self._edited = False

    def __getattr__(self, section: str):
        keys = SECTIONS.get(section)
        schema = SCHEMAS[self["backend"]]
        if keys is None or not any(k in schema for k in keys):
            raise AttributeError(f"a {self['backend']} recipe has no section {section!r}; sections: "
                                 f"{[s for s, ks in SECTIONS.items() if any(k in schema for k in ks)]}")
        cls = _section_type(self["backend"], section)
        return cls(**{_attribute(section, k): self[k] for k in keys if k in schema})

    backend = property(lambda self: self["backend"])
    name = property(lambda self: self["name"])

    def replace(self, **changes: Any) -> Recipe:
        """A validated copy with these flat keys changed."""
        return validate({**self, **changes}, f"recipe {self['name']!r}")

    __setitem__ = _edit("__setitem__")
    __delitem__ = _edit("__delitem__")
    update = _edit("update")
    pop = _edit("pop")
    setdefault = _edit("setdefault")

    def __reduce__(self):
        return (validate, (dict(self),))


# yaml.safe_dump(recipe) writes the flat mapping, as for any dict
yaml.SafeDumper.add_representer(Recipe, lambda dumper, recipe: dumper.represent_dict(dict(recipe)))
yaml.Dumper.add_representer(Recipe, lambda dumper, recipe: dumper.represent_dict(dict(recipe)))


def as_recipe(recipe: dict[str, Any]) -> Recipe:
    """``recipe`` itself when it is a ``Recipe`` nobody edited (validated once), else validated now."""
    if isinstance(recipe, Recipe) and not recipe._edited:
        return recipe
    return validate(dict(recipe), f"recipe {recipe.get('name', 'custom')!r}")


def validate(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: expected a mapping of options, found {type(raw).__name__}")
    backend = raw.get("backend", "openvino")
    if backend not in SCHEMAS:
        raise RecipeError(f"{source}: key 'backend' must be one of {sorted(SCHEMAS)}, found {backend!r}")
    schema = SCHEMAS[backend]
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        close = {k: difflib.get_close_matches(k, list(schema), n=1) for k in unknown}
        hint = "; ".join(f"{k}: did you mean {c[0]}?" for k, c in close.items() if c)
        raise RecipeError(f"{source}: unknown key(s) {unknown} for backend {backend!r}"
                          + (f" ({hint})" if hint else "") + f"; known: {sorted(schema)}")
    out = {}
    for key, opt in schema.items():
        value = raw.get(key, opt.default)
        if isinstance(value, bool) and opt.kind in (int, (int, float)):
            raise RecipeError(f"{source}: key {key!r} must be a number, found {value!r}")
        if not isinstance(value, opt.kind):
            expected = opt.kind.__name__ if isinstance(opt.kind, type) else "/".join(t.__name__ for t in opt.kind)
            raise RecipeError(f"{source}: key {key!r} must be {expected}, found {type(value).__name__} {value!r}")
        if opt.choices is not None and value not in opt.choices:
            raise RecipeError(f"{source}: key {key!r} must be one of {list(opt.choices)}, found {value!r}")
        if opt.check is not None and (msg := opt.check(value)):
            raise RecipeError(f"{source}: key {key!r} {msg}, found {value!r}")
        out[key] = value
    if "decoder" in out.get("weight_compression", []) and out["quantize_decoder"]:
        raise RecipeError(f"{source}: the decoder is either quantized (quantize_decoder: true) or weight-compressed "
                          f"(weight_compression: [decoder]), not both")
    if out.get("weight_compression_mode") == "int8_asym" and (out["weight_compression_algorithms"]
                                                             or out["weight_compression_ratio"] != 1):
        raise RecipeError(f"{source}: weight_compression_algorithms and weight_compression_ratio apply to the int4 "
                          f"modes only (weight_compression_mode: int4_sym / int4_asym)")
    if out.get("weight_group_size") and out["export_qonnx"]:
        raise RecipeError(f"{source}: export_qonnx needs per-channel weights (weight_group_size: 0): Brevitas 0.13 "
                          f"exports no group-wise weights")
    if out.get("target_device") == "CPU_SPR" and (out["distill_steps"] or out["nncf_backend"] == "torch"):
        raise RecipeError(f"{source}: target_device CPU_SPR exists in NNCF's OpenVINO backend only; distillation "
                          f"(distill_steps > 0) and nncf_backend: torch quantize through the torch backend")
    return Recipe(out)


PACKAGED = Path(__file__).resolve().parent / "assets" / "recipes"  # ``recipes/`` in a checkout links here


def packaged_recipes() -> list[str]:
    return sorted(p.stem for p in PACKAGED.glob("*.yaml"))


AUTO = "auto"  # the packaged OpenVINO recipe for this machine's CPU class (dfq_sam_plugin.cpu)


def auto_recipe():
    """(packaged recipe name, ``CpuClass``) that ``auto`` stands for on this machine."""
    from .cpu import cpu_class

    cls = cpu_class()
    return cls.recipe, cls


def resolve_recipe(path: str | Path) -> Path:
    """A recipe file: ``path`` itself, else the packaged recipe of that name (``openvino_int8_cpu``,
    ``recipes/openvino_int8_cpu.yaml``), so the shipped recipes work from any folder and from a wheel; ``auto``:
    the packaged recipe of this machine's CPU class (``auto_recipe``)."""
    if str(path) == AUTO:
        return PACKAGED / f"{auto_recipe()[0]}.yaml"
    path = Path(path)
    if path.exists():
        return path
    packaged = PACKAGED / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml") and path.parent.name in ("", "recipes") and packaged.exists():
        return packaged
    close = difflib.get_close_matches(path.stem, packaged_recipes(), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise RecipeError(f"recipe {path} does not exist: {hint}(packaged recipes: {', '.join(packaged_recipes())})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the last one silently,
    so a recipe edited twice would hide which value it holds)."""

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_NEXT_KEY = re.compile(r"[,\s]\s*(?=[A-Za-z_]\w*=)")  # a comma or space before the next KEY=, not inside a value


def parse_overrides(items: str | Iterable[str], source: str = "overrides") -> dict[str, Any]:
    """Recipe keys changed from a command line, values read as YAML: each item is ``KEY=VALUE``, several
    ``KEY=VALUE,KEY=VALUE`` or ``KEY=VALUE KEY=VALUE`` (split only where the next ``KEY=`` starts, so a list value
    keeps its commas and spaces; a value that itself holds ``, NAME=`` needs the mapping form), or a YAML mapping
    ``{KEY: VALUE, ...}``. Later items win. The keys are checked by ``validate`` when the result is merged into a
    recipe (``load_recipe(name).replace(**overrides)``)::

        parse_overrides(["distill_seed=1", "ignored_modules=['^patch_embed\\.', 'local_conv']"])
        parse_overrides("{high_precision_modules: ['^layers\\.0\\.', downsample]}")
    """
    out: dict[str, Any] = {}
    for item in [items] if isinstance(items, str) else items:
        text = item.strip()
        if not text:
            continue
        try:
            if text.startswith("{"):
                mapping = yaml.safe_load(text)
                if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
                    raise RecipeError(f"{source}: {item!r} is not a mapping of recipe keys")
                out.update(mapping)
                continue
            for part in _NEXT_KEY.split(text):
                key, eq, value = part.partition("=")
                if not eq or not re.fullmatch(r"[A-Za-z_]\w*", key):
                    raise RecipeError(f"{source}: {part.strip()!r} is not KEY=VALUE (or a YAML mapping {{KEY: VALUE}})")
                out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RecipeError(f"{source}: {item!r}: the value is not valid YAML: {exc}") from None
    return out


def load_recipe(path: str | Path) -> Recipe:
    path = resolve_recipe(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    return validate({"name": path.stem, **raw}, str(path))
