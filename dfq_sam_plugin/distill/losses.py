"""Distillation losses: relative MSE of image embeddings, per-pixel KL of mask logits, attention maps of features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def relative_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per-image ||s - t||² / ||t||², averaged over the batch."""
    s, t = student.float().flatten(1), teacher.float().flatten(1)
    return ((s - t).pow(2).sum(1) / t.pow(2).sum(1).clamp_min(1e-12)).mean()


def mask_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of KL(Bernoulli(σ(t)) || Bernoulli(σ(s))): zero iff the logits agree."""
    s, t = student_logits.float(), teacher_logits.float()
    p = torch.sigmoid(t)
    # written out in log-sigmoids, not as a difference of two cross-entropies: exact 0 for equal logits and no
    # cancellation when the masks nearly agree (small terms, as a block's reconstruction sees them)
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean().clamp_min(0)


def _channel_last(x: torch.Tensor) -> torch.Tensor:
    """A feature as (B, positions, channels): tokens (B, N, C) and SAM ViT's (B, H, W, C) as they are, a
    convolution's (B, C, H, W) (square spatial last dims, another first one) moved channels-last."""
    if x.ndim == 4 and x.shape[-1] == x.shape[-2] and x.shape[1] != x.shape[-1]:
        x = x.permute(0, 2, 3, 1)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def attention_map_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """AKT's refined feature distillation: where a feature's energy sits. The spatial map (mean over channels of
    f²) and the channel map (mean over positions of f²), each L2-normalised per image; the squared distance of
    the student's maps to the teacher's, summed over both maps, averaged over the batch. Zero iff the maps agree;
    blind to a common per-image scale of the feature (a map is normalised)."""
    s, t = _channel_last(student.float()).pow(2), _channel_last(teacher.float()).pow(2)
    loss = s.new_zeros(())
    for dim in (2, 1):  # spatial map (mean over channels), channel map (mean over positions)
        ms, mt = F.normalize(s.mean(dim), dim=1), F.normalize(t.mean(dim), dim=1)
        loss = loss + (ms - mt).pow(2).sum(1).mean()
    return loss
