"""Learned weight rounding (AdaRound's idea) that starts from another rounding's solution, e.g. GPTQ's.

Backend-free: a layer is given as its integer weights ``q0`` (the start), its float weights, the quantization grid
(per-output-channel ``scale`` and ``zero_point``, integer range ``[qmin, qmax]``), the inputs it sees in the
quantized model ``x`` (already quantized), and the outputs it should produce ``y`` (the float layer's, e.g. on the
float model's own inputs: GPTAQ's asymmetric target, so a layer also corrects the error handed to it).

Each weight chooses between two neighbouring grid points: the start ``q0`` and the neighbour towards its float
value ``w / scale + zero_point`` (GPTQ may already have moved a weight away from its nearest point; this keeps that
choice reachable and adds the nearest one back). The choice is a soft variable ``h = clip(sigmoid(v) * 1.2 - 0.1,
0, 1)`` trained on

    ||x Ŵᵀ + b - y||² / ||y||²  +  λ · mean(1 - |2h - 1|^β),   Ŵ = scale · (base + h - zero_point)

with β annealed from ``beta[0]`` to ``beta[1]`` after a warm-up (the regulariser then pushes every h to 0 or 1),
then rounded hard (h ≥ 0.5). The hard result is kept only if its output error is below the start's on the same
inputs, so the step never makes a layer worse on the data it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .losses import relative_mse

_ZETA, _GAMMA = 1.1, -0.1  # rectified sigmoid stretch (AdaRound)


@dataclass
class RoundingConfig:
    iters: int = 300
    lr: float = 1e-2
    reg_weight: float = 0.01  # λ
    beta: tuple[float, float] = (20.0, 2.0)
    warmup: float = 0.2  # fraction of iterations without the regulariser
    batch_rows: int = 1024  # input rows a step
    init: float = 0.25  # soft start: h = init (start on the lower point) or 1 - init (upper), not saturated
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iters < 0 or self.batch_rows < 1 or not 0 < self.init < 0.5 or not 0 <= self.warmup <= 1:
            raise ValueError(f"iters >= 0, batch_rows >= 1, 0 < init < 0.5, 0 <= warmup <= 1 expected; got {self}")


def _soft(v: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA).clamp(0, 1)


def output_error(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor) -> float:
    """Relative squared error ``||x Wᵀ + b - y||² / ||y||²`` of a linear map, over all rows together."""
    return float(relative_mse(torch.nn.functional.linear(x, weight, bias)[None], y[None]))


def learn_rounding(q0: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                   qmin: int, qmax: int, x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor | None = None,
                   config: RoundingConfig | None = None) -> tuple[torch.Tensor, dict]:
    """Integer weights (same shape and grid as ``q0``) that lower ``output_error`` from ``q0``'s, and a report
    (``before``, ``after``, ``changed``: fraction of weights moved, ``kept``: whether the result replaced the
    start). ``q0``, ``weight``: (out, in); ``scale``, ``zero_point``: broadcastable to it; ``x``: (N, in); ``y``:
    (N, out)."""
    cfg = config or RoundingConfig()
    q0 = q0.to(torch.float32)
    scale, zero_point = scale.to(torch.float32), torch.as_tensor(zero_point, dtype=torch.float32)
    x, y = x.reshape(-1, x.shape[-1]).float(), y.reshape(-1, y.shape[-1]).float()

    def dequant(q: torch.Tensor) -> torch.Tensor:
        return scale * (q - zero_point)

    target = weight.float() / scale + zero_point  # the float weight on the integer axis
    base = torch.where(q0 <= target, q0, q0 - 1)  # {base, base + 1} holds q0 and its neighbour towards target
    upper = q0 > base  # the start is the upper point
    fixed = (base < qmin) | (base + 1 > qmax)  # the neighbour is off the grid: keep q0
    base = torch.where(fixed, q0, base)
    upper = upper & ~fixed
    before = output_error(dequant(q0), bias, x, y)
    report = {"before": before, "after": before, "changed": 0.0, "kept": False}
    if cfg.iters == 0:
        return q0, report

    h0 = torch.where(upper, 1 - cfg.init, cfg.init)
    v = torch.logit((h0 - _GAMMA) / (_ZETA - _GAMMA)).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    norm = y.pow(2).mean().clamp_min(1e-12)
    warm = int(cfg.warmup * cfg.iters)
    for it in range(cfg.iters):
        rows = torch.randint(0, x.shape[0], (min(cfg.batch_rows, x.shape[0]),), generator=gen).to(x.device)
        h = torch.where(fixed, 0.0, _soft(v))
        out = torch.nn.functional.linear(x[rows], dequant(base + h), bias)
        loss = (out - y[rows]).pow(2).mean() / norm
        if it >= warm:
            progress = (it - warm) / max(1, cfg.iters - warm)
            beta = cfg.beta[1] + 0.5 * (cfg.beta[0] - cfg.beta[1]) * (1 + math.cos(math.pi * progress))
            loss = loss + cfg.reg_weight * (1 - (2 * h - 1).abs().pow(beta)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        q = torch.where(fixed, q0, base + (_soft(v) >= 0.5).float())
    after = output_error(dequant(q), bias, x, y)
    if after < before:
        report.update(after=after, changed=float((q != q0).float().mean()), kept=True)
        return q, report
    return q0, report
