"""DFQ-SAM loss terms (docs/architecture.md#synthesis). Every function returns one value per image (shape (B,)), so the total
loss is a sum over images and each image's gradient depends on that image alone."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25) -> torch.Tensor:
    """logits, target (B, K, H, W) -> (B, K), mean over pixels (as SAM's training loss)."""
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits).flatten(2)
    target = target.flatten(2)
    return 1 - (2 * (prob * target).sum(-1) + eps) / (prob.sum(-1) + target.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0).flatten(2).float()
    target = target.flatten(2)
    inter = (pred * target).sum(-1)
    union = pred.sum(-1) + target.sum(-1) - inter
    return inter / union.clamp_min(1.0)


def segmentation_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor,
                      focal_weight: float = 20.0) -> torch.Tensor:
    """Σ_k 20·Focal + Dice + MSE(IoU_pred, IoU(mask, target)) -> (B,)."""
    logits, target = logits.float(), target.float()
    with torch.no_grad():
        actual_iou = mask_iou(logits, target)
    per_prompt = (focal_weight * focal_loss(logits, target) + dice_loss(logits, target)
                  + (iou_pred.float() - actual_iou) ** 2)
    return per_prompt.sum(dim=1)


def kde_entropy(samples: torch.Tensor, bandwidth: float = 0.01, points: int = 10) -> torch.Tensor:
    """Differential entropy of each row of ``samples`` (G, M) by Gaussian KDE on ``points`` points from
    the row's min to max, trapezoid rule, f + 1e-4 inside the log -> (G,)."""
    lo = samples.min(dim=1, keepdim=True).values
    hi = samples.max(dim=1, keepdim=True).values
    t = torch.linspace(0, 1, points, device=samples.device, dtype=samples.dtype)
    grid = lo + (hi - lo) * t  # (G, P)
    z = (grid.unsqueeze(-1) - samples.unsqueeze(1)) / bandwidth  # (G, P, M)
    f = torch.exp(-0.5 * z**2).mean(-1) / (bandwidth * math.sqrt(2 * math.pi))  # (G, P)
    f = f + 1e-4
    return -torch.trapezoid(f * torch.log(f), grid, dim=-1)


def subsample_tokens(u: torch.Tensor, images: int, max_tokens: int | None = 256,
                     generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """U (G, N, d) with G = images × windows -> (G, min(N, max_tokens), d): one random subset of the patches
    per image (drawn from that image's generator), the same for all of its windows."""
    groups, n, d = u.shape
    if max_tokens is None or n <= max_tokens:
        return u
    gens = generators or [None] * images
    keep = torch.stack([torch.randperm(n, generator=g)[:max_tokens] for g in gens]).to(u.device)
    keep = keep.repeat_interleave(groups // images, dim=0)  # (G, max_tokens)
    return u.gather(1, keep[..., None].expand(-1, -1, d))


def pair_entropy(u: torch.Tensor, images: int) -> torch.Tensor:
    """Entropy of the cosine similarity of all patch pairs in each group of U (G, n, d), averaged over the
    G/images groups (windows) of each image -> (images,)."""
    u = u.float()
    groups, n, _ = u.shape
    un = F.normalize(u, dim=-1)
    sim = un @ un.transpose(1, 2)  # (G, n, n)
    iu = torch.triu_indices(n, n, offset=1, device=u.device)
    pairs = sim[:, iu[0], iu[1]]  # (G, n(n-1)/2)
    return kde_entropy(pairs).view(images, groups // images).mean(dim=1)


def patch_similarity_entropy(u: torch.Tensor, images: int, max_tokens: int | None = 256,
                             generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """Patch-similarity entropy of each image (PSAQ-ViT's PSE): long sequences are sub-sampled to
    ``max_tokens`` patches to keep the N² pairs affordable at 1024 input -> (images,)."""
    return pair_entropy(subsample_tokens(u, images, max_tokens, generators), images)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of the L2 norms of the four directional differences of each image (B, C, H, W) -> (B,)."""
    d1 = x[..., :, :-1] - x[..., :, 1:]
    d2 = x[..., :-1, :] - x[..., 1:, :]
    d3 = x[..., 1:, :-1] - x[..., :-1, 1:]
    d4 = x[..., :-1, :-1] - x[..., 1:, 1:]
    return sum(d.flatten(1).norm(dim=1) for d in (d1, d2, d3, d4))


def tv_target(shape: tuple[int, int, int], rms_step: float) -> float:
    """TV value of an image whose neighbour differences have RMS ``rms_step`` in every direction."""
    c, h, w = shape
    return 4.0 * rms_step * math.sqrt(c * h * w)
