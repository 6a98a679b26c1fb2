"""Depthwise-convolution input equalization: the per-channel spread of a depthwise convolution's input moves
into its weights, so a per-tensor activation quantizer sees channels of one range.

A depthwise convolution (groups = in = out channels) computes output channel c from input channel c alone, so
with ``s_c = (range_c / mean_j range_j) ** alpha`` (ranges of the input on the calibration set)

    x'_c = x_c / s_c   (``EqualizedDepthwise`` multiplies by 1/s in front of the conv: in OpenVINO one
                        Multiply by a (1, C, 1, 1) constant, which fuses into the preceding activation)
    w'_c = w_c * s_c   (the conv's weight rows; bias and any BatchNorm after the conv unchanged)

is exact in float, and per-output-channel weight quantization is unaffected (each row scales as a whole), so
alpha = 1 costs nothing on the weight side — unlike the LayerNorm fold, whose ratio lands on the input
columns of a dense Linear. Why it matters: TinyViT's depthwise inputs (post-GELU in MBConv/PatchMerging, the
residual stream in front of ``local_conv``) have per-channel ranges that differ by orders of magnitude; with
one 8-bit per-tensor grid they were the largest activation error of LiteMedSAM (stage-0 ``conv2`` alone:
0.35 relative encoder-output error, docs/notebook/2026-11-22.md §4). SAM ViT has no depthwise convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from .scale import zero_inclusive
from .stats import ChannelRange


class EqualizedDepthwise(nn.Module):
    """``conv(x * inv_scale)`` for a depthwise ``conv`` whose weight rows were multiplied by ``1 / inv_scale``."""

    def __init__(self, conv: nn.Conv2d, inv_scale: torch.Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("inv_scale", inv_scale)  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x * self.inv_scale.to(x.dtype).view(1, -1, 1, 1))


def find_depthwise(encoder: nn.Module) -> dict[str, nn.Conv2d]:
    """Every depthwise ``nn.Conv2d`` of ``encoder`` by qualified name (wrapped ones excluded)."""
    wrapped = {id(m.conv) for m in encoder.modules() if isinstance(m, EqualizedDepthwise)}
    return {name: m for name, m in encoder.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels
            and id(m) not in wrapped}


def channel_scales(rng: ChannelRange, strength: float = 1.0) -> torch.Tensor:
    """s_c = (range_c / mean range) ** strength, float64; ranges include 0 (as quantizer ranges do)."""
    lo, hi = zero_inclusive(rng.min, rng.max)
    width = (hi - lo).clamp_min(1e-8)
    return (width / width.mean()) ** strength


@torch.no_grad()
def wrap_depthwise(encoder: nn.Module, scales: dict[str, torch.Tensor] | None = None) -> None:
    """Wrap each depthwise conv named in ``scales`` (all of them when None, with s = 1: the structure for a
    saved state dict to fill in) in an ``EqualizedDepthwise`` and multiply its weight rows by s."""
    convs = find_depthwise(encoder)
    for name, conv in convs.items():
        if scales is not None and name not in scales:
            continue
        s = scales[name] if scales is not None else torch.ones(conv.out_channels, dtype=torch.float64)
        w = conv.weight
        w.copy_((w.double() * s.to(w.device).view(-1, 1, 1, 1)).to(w.dtype))
        encoder.set_submodule(name, EqualizedDepthwise(conv, (1.0 / s).to(w)))


@torch.no_grad()
def unwrap_depthwise(encoder: nn.Module) -> None:
    """Inverse of ``wrap_depthwise``: the weight rows get 1/s back and the wrappers go."""
    for name, m in list(encoder.named_modules()):
        if isinstance(m, EqualizedDepthwise):
            w = m.conv.weight
            w.copy_((w.double() * m.inv_scale.double().view(-1, 1, 1, 1)).to(w.dtype))
            encoder.set_submodule(name, m.conv)
