"""Mixed-precision encoders: the head at f32, the rest at the CPU's default precision (docs/architecture.md#deployment).

On AMX / AVX-512-BF16 CPUs OpenVINO runs every float op in bf16 unless the whole model is pinned to f32, and its
CPU plugin ignores per-node precision marks (docs/notebook/2026-12-06.md §29, §36). For LiteMedSAM most of what bf16
costs sits in the convolutional head, and on MNI (a float-valued MR volume) most of that is the first layer's
*input*: rounded to bf16, the image keeps 8 significant bits (docs/notebook/2026-12-07.md §37).
So a head variant of a candidate runs two compiled models cut from its one IR: the head pinned to f32, the body at
the box's config. ``HEADS`` names, per model family, where each variant's head ends:

- ``input`` (``NAME@input``): the first layer only (LiteMedSAM: the stem's first 1x1 convolution and its
  BatchNorm; SAM ViT: the patch embedding), so the image enters at full precision; LiteMedSAM's float IR takes
  ~1.05x its bf16 encoder time on a 2-core AMX Xeon;
- ``mixed`` (``NAME@mixed``, LiteMedSAM only): the stem, stage 0 and its patch merging; ~1.2x the encoder time,
  the most faithful.

Where the default is f32 already the variant is the candidate itself. Models without a known head get none.
"""

from __future__ import annotations

from typing import Any

PRECISION = "INFERENCE_PRECISION_HINT"
# the compile config that pins an IR to f32: the FP reference on CPUs whose default is bf16 (read it, never mutate it)
F32 = {PRECISION: "f32"}
HEAD_PRECISIONS = ("input", "mixed")
# model family -> {head precision: friendly name of the IR node whose output ends the f32 head} (torch-traced
# names, kept by NNCF PTQ)
HEADS = {"litemedsam": {"input": "__module.patch_embed.seq.0.bn/aten::batch_norm/BatchNormInference",
                        "mixed": "__module.layers.0.downsample.conv3.bn/aten::batch_norm/BatchNormInference"},
         # SAM ViT-B/L/H: the 16x16 patch embedding (convolution + bias); its fidelity effect is not measured
         "sam": {"input": "__module.patch_embed.proj/aten::_convolution/Add"}}


def split_model(model, boundary: str):
    """(head, body): ov.Models of ``model`` cut at the output of the node named ``boundary``. ``model`` is consumed
    (the body is built in it). Raises ValueError where the node is missing or another tensor crosses the cut."""
    import openvino as ov

    head_model = model.clone()
    nodes = {op.get_friendly_name(): op for op in head_model.get_ops()}
    if boundary not in nodes:
        raise ValueError(f"the encoder IR has no node {boundary!r} to end its f32 head at")
    head = ov.Model([nodes[boundary].output(0)], head_model.get_parameters(), "encoder_head")
    cut = next(op for op in model.get_ops() if op.get_friendly_name() == boundary).output(0)
    param = ov.op.Parameter(cut.get_element_type(), cut.get_partial_shape())
    param.set_friendly_name("head_output")
    for target in list(cut.get_target_inputs()):
        target.replace_source_output(param.output(0))
    try:
        body = ov.Model(model.get_results(), [param], "encoder_body")
    except RuntimeError as e:  # a tensor other than the cut's feeds the body: the original input is still needed
        raise ValueError(f"the encoder IR cannot be cut at {boundary!r}: {e}") from e
    return head, body


class _SplitRequest:
    """An infer request of a ``SplitEncoder``: the head's request, then the body's, on the head's output
    (``predict_many`` pipelines the two compiled models itself)."""

    def __init__(self, head, body) -> None:
        self.head, self.body = head, body

    def infer(self, inputs, **kwargs):
        return self.body.infer({0: self.head.infer(inputs, **kwargs)[0]})


class SplitEncoder:
    """A compiled encoder made of two compiled models, the head at f32 and the body at ``config`` (duck-types the
    parts of ``ov.CompiledModel`` the predictor and the candidates' measurement use)."""

    def __init__(self, core, xml: str, device: str, config: dict | None, boundary: str) -> None:
        head, body = split_model(core.read_model(xml), boundary)
        self.head = core.compile_model(head, device, {**(config or {}), PRECISION: "f32"})
        self.body = core.compile_model(body, device, config or {})

    @property
    def precision(self) -> str:
        return f"f32 head + {self.body.get_property(PRECISION).get_type_name()}"

    def get_property(self, key: str) -> Any:
        return self.body.get_property(key)

    def create_infer_request(self) -> _SplitRequest:
        return _SplitRequest(self.head.create_infer_request(), self.body.create_infer_request())


def compile_encoder(core, xml: str, device: str, config: dict | None, candidate: dict[str, Any]):
    """``candidate``'s encoder compiled on ``device``: one ov.CompiledModel, or a ``SplitEncoder`` for a ``@mixed``
    or ``@input`` variant (its ``head`` names the node that ends the f32 head)."""
    if candidate.get("head"):
        return SplitEncoder(core, xml, device, config, candidate["head"])
    return core.compile_model(xml, device, config or {})


def precision_of(compiled) -> str:
    """What a compiled encoder runs at: ``bf16``, ``f32``, or ``f32 head + bf16`` for a split one."""
    return compiled.precision if isinstance(compiled, SplitEncoder) else compiled.get_property(PRECISION).get_type_name()
