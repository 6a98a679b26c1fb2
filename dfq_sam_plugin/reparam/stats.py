"""Per-channel ranges of activations, collected with forward hooks over a calibration set."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class ChannelRange:
    """Running per-channel min/max of a tensor whose channels lie along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        self.dim = dim
        self.min: torch.Tensor | None = None
        self.max: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().movedim(self.dim, -1)
        flat = x.reshape(-1, x.shape[-1]).float()
        lo, hi = flat.min(dim=0).values.cpu(), flat.max(dim=0).values.cpu()
        self.min = lo if self.min is None else torch.minimum(self.min, lo)
        self.max = hi if self.max is None else torch.maximum(self.max, hi)


@torch.no_grad()
def collect_ranges(model: nn.Module, modules: dict[str, nn.Module], batches: Iterable[torch.Tensor],
                   forward=None, inputs: dict[str, nn.Module] | None = None) -> dict[str, ChannelRange]:
    """Run ``forward(batch)`` (default ``model(batch)``) over ``batches`` and record, in one pass, the
    per-channel range of each of ``modules``' output (channels last) and of each of ``inputs``' first input
    (NCHW: channels at dim 1)."""
    inputs = inputs or {}
    ranges = {**{name: ChannelRange() for name in modules}, **{name: ChannelRange(1) for name in inputs}}
    handles = [m.register_forward_hook(lambda _m, _i, out, r=ranges[name]: r.update(out))
               for name, m in modules.items()]
    handles += [m.register_forward_pre_hook(lambda _m, args, r=ranges[name]: r.update(args[0]))
                for name, m in inputs.items()]
    try:
        count = 0
        for batch in batches:
            (forward or model)(batch)
            count += 1
        if count == 0:
            raise ValueError("the calibration set is empty")
    finally:
        for h in handles:
            h.remove()
    return ranges
