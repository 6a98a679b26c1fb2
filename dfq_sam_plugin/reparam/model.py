"""Scale reparameterization of a SAM image encoder: find the post-LayerNorm -> Linear pairs, collect their
per-channel ranges on a calibration set, fold (see ``scale``), and keep SAM ViT's window padding exact.

Pairs (docs/architecture.md#models): SAM ViT ``blocks[i].norm1 -> attn.qkv`` and ``norm2 -> mlp.lin1``; TinyViT
``layers[1..3].blocks[j].attn.norm -> attn.qkv`` and ``mlp.norm -> mlp.fc1``. The mask decoder is
post-norm with positional encodings added before q/k: it is never folded.

Exactness trap: SAM ViT pads windows with zeros *after* ``norm1``; in the reparameterized space a zero
activation is v = d/r, so padded tokens must get v. ``norm1``'s bias gives up v (its output is shifted by
-v, padding stays 0) and ``PadCompensation`` adds v to every token of the windows: real tokens are back where
they were, padded ones get v. A (C,) add, not a full padding-shaped constant: an earlier version added
``mask * v``, which OpenVINO folds into a (windows * ws * ws, C) constant per block — 30 M floats (120 MB)
and a slower encoder for ViT-B at 1024 (docs/notebook/2026-11-22.md §5). TinyViT pads before its norm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from .depthwise import EqualizedDepthwise, channel_scales, find_depthwise, unwrap_depthwise, wrap_depthwise
from .scale import Fold, apply_fold, channel_params, fold_params, undo_fold
from .stats import collect_ranges


@dataclass
class Pair:
    name: str  # the norm's qualified name inside the encoder
    norm: nn.LayerNorm
    linear: nn.Linear
    window_block: nn.Module | None = None  # a SAM ViT block that pads norm1's output into windows


class PadCompensation(nn.Module):
    """Wraps a windowed SAM ViT attention whose ``norm1`` bias gave up ``pad_value``: adds it back to every
    token, so the tokens that window padding filled with 0 get ``pad_value`` and the others are unchanged."""

    def __init__(self, attn: nn.Module, pad_value: torch.Tensor) -> None:
        super().__init__()
        self.attn = attn
        self.register_buffer("pad_value", pad_value)  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x + self.pad_value.to(x.dtype))


def _is_sam_vit(encoder: nn.Module) -> bool:
    return hasattr(encoder, "blocks") and hasattr(encoder, "patch_embed") and hasattr(encoder, "neck")


def find_pairs(encoder: nn.Module) -> list[Pair]:
    pairs: list[Pair] = []
    if _is_sam_vit(encoder):
        for i, blk in enumerate(encoder.blocks):
            attn = blk.attn.attn if isinstance(blk.attn, PadCompensation) else blk.attn
            pairs.append(Pair(f"blocks.{i}.norm1", blk.norm1, attn.qkv, blk if blk.window_size > 0 else None))
            pairs.append(Pair(f"blocks.{i}.norm2", blk.norm2, blk.mlp.lin1))
    elif hasattr(encoder, "layers"):  # TinyViT
        for li, layer in enumerate(encoder.layers):
            for bj, blk in enumerate(getattr(layer, "blocks", [])):
                if hasattr(blk, "attn") and hasattr(blk, "mlp"):
                    pairs.append(Pair(f"layers.{li}.blocks.{bj}.attn.norm", blk.attn.norm, blk.attn.qkv))
                    pairs.append(Pair(f"layers.{li}.blocks.{bj}.mlp.norm", blk.mlp.norm, blk.mlp.fc1))
    if not pairs:
        raise ValueError(f"no LayerNorm -> Linear pairs found in {type(encoder).__name__}: expected a SAM ViT "
                         f"(ImageEncoderViT) or a TinyViT encoder")
    return pairs


def _token_grid(encoder: nn.Module) -> int:
    return encoder.img_size // encoder.patch_embed.proj.stride[0]


@dataclass
class Reparameterization:
    """The folds applied to an encoder (per norm name), enough to undo them."""

    folds: dict[str, Fold] = field(default_factory=dict)
    bits: int = 8
    depthwise: dict[str, torch.Tensor] = field(default_factory=dict)  # conv name -> s (depthwise.py)

    def summary(self) -> dict[str, float]:
        spread = [float(f.r.max() / f.r.min()) for f in self.folds.values()]
        dw = [float(s.max() / s.min()) for s in self.depthwise.values()]
        return {"pairs": len(self.folds), "bits": self.bits,
                "max_channel_scale_ratio": max(spread) if spread else 1.0,
                "depthwise_equalized": len(self.depthwise), "max_depthwise_scale_ratio": max(dw) if dw else 1.0}


@torch.no_grad()
def reparameterize(encoder: nn.Module, batches: Iterable[torch.Tensor], bits: int = 8,
                   strength: float = 1.0, depthwise: bool = False) -> Reparameterization:
    """Collect per-channel ranges of every post-LayerNorm activation on ``batches`` (encoder inputs) and fold
    them into the LayerNorm and the next Linear, in place; with ``depthwise``, also equalize every depthwise
    convolution's input (``depthwise.py``, full strength) from the same pass. The float function is unchanged."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in [2, 16]; got {bits}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1]; got {strength}")
    pairs = find_pairs(encoder)
    if (any(isinstance(getattr(p.window_block, "attn", None), PadCompensation) for p in pairs)
            or any(isinstance(m, EqualizedDepthwise) for m in encoder.modules())):
        raise ValueError("this encoder is already reparameterized; undo() it first")
    convs = find_depthwise(encoder) if depthwise else {}
    ranges = collect_ranges(encoder, {p.name: p.norm for p in pairs}, batches, inputs=convs)
    result = Reparameterization(bits=bits, depthwise={name: channel_scales(ranges[name]) for name in convs})
    wrap_depthwise(encoder, result.depthwise)
    for pair in pairs:
        rng = ranges[pair.name]
        fold = fold_params(channel_params(rng.min, rng.max, bits), bits, strength)
        apply_fold(pair.norm, pair.linear, fold)
        result.folds[pair.name] = fold
    add_pad_compensation(encoder, {name: fold.pad_value for name, fold in result.folds.items()})
    return result


