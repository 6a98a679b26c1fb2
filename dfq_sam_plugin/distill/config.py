"""Distillation hyper-parameters (docs/architecture.md#distillation-and-reconstruction). Defaults follow the feasibility run of issue #12."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FEATURE_MODES = ("mse", "attention")


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

    Switches against fitting the synthetic pool (issue 34, docs/architecture.md#distillation-and-reconstruction):
    ``feature_mode`` "attention" distils the *attention maps* of ``feature_layers`` (AKT's idea: where a layer's
    energy sits over positions and over channels, each map normalised per image) instead of their raw values;
    ``support`` puts that share of the training images on a black background (a soft random ellipse of each kept,
    ``data.inputs.on_black``, as ``calibration_support`` does for PTQ): real scans and microscopy fields are an
    object on a dark field, the synthetic pool is texture everywhere;
    ``validation`` holds that fraction of the pool out of training and scores it every ``validate_every`` steps,
    the best-scoring student is the one kept and ``patience`` > 0 stops after that many scores without a gain;
    ``refresh_every`` > 0 re-optimises ``refresh_fraction`` of the training pool every that many steps, for
    ``refresh_iters`` Adam steps on the pixels, toward *more* student-teacher disagreement under the priors
    that keep them DFQ-SAM images (the teacher's masks on the stored boxes held to its own, a TV bound): the
    pool follows the student's weaknesses (data-free adversarial distillation);
    ``curriculum`` > 0 draws the training images easy first, hard last (DFQ-ViT's easy → hard order with hard-example
    mining): every ``curriculum_every`` steps the current student's disagreement with the teacher is scored on each
    training image (unaugmented, fixed boxes), and step t draws image i with probability ∝ exp(τ · z_i), z the
    standardised log disagreement and τ = ``curriculum`` · (2 t / steps − 1): the easiest favoured at the start,
    uniform half way, the hardest favoured at the end.
    """

    steps: int = 600
    batch_size: int = 8  # global: split over DDP ranks
    # images per forward/backward pass; a step's gradient is accumulated over them: the same update in bounded
    # memory (LiteMedSAM's student takes ~2.5 GB an image on a CPU, mostly the mask decoder's backward over ten
    # boxes). 0: a rank's whole share at once on a GPU, 2 images on a CPU
    micro_batch: int = 0
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
    support: float = 0.0  # probability that an image is put on a black background (data.inputs.on_black)
    grad_clip: float = 1.0
    seed: int = 0
    tf32: bool = True  # CUDA matmuls in TF32; quantizers stay fp32 (a bf16 grid would be coarser than INT8)
    feature_mode: str = "mse"  # mse: relative MSE of the outputs | attention: spatial + channel attention maps
    validation: float = 0.0  # fraction of the pool held out and scored (never trained on)
    validate_every: int = 50
    patience: int = 0  # scores without a gain before stopping (0: never stop early; the best is kept either way)
    refresh_every: int = 0  # steps between pool refreshes (0: the pool stays as synthesized)
    refresh_fraction: float = 0.25
    refresh_iters: int = 10
    refresh_lr: float = 0.01  # Adam step on raw [0, 1] pixels
    refresh_prior: float = 1.0  # weight of the teacher-mask prior against the disagreement
    curriculum: float = 0.0  # easy -> hard strength tau (0: uniform draws, as before)
    curriculum_every: int = 50  # steps between difficulty scores of the training pool
    checkpoint_every: int = 100
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.random_boxes < 0 or self.micro_batch < 0:
            raise ValueError(f"steps >= 0, batch_size >= 1, micro_batch >= 0 and random_boxes >= 0 expected; got {self}")
        if not (0 <= self.letterbox <= 1 and 0 <= self.mixup <= 1 and 0 <= self.support <= 1):
            raise ValueError(f"letterbox, support and mixup are probabilities in [0, 1]; got {self.letterbox}, "
                             f"{self.support}, {self.mixup}")
        self.feature_layers = tuple(self.feature_layers)
        if self.feature_weight > 0 and not self.feature_layers:
            raise ValueError("feature_weight > 0 needs feature_layers (encoder submodule names)")
        if self.feature_mode not in FEATURE_MODES:
            raise ValueError(f"feature_mode must be one of {', '.join(FEATURE_MODES)}; got {self.feature_mode!r}")
        if not (0 <= self.validation < 1 and 0 < self.refresh_fraction <= 1):
            raise ValueError(f"validation in [0, 1) and refresh_fraction in (0, 1] expected; got {self.validation}, "
                             f"{self.refresh_fraction}")
        if self.curriculum < 0 or self.curriculum_every < 1:
            raise ValueError(f"curriculum >= 0 and curriculum_every >= 1 expected; got {self.curriculum}, "
                             f"{self.curriculum_every}")
        if min(self.validate_every, self.refresh_iters) < 1 or min(self.patience, self.refresh_every) < 0:
            raise ValueError("validate_every and refresh_iters must be >= 1, patience and refresh_every >= 0")
        if self.patience and not self.validation:
            raise ValueError("patience (early stopping) needs a validation split: set validation > 0")
        if not self.stored_boxes and self.random_boxes == 0 and self.mask_weight > 0:
            raise ValueError("mask distillation needs boxes: set random_boxes > 0 or stored_boxes = True")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # what must match for a checkpoint to be resumed (log/checkpoint cadence and step count may change)
    def resume_key(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if k not in ("steps", "checkpoint_every", "log_every", "micro_batch")}
