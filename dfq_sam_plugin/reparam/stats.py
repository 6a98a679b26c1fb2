"""Per-channel ranges of activations, collected with forward hooks over a calibration set."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class ChannelRange:
    """Running per-channel min/max of a module's output (channels last)."""

    def __init__(self) -> None:
        self.min: torch.Tensor | None = None
        self.max: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        flat = x.detach().reshape(-1, x.shape[-1]).float()
        lo, hi = flat.min(dim=0).values.cpu(), flat.max(dim=0).values.cpu()
        self.min = lo if self.min is None else torch.minimum(self.min, lo)
        self.max = hi if self.max is None else torch.maximum(self.max, hi)


@torch.no_grad()
def collect_ranges(model: nn.Module, modules: dict[str, nn.Module], batches: Iterable[torch.Tensor],
                   forward=None) -> dict[str, ChannelRange]:
    """Run ``forward(batch)`` (default ``model(batch)``) over ``batches`` and record the per-channel range of
    each named module's output."""
    ranges = {name: ChannelRange() for name in modules}
    handles = [m.register_forward_hook(lambda _m, _i, out, r=ranges[name]: r.update(out))
               for name, m in modules.items()]
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
