"""Pseudo-positive labels: random object masks with box prompts, evolved toward SAM's own predictions.

No auxiliary network and no real data: evolution replaces a mask by the largest connected component of
the FP SAM's thresholded prediction for its box, when that component's area stays within bounds
(otherwise the old mask is kept: a collapsing or exploding prediction is rejected).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage


def random_masks(count: int, size: int, generator: torch.Generator, min_axis: float = 0.06,
                 max_axis: float = 0.22) -> torch.Tensor:
    """``count`` random rotated ellipses, optionally blob-deformed, each (size, size) float {0, 1}."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    masks = []
    for _ in range(count):
        r = torch.rand(7, generator=generator)
        a = (min_axis + (max_axis - min_axis) * r[0]) * size
        b = (min_axis + (max_axis - min_axis) * r[1]) * size
        margin = max(a, b).item() + 0.04 * size
        cy = margin + (size - 2 * margin) * r[2]
        cx = margin + (size - 2 * margin) * r[3]
        theta = math.pi * r[4]
        dy, dx = yy - cy, xx - cx
        u = dx * torch.cos(theta) + dy * torch.sin(theta)
        v = -dx * torch.sin(theta) + dy * torch.cos(theta)
        angle = torch.atan2(v, u)
        # a smooth radial wobble turns some ellipses into blobs
        wobble = 1 + 0.25 * r[5] * torch.sin(3 * angle + 2 * math.pi * r[6])
        masks.append(((u / a) ** 2 + (v / b) ** 2 <= wobble**2).float())
    return torch.stack(masks)


def boxes_from_masks(masks: torch.Tensor, jitter: float, generator: torch.Generator) -> torch.Tensor:
    """(…, S, S) masks -> (…, 4) xyxy tight boxes with independent ±``jitter`` px noise, clipped to the image."""
    size = masks.shape[-1]
    flat = masks.reshape(-1, size, size) > 0.5
    boxes = torch.zeros(flat.shape[0], 4)
    for i, m in enumerate(flat):
        ys = torch.nonzero(m.any(dim=1)).flatten()
        xs = torch.nonzero(m.any(dim=0)).flatten()
        if len(ys) == 0:
            boxes[i] = torch.tensor([0.0, 0.0, size - 1.0, size - 1.0])
        else:
            boxes[i] = torch.tensor([xs[0], ys[0], xs[-1], ys[-1]], dtype=torch.float32)
    noise = (torch.rand(boxes.shape, generator=generator) * 2 - 1) * jitter
    boxes = (boxes + noise).clamp(0, size - 1)
    boxes[:, 2] = torch.maximum(boxes[:, 2], boxes[:, 0] + 1)
    boxes[:, 3] = torch.maximum(boxes[:, 3], boxes[:, 1] + 1)
    return boxes.reshape(*masks.shape[:-2], 4)


def evolve_masks(masks: torch.Tensor, logits: torch.Tensor, min_area: float = 0.003,
                 max_area: float = 0.35) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each mask (…, S, S) by the largest component of ``logits > 0`` (…, S, S) when its area
    fraction lies in [min_area, max_area]. Returns (new masks, bool accepted (…))."""
    size = masks.shape[-1]
    flat_masks = masks.reshape(-1, size, size).clone()
    pred = (logits.reshape(-1, size, size) > 0).cpu().numpy()
    accepted = torch.zeros(flat_masks.shape[0], dtype=torch.bool)
    for i, p in enumerate(pred):
        lab, n = ndimage.label(p)
        if n == 0:
            continue
        areas = np.bincount(lab.ravel())[1:]
        comp = lab == (int(areas.argmax()) + 1)
        frac = comp.mean()
        if min_area <= frac <= max_area:
            flat_masks[i] = torch.from_numpy(ndimage.binary_fill_holes(comp).astype(np.float32))
            accepted[i] = True
    return flat_masks.reshape(masks.shape), accepted.reshape(masks.shape[:-2])


def shift_labels(masks: torch.Tensor, boxes: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                 flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply each image's roll (dy, dx) and horizontal flip to its labels: masks (B, K, S, S) move with the
    image (zero fill where the image wraps round), boxes (B, K, 4) move and are clipped."""
    size = masks.shape[-1]
    idx = torch.arange(size, device=masks.device)
    src_y = (idx[None, :] - dy[:, None]) % size  # (B, S)
    src_x = (idx[None, :] - dx[:, None]) % size
    valid_y = ((idx[None, :] - dy[:, None]) >= 0) & ((idx[None, :] - dy[:, None]) < size)
    valid_x = ((idx[None, :] - dx[:, None]) >= 0) & ((idx[None, :] - dx[:, None]) < size)
    b = torch.arange(masks.shape[0], device=masks.device)[:, None, None]
    out = masks.permute(0, 2, 3, 1)[b, src_y[:, :, None], src_x[:, None, :]]  # (B, S, S, K)
    out = out * (valid_y[:, :, None] & valid_x[:, None, :])[..., None]
    out = out.permute(0, 3, 1, 2)
    shift = torch.stack([dx, dy, dx, dy], dim=-1)[:, None, :].to(boxes.dtype)
    moved = (boxes + shift).clamp(0, size - 1)
    flipped = torch.stack([size - 1 - moved[..., 2], moved[..., 1], size - 1 - moved[..., 0], moved[..., 3]], -1)
    f = flip[:, None, None, None].to(out.dtype)
    out = f * out.flip(-1) + (1 - f) * out
    moved = torch.where(flip[:, None, None], flipped, moved)
    return out, moved


class _Permute(torch.autograd.Function):
    """out[b, :, j] = x[b, :, index[b, j]] for a per-image permutation ``index`` (B, N) of the N positions.

    The backward is a gather by the inverse permutation: the default backward of a gather (a scatter-add with
    atomics) cost 6.8 % of the synthesis step on an H100 (docs/notebook/2026-11-22.md §2)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(index.shape[1], device=index.device).expand_as(index)
        ctx.save_for_backward(torch.empty_like(index).scatter_(1, index, positions))
        return x.gather(2, index[:, None].expand(-1, x.shape[1], -1))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (inverse,) = ctx.saved_tensors
        return grad.gather(2, inverse[:, None].expand(-1, grad.shape[1], -1)), None


def augment_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Roll each image (B, C, S, S) by its own (dy, dx) (wrapping round) and flip it horizontally if asked."""
    size_y, size_x = x.shape[-2:]
    iy = torch.arange(size_y, device=x.device)
    ix = torch.arange(size_x, device=x.device)
    src_y = (iy[None, :] - dy[:, None]) % size_y
    src_x = (ix[None, :] - dx[:, None]) % size_x
    src_x = torch.where(flip[:, None], src_x.flip(-1), src_x)
    index = (src_y[:, :, None] * size_x + src_x[:, None, :]).flatten(1)  # (B, S*S), a permutation per image
    return _Permute.apply(x.flatten(2), index).view_as(x)
