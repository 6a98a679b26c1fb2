"""Distillation losses: relative MSE of image embeddings and per-pixel KL of mask logits."""

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
    return (F.binary_cross_entropy_with_logits(s, p) - F.binary_cross_entropy_with_logits(t, p)).clamp_min(0)
