"""Scale reparameterization math (RepQ-ViT), backend-free.

For a post-LayerNorm activation X (..., C) feeding a Linear W (out x C) with bias c, and per-channel
asymmetric quantization parameters (s_j, z_j) at b bits:

    s~ = mean_j s_j,  z~ = round(mean_j z_j),  r_j = s_j / s~,  d_j = s_j (z_j - z~)
    LayerNorm:  gamma' = gamma / r,  beta' = (beta + d) / r
    Linear:     W' = W diag(r),      c' = c - W d

X' = (X + d) / r then spans [-s~ z~, s~ (2^b - 1 - z~)] in every channel: one per-tensor grid fits all
channels, and W' X' + c' = W X + c exactly (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ChannelQuantParams:
    scale: torch.Tensor  # (C,)
    zero_point: torch.Tensor  # (C,) integer-valued float


def zero_inclusive(minimum: torch.Tensor, maximum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel [min, max] widened to include 0, float64 (what an asymmetric quantizer range covers)."""
    lo = torch.minimum(minimum.double(), torch.zeros_like(minimum, dtype=torch.float64))
    hi = torch.maximum(maximum.double(), torch.zeros_like(maximum, dtype=torch.float64))
    return lo, hi


def channel_params(minimum: torch.Tensor, maximum: torch.Tensor, bits: int) -> ChannelQuantParams:
    """Asymmetric uniform per-channel params covering [min_j, max_j] (ranges always include 0)."""
    lo, hi = zero_inclusive(minimum, maximum)
    levels = 2**bits - 1
    scale = ((hi - lo) / levels).clamp_min(1e-8)
    zero = torch.round(-lo / scale).clamp(0, levels)
    return ChannelQuantParams(scale, zero)


@dataclass
class Fold:
    """What one fold changed: enough to undo it (``unfold``) and to compensate padding (``pad_value``)."""

    r: torch.Tensor  # (C,) float64
    d: torch.Tensor  # (C,) float64
    tensor_scale: float  # s~
    tensor_zero_point: int  # z~
    bits: int

    @property
    def pad_value(self) -> torch.Tensor:
        """The reparameterized image of a zero activation: (0 + d) / r."""
        return self.d / self.r


def fold_params(params: ChannelQuantParams, bits: int, strength: float = 1.0) -> Fold:
    """``strength`` alpha in [0, 1] folds r**alpha: 1 is RepQ-ViT (one per-tensor grid), smaller values leave
    part of the channel spread in the activation instead of moving all of it into the next Linear's input
    columns (which per-output-channel weight quantization then has to cover). The fold is exact for any alpha."""
    s_tilde = params.scale.mean()
    z_tilde = torch.round(params.zero_point.mean())
    r = (params.scale / s_tilde) ** strength
    d = params.scale * (params.zero_point - z_tilde)
    return Fold(r, d, float(s_tilde), int(z_tilde), bits)


@torch.no_grad()
def apply_fold(norm: nn.LayerNorm, linear: nn.Linear, fold: Fold) -> None:
    """Fold (r, d) into ``norm``'s affine and ``linear``'s weight/bias, in place (float64 arithmetic)."""
    r, d = fold.r, fold.d
    w = linear.weight.double()
    bias = linear.bias.double() if linear.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    new_bias = bias - w @ d
    norm.weight.copy_((norm.weight.double() / r).to(norm.weight.dtype))
    norm.bias.copy_(((norm.bias.double() + d) / r).to(norm.bias.dtype))
    linear.weight.copy_((w * r).to(linear.weight.dtype))
    if linear.bias is None:
        linear.bias = nn.Parameter(new_bias.to(linear.weight.dtype), requires_grad=False)
    else:
        linear.bias.copy_(new_bias.to(linear.bias.dtype))


@torch.no_grad()
def undo_fold(norm: nn.LayerNorm, linear: nn.Linear, fold: Fold) -> None:
    """Inverse of ``apply_fold``."""
    r, d = fold.r, fold.d
    w = linear.weight.double() / r
    norm.weight.copy_((norm.weight.double() * r).to(norm.weight.dtype))
    norm.bias.copy_((norm.bias.double() * r - d).to(norm.bias.dtype))
    linear.weight.copy_(w.to(linear.weight.dtype))
    linear.bias.copy_((linear.bias.double() + w @ d).to(linear.bias.dtype))
