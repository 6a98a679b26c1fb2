"""Label-free augmentation of synthetic images for distillation: flips, 90° rotations, random resized crops,
gamma and mixup, on raw [0, 1] pixels (B, C, S, S). Boxes (B, K, 4, xyxy) follow the geometric transforms.

Every draw comes from the generator handed in, so a step's batch depends only on (seed, step, image slot):
a resumed run and a run split over DDP ranks see the same images as one uninterrupted process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flip_boxes(boxes: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    out = boxes.clone()
    lo, hi = (0, 2) if dim == -1 else (1, 3)
    out[..., lo], out[..., hi] = size - 1 - boxes[..., hi], size - 1 - boxes[..., lo]
    return out


def _rot90_boxes(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Boxes of an image rotated by torch.rot90(k=1, dims=(-2, -1)): (x, y) -> (y, size - 1 - x)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([y0, size - 1 - x1, y1, size - 1 - x0], dim=-1)


def augment(pixels: torch.Tensor, boxes: torch.Tensor, generators: list[torch.Generator], mixup: float = 0.25
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per image from its own generator. Returns augmented (pixels, boxes), same shapes."""
    size = pixels.shape[-1]
    out_px, out_bx = [], []
    for x, b, g in zip(pixels, boxes, generators):
        r = torch.rand(8, generator=g)
        if r[0] < 0.5:
            x, b = x.flip(-1), _flip_boxes(b, size, -1)
        if r[1] < 0.5:
            x, b = x.flip(-2), _flip_boxes(b, size, -2)
        for _ in range(int(r[2] * 4)):
            x, b = torch.rot90(x, 1, dims=(-2, -1)), _rot90_boxes(b, size)
        if r[3] < 0.5:  # random resized crop: side 60-100 %, resized back to the full input
            side = int(size * (0.6 + 0.4 * float(r[4])))
            y0, x0 = int(float(r[5]) * (size - side)), int(float(r[6]) * (size - side))
            x = F.interpolate(x[None, :, y0 : y0 + side, x0 : x0 + side], size=(size, size), mode="bilinear",
                              align_corners=False)[0]
            scale = size / side
            b = ((b - torch.tensor([x0, y0, x0, y0], dtype=b.dtype)) * scale).clamp(0, size - 1)
        gamma = float(torch.exp((torch.rand(1, generator=g) - 0.5) * 0.8))  # gamma in [0.67, 1.49]
        x = x.clamp(0, 1) ** gamma
        out_px.append(x)
        out_bx.append(b)
    px, bx = torch.stack(out_px), torch.stack(out_bx)
    if mixup > 0 and len(px) > 1:
        for i, g in enumerate(generators):
            draw = torch.rand(2, generator=g)
            if draw[0] < mixup:
                j = (i + 1 + int(draw[1] * (len(px) - 1))) % len(px)
                lam = 0.5 + 0.5 * float(torch.rand(1, generator=g))  # the image keeps >= half: its boxes stay
                px[i] = lam * px[i] + (1 - lam) * px[j]
    return px, bx


def random_boxes(n: int, k: int, size: int, generator: torch.Generator, lo: float = 8.0, hi: float = 160.0
                 ) -> torch.Tensor:
    """(n, k, 4) xyxy boxes inside a size x size input, sides log-uniform in [lo, hi] px at a 256 input."""
    scale = size / 256.0
    u = torch.rand(n, k, 4, generator=generator)
    sides = torch.exp(torch.log(torch.tensor(lo * scale)) + u[..., :2] * torch.log(torch.tensor(hi / lo)))
    sides = sides.clamp(max=size - 1)
    start = u[..., 2:] * (size - 1 - sides)
    return torch.cat([start, start + sides], dim=-1)


def augmented_copies(pixels: torch.Tensor, copies: int, seed: int = 0, mixup: float = 0.25) -> torch.Tensor:
    """``copies`` label-free augmented versions of every image of ``pixels`` (N, C, S, S) raw [0, 1], as
    (copies · N, C, S, S), copy-major; each image's draw has its own generator, so the result depends only on
    (seed, copy, image index). Used to give block reconstruction more inputs than the synthetic set has images."""
    if copies < 0:
        raise ValueError(f"copies must be >= 0; got {copies}")
    pixels = torch.as_tensor(pixels, dtype=torch.float32)
    no_boxes = torch.zeros(len(pixels), 0, 4)
    out = []
    for c in range(copies):
        gens = [torch.Generator().manual_seed(seed * 1_000_003 + c * 100_003 + i) for i in range(len(pixels))]
        out.append(augment(pixels, no_boxes, gens, mixup)[0])
    return torch.cat(out) if out else pixels[:0]
