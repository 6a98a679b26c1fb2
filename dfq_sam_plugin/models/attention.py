"""Encoder attention with its matmul operands reachable: q, k, v and the post-softmax probabilities.

A quantizer can only act on what a module boundary exposes; SAM ViT's and TinyViT's attention compute
``softmax(q kᵀ) v`` inline. ``QuantPointAttention`` wraps either attention module and recomputes the same
float function with four slots (``q``, ``k``, ``v``, ``probs``) that are ``nn.Identity`` until a backend puts
its quantizers there. With identity slots the output equals the wrapped module's (tested to float error).
"""

from __future__ import annotations

import torch
from torch import nn

SLOTS = ("q", "k", "v", "probs")


def _is_tinyvit_attention(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("norm", "qkv", "proj", "key_dim", "attention_biases", "dh"))


def _is_sam_vit_attention(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("qkv", "proj", "num_heads", "use_rel_pos")) and not hasattr(m, "norm")


class QuantPointAttention(nn.Module):
    """The wrapped attention's forward, with ``q``/``k``/``v``/``probs`` slots before the two matmuls."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        if not (_is_tinyvit_attention(attn) or _is_sam_vit_attention(attn)):
            raise TypeError(f"{type(attn).__name__} is neither a TinyViT nor a SAM ViT encoder attention")
        self.attn = attn
        self.tinyvit = _is_tinyvit_attention(attn)
        for slot in SLOTS:
            setattr(self, slot, nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._tinyvit(x) if self.tinyvit else self._sam_vit(x)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias) -> torch.Tensor:
        logits = self.q(q) @ self.k(k).transpose(-2, -1)
        if bias is not None:
            logits = bias(logits)
        return self.probs(logits.softmax(dim=-1)) @ self.v(v)

    def _tinyvit(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn
        b, n, _ = x.shape
        qkv = a.qkv(a.norm(x))
        q, k, v = qkv.view(b, n, a.num_heads, -1).split([a.key_dim, a.key_dim, a.d], dim=3)
        q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
        ab = a.attention_biases[:, a.attention_bias_idxs] if a.training else a.ab
        # (q k^T) * scale == (q * scale) k^T up to rounding; scaling q first puts the scale inside the q slot
        out = self._attend(q * a.scale, k, v, lambda logits: logits + ab)
        return a.proj(out.transpose(1, 2).reshape(b, n, a.dh))

    def _sam_vit(self, x: torch.Tensor) -> torch.Tensor:
        from segment_anything.modeling.image_encoder import add_decomposed_rel_pos

        a = self.attn
        b, h, w, _ = x.shape
        qkv = a.qkv(x).reshape(b, h * w, 3, a.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * a.num_heads, h * w, -1).unbind(0)
        bias = None
        if a.use_rel_pos:
            def bias(logits):
                return add_decomposed_rel_pos(logits, q, a.rel_pos_h, a.rel_pos_w, (h, w), (h, w))
        out = self._attend(q * a.scale, k, v, bias)
        return a.proj(out.view(b, a.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1))


def wrap_attention(encoder: nn.Module) -> list[str]:
    """Replace every encoder attention (also one inside ``PadCompensation``) by a ``QuantPointAttention``, in
    place; returns the qualified names of the wrappers."""
    names = []
    for name, module in list(encoder.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, QuantPointAttention) or isinstance(module, QuantPointAttention):
                continue
            if _is_tinyvit_attention(child) or _is_sam_vit_attention(child):
                setattr(module, child_name, QuantPointAttention(child))
                names.append(f"{name}.{child_name}" if name else child_name)
    if not names:
        raise ValueError(f"no SAM ViT or TinyViT attention found in {type(encoder).__name__}")
    return names
