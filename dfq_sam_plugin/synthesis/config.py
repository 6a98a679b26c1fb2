"""Synthesis hyper-parameters (docs/architecture.md#synthesis) and the baselines as switches of the same loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

METHODS = ("dfq-sam", "psaq", "gaussian", "uniform")
COMPILE_MODES = ("auto", "off", "default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass
class SynthesisConfig:
    """``method``: ``dfq-sam`` (segmentation + patch-similarity entropy + TV, label evolution),
    ``psaq`` (patch similarity + TV only), ``gaussian`` / ``uniform`` (noise, no optimisation).

    Pixels are optimised in raw intensity units [0, 1] (the image before the model's normalisation).
    ``lr`` 0.05 there equals the authors' 0.2 in SAM's mean/std units (std ≈ 58/255).
    """

    method: str = "dfq-sam"
    channels: int = 1  # 1: grey modality, repeated to 3; 3: RGB
    boxes_per_image: int = 4
    stages: int = 3
    iterations: int = 500  # per stage
    warmup: int = 100  # per stage, capped at a fifth of the stage
    lr: float = 0.05
    betas: tuple[float, float] = (0.5, 0.9)
    roll: tuple[int, ...] = (15, 15, 30)  # px at 256 input, scaled with the input side; one per stage
    flip: bool = True
    lambda_seg: float = 1.0
    lambda_pse: float = 0.05
    lambda_tv: float = 0.01
    tv_rms_step: float = 0.04  # TV target: RMS neighbour difference in [0, 1] units
    evolve_every: int = 50  # label evolution period, stage 1 only (capped at a quarter of the stage)
    evolve_area: tuple[float, float] = (0.003, 0.35)
    box_jitter: float = 5.0  # px at 256 input
    # pseudo-mask axes as fractions of the input side (random rotated ellipses / blobs); issue 34 tries wider
    # ranges, (0.03, 0.4): prompts of more sizes and aspects, so the encoder attends more diversely (ACQ's idea)
    label_axes: tuple[float, float] = (0.06, 0.22)
    # boundary-supporting samples (Qimera's idea for segmentation): this fraction of each image's prompts gets a
    # superposed soft label, 0.5 * (M + M') for a second random mask M' and the box of their union, so SAM is
    # driven to logits near 0 on M xor M': images whose masks sit near the decision boundary. Not evolved.
    boundary: float = 0.0
    # texture targets (TexQ's idea without BatchNorm statistics; synthesis/texture.py): with weight > 0 each image
    # draws a power-law spectrum slope from texture_slope and is pushed toward the Laws texture energies of a noise
    # texture with that spectrum (and the TV target's roughness): smooth to grainy images instead of one texture
    texture: float = 0.0
    texture_slope: tuple[float, float] = (1.0, 3.0)
    init_mean: float = 0.5
    init_std: float = 0.25
    max_pse_tokens: int = 256
    batch_size: int = 8
    amp: str = "auto"  # auto: bf16 autocast on CUDA, off on CPU | bf16 | off | bf16-model (no autocast, bf16 copy)
    activation_checkpointing: bool = False
    # torch.compile mode; auto: "default" on CUDA (2.3x LiteMedSAM, 1.6x SAM ViT-B on an H200, docs/notebook/2026-12-02.md §2.2;
    # the first batch of each size pays ~2 min of compilation), off on CPU and with activation checkpointing
    compile: str = "auto"
    # torch.compile backend: "inductor" (generated kernels; the speed above) or any backend torch lists, e.g.
    # "aot_eager" (the same traced graphs run op by op: checks tracing without inductor's minutes of code generation)
    compile_backend: str = "inductor"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {self.channels}")
        for name in ("boxes_per_image", "stages", "iterations", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.amp not in ("auto", "bf16", "off", "bf16-model"):
            raise ValueError(f"amp must be auto, bf16, off or bf16-model; got {self.amp!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}; got {self.compile!r}")
        if self.compile_backend != "inductor":
            import torch._dynamo

            known = torch._dynamo.list_backends(exclude_tags=())
            if self.compile_backend not in known:
                raise ValueError(f"compile_backend must be one torch.compile knows ({', '.join(known)}); "
                                 f"got {self.compile_backend!r}")
        if self.compile not in ("auto", "off") and self.activation_checkpointing:
            raise ValueError("compile and activation_checkpointing cannot be combined: checkpointing re-wraps the "
                             "encoder's blocks every step, which a compiled graph cannot follow")
        self.betas = tuple(self.betas)
        self.roll = tuple(self.roll)
        self.evolve_area = tuple(self.evolve_area)
        self.label_axes = tuple(self.label_axes)
        if not 0 < self.label_axes[0] <= self.label_axes[1] < 0.5:
            raise ValueError(f"label_axes must be 0 < min <= max < 0.5 (fractions of the side); got {self.label_axes}")
        self.texture_slope = tuple(self.texture_slope)
        if self.texture < 0:
            raise ValueError(f"texture is a loss weight >= 0; got {self.texture}")
        if len(self.texture_slope) != 2 or not 0 <= self.texture_slope[0] <= self.texture_slope[1] <= 4:
            raise ValueError(f"texture_slope must be 0 <= min <= max <= 4 (power-spectrum exponents); "
                             f"got {self.texture_slope}")
        if not 0 <= self.boundary <= 1:
            raise ValueError(f"boundary must be a fraction of the prompts in [0, 1]; got {self.boundary}")

    @property
    def boundary_prompts(self) -> int:
        """How many of each image's prompts carry a superposed (boundary) label: the first ones."""
        return int(round(self.boundary * self.boxes_per_image)) if self.method == "dfq-sam" else 0

    @property
    def uses_texture(self) -> bool:
        """Whether the texture term is on (the optimising methods only)."""
        return self.texture > 0 and self.optimises

    @property
    def optimises(self) -> bool:
        return self.method in ("dfq-sam", "psaq")

    def compile_mode(self, device_type: str) -> str:
        """The torch.compile mode this config runs with on ``device_type`` ("off": eager)."""
        if self.compile != "auto":
            return self.compile
        return "default" if device_type == "cuda" and not self.activation_checkpointing else "off"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
