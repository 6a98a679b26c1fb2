"""Capture the attention·V output of every encoder attention block (the input of ``attn.proj``).

Works for SAM ViT (``segment_anything.modeling.image_encoder.Attention``: proj input (B·windows, H, W, C))
and TinyViT (``Attention``: proj input (B·windows, N, heads·d)). Heads are averaged: U is (G, N, d) with
G = images × windows, the groups within which patch similarity is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttentionBlock:
    name: str
    module: nn.Module
    num_heads: int


def attention_blocks(encoder: nn.Module) -> list[AttentionBlock]:
    blocks = [
        AttentionBlock(name, m, int(m.num_heads))
        for name, m in encoder.named_modules()
        if isinstance(getattr(m, "proj", None), nn.Linear) and isinstance(getattr(m, "qkv", None), nn.Linear)
        and hasattr(m, "num_heads")
    ]
    if not blocks:
        raise ValueError(f"no attention blocks (modules with .qkv, .proj and .num_heads) in {type(encoder).__name__}")
    return blocks


class AttentionCapture:
    """``with AttentionCapture(encoder) as cap: encoder(x)``; then ``cap.outputs`` is a list of (G, N, d).

    For a compiled encoder the hooks must stay put (adding or removing one invalidates the compiled graph):
    ``attach()`` once, ``outputs.clear()`` before each forward, ``detach()`` at the end."""

    def __init__(self, encoder: nn.Module, enabled: bool = True) -> None:
        self.blocks = attention_blocks(encoder) if enabled else []
        self.outputs: list[torch.Tensor] = []
        self._handles: list = []

    def _hook(self, heads: int):
        def pre_hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0]
            x = x.reshape(x.shape[0], -1, x.shape[-1])  # (G, N, heads*d)
            self.outputs.append(x.unflatten(-1, (heads, -1)).mean(dim=-2))

        return pre_hook

    def attach(self) -> "AttentionCapture":
        if not self._handles:
            self._handles = [b.module.proj.register_forward_pre_hook(self._hook(b.num_heads)) for b in self.blocks]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "AttentionCapture":
        self.outputs = []
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()
