"""What a SAM family expects at its input and gives at its output, and the bundle load_sam returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

# every name load_sam takes (torch-free, so that the CLI parser and the edge runtime can list them)
MODEL_NAMES = ("litemedsam", "vit_b", "vit_l", "vit_h")

if TYPE_CHECKING:  # torch stays optional for code that only needs the spec (the OpenVINO predictor)
    import torch
    from torch import nn


@dataclass(frozen=True)
class SamSpec:
    """Input/output contract of one SAM variant.

    ``normalisation`` is ``"minmax"`` (LiteMedSAM: image min-max scaled to [0, 1], no mean/std) or
    ``"meanstd"`` (SAM: 0..255 pixels, then ``(x - pixel_mean) / pixel_std`` per channel).
    """

    family: str  # "litemedsam" | "sam"
    img_size: int  # square encoder input side, after resize-longest-side + pad
    embed_dim: int  # image embedding channels (256 for every SAM)
    embed_size: int  # image embedding side (img_size // 16 for SAM, 64 for LiteMedSAM)
    normalisation: str
    pixel_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def embed_shape(self) -> tuple[int, int, int]:
        return (self.embed_dim, self.embed_size, self.embed_size)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.img_size, self.img_size)

    def pixel_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (low, high) of valid encoder inputs, shaped (1, 3, 1, 1), for clamping."""
        import torch

        if self.normalisation == "minmax":
            lo, hi = torch.zeros(3), torch.ones(3)
        else:
            mean, std = torch.tensor(self.pixel_mean), torch.tensor(self.pixel_std)
            lo, hi = (0.0 - mean) / std, (255.0 - mean) / std
        return lo.view(1, 3, 1, 1), hi.view(1, 3, 1, 1)

    def normalise(self, raw):
        """Raw intensities in [0, 1], channels first ((3, H, W) or (B, 3, H, W), numpy or torch) -> encoder
        input space: unchanged for min-max, ``(x * 255 - mean) / std`` for mean/std."""
        if self.normalisation == "minmax":
            return raw
        if hasattr(raw, "new_tensor"):  # torch, without importing it here
            mean, std = raw.new_tensor(self.pixel_mean), raw.new_tensor(self.pixel_std)
        else:
            import numpy as np

            mean, std = np.asarray(self.pixel_mean, raw.dtype), np.asarray(self.pixel_std, raw.dtype)
        return (raw * 255.0 - mean.reshape(3, 1, 1)) / std.reshape(3, 1, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamSpec":
        """Inverse of ``to_dict`` after a JSON round trip (lists back to tuples)."""
        data = dict(data)
        data.update({k: tuple(data[k]) for k in ("pixel_mean", "pixel_std") if k in data})
        return cls(**data)


@dataclass
class SamBundle:
    """A loaded SAM: the torch module (``.image_encoder``, ``.prompt_encoder``, ``.mask_decoder``), its
    spec and where its weights came from (``weights_sha256`` identifies them in every provenance record)."""

    name: str
    model: nn.Module
    spec: SamSpec
    weights_sha256: str | None = None
    checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{(self.weights_sha256 or 'random')[:12]}"

    def to(self, device: str | torch.device) -> "SamBundle":
        self.model.to(device)
        return self
