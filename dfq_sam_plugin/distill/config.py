"""Distillation hyper-parameters (docs/architecture.md#distillation-and-reconstruction). Defaults follow the feasibility run of issue #12."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class DistillConfig:
    """Quantization-aware distillation of a student image encoder against the FP SAM, synthetic images only.

    Loss = ``embed_weight`` · relative MSE of the image embedding + ``mask_weight`` · KL of the mask logits
    (per pixel, Bernoulli) through the *float* prompt encoder and mask decoder, on the images' stored boxes
    and ``random_boxes`` random boxes per image (sides log-uniform in [8, 160] px at a 256 input).
    With ``feature_weight`` > 0, the outputs of the encoder submodules ``feature_layers`` (the same names in
    teacher and student: reparameterization and quantizer insertion keep the module tree) add their relative MSE.
    Quantizer parameters (scales, ranges) move in relative steps: their Adam learning rate is
    ``lr_quant`` times their own magnitude, which for small steps is a step of ``lr_quant`` in log space.
    """

    steps: int = 600
    batch_size: int = 8  # global: split over DDP ranks
    lr_weights: float = 2e-5
    lr_quant: float = 1e-3
    warmup: int = 20
    random_boxes: int = 8
    stored_boxes: bool = True
    embed_weight: float = 1.0
    mask_weight: float = 1.0
    feature_weight: float = 0.0  # relative MSE of intermediate outputs (``feature_layers``), summed over layers
    feature_layers: tuple[str, ...] = ()  # student/teacher encoder submodule names, e.g. ("layers.1", "layers.2")
    augment: bool = True
    mixup: float = 0.25  # probability that an image is mixed with another of the batch
    letterbox: float = 0.0  # probability that an image is letterboxed as a non-square one would be (data.inputs)
    grad_clip: float = 1.0
    seed: int = 0
    tf32: bool = True  # CUDA matmuls in TF32; quantizers stay fp32 (a bf16 grid would be coarser than INT8)
    checkpoint_every: int = 100
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.random_boxes < 0:
            raise ValueError(f"steps >= 0, batch_size >= 1 and random_boxes >= 0 expected; got {self}")
        if not (0 <= self.letterbox <= 1 and 0 <= self.mixup <= 1):
            raise ValueError(f"letterbox and mixup are probabilities in [0, 1]; got {self.letterbox}, {self.mixup}")
        self.feature_layers = tuple(self.feature_layers)
        if self.feature_weight > 0 and not self.feature_layers:
            raise ValueError("feature_weight > 0 needs feature_layers (encoder submodule names)")
        if not self.stored_boxes and self.random_boxes == 0 and self.mask_weight > 0:
            raise ValueError("mask distillation needs boxes: set random_boxes > 0 or stored_boxes = True")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # what must match for a checkpoint to be resumed (log/checkpoint cadence and step count may change)
    def resume_key(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("steps", "checkpoint_every", "log_every")}