@torch.no_grad()
def add_pad_compensation(encoder: nn.Module, pad_values: dict[str, torch.Tensor] | None = None) -> None:
    """Wrap every SAM ViT windowed attention whose windows need padding in a ``PadCompensation`` and move
    ``pad_values[norm name]`` out of that ``norm1``'s bias (TinyViT: no change). Without ``pad_values`` the
    values are 0 and the biases untouched: the structure for a saved state dict to fill in."""
    for pair in find_pairs(encoder):
        blk = pair.window_block
        if blk is None or isinstance(blk.attn, PadCompensation) or _token_grid(encoder) % blk.window_size == 0:
            continue
        bias = pair.norm.bias
        value = pad_values[pair.name] if pad_values else torch.zeros(bias.shape[0], dtype=torch.float64)
        bias.copy_((bias.double() - value.to(bias.device)).to(bias.dtype))
        blk.attn = PadCompensation(blk.attn, value.to(bias))


@torch.no_grad()
def undo(encoder: nn.Module, result: Reparameterization) -> None:
    """Restore the encoder that ``reparameterize`` changed."""
    unwrap_depthwise(encoder)
    for pair in find_pairs(encoder):
        if pair.window_block is not None and isinstance(pair.window_block.attn, PadCompensation):
            comp = pair.window_block.attn
            pair.norm.bias.copy_((pair.norm.bias.double() + comp.pad_value.double()).to(pair.norm.bias.dtype))
            pair.window_block.attn = comp.attn
        if pair.name in result.folds:
            undo_fold(pair.norm, pair.linear, result.folds[pair.name])
