"""Encoder inputs of a calibration set, as every flow reads them (``DFQSAMDataset`` and ``ArraySet`` alike).

Raw [0, 1] synthetic images (C, S, S) become (1, 3, S, S) float32 in the model's input space. With
``letterbox`` > 0, that fraction of the images also gives a *letterboxed* copy: the image shrunk into the
top-left as ``preprocess_image`` places a non-square image, zero padding around it. Synthetic images are
square, so without this the quantizer ranges never see a padding edge — and on non-square real images (MNI
slices, 189×233) that edge drives the downsampling convolutions far outside the calibrated range (docs/notebook/2026-11-25.md §9:
relative error of the stage-1 output 0.078 on MNI vs 0.002 on square nuclei images; 0.002 on both with
letterboxed copies). Nothing real is involved: it is the model's own preprocessing applied to synthetic images.

With ``support`` > 0, that fraction of the images also gives a copy on a *black background*: the raw pixels times a
soft random ellipse (the object's support, 20–55 % of the image). Optimised synthetic images are texture
everywhere; MR / CT slices, fundus photographs and microscopy fields are an object on a dark background, and on
them the calibrated encoder's error was 8× its error on held-out synthetic images (issue 34: MNI encoder-output
relative error 0.047 vs 0.006; with half of the images also on a black field 0.012, with letterboxed copies alone
0.012–0.014: both teach the ranges a zero region; docs/notebook/2026-12-05.md §21). Data-free: a mask applied to
synthetic images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..models.preprocess import letterbox as _letterbox
from ..models.spec import SamSpec

GOLDEN = 0.6180339887498949


def to_encoder_input(raw: np.ndarray, spec: SamSpec) -> np.ndarray:
    """(C, S, S) or (B, C, S, S) raw [0, 1] -> (B, 3, S, S) float32 in the model's input space (C = 1 or 3)."""
    x = np.asarray(raw, np.float32)
    x = x[None] if x.ndim == 3 else x
    x = np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x
    return np.ascontiguousarray(spec.normalise(x), dtype=np.float32)


def _spread(n: int, fraction: float, what: str) -> list[int]:
    """``round(n·fraction)`` of ``n`` image indices, spread evenly over the set."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"{what} fraction must be in [0, 1]; got {fraction}")
    return [i for i in range(n) if int((i + 1) * fraction + 1e-9) > int(i * fraction + 1e-9)]


def letterbox_plan(n: int, fraction: float) -> dict[int, tuple[float, bool]]:
    """Which of ``n`` images get a letterboxed copy, and its (short/long side ratio, tall): ``round(n·fraction)``
    images spread evenly over the set, ratios in [0.55, 0.95] from a golden-ratio sequence, tall and wide
    alternating. Deterministic: the same set and fraction always give the same inputs."""
    chosen = _spread(n, fraction, "letterbox")
    return {i: (0.55 + 0.4 * ((k + 1) * GOLDEN % 1.0), bool(k % 2)) for k, i in enumerate(chosen)}


def support_mask(size: int, index: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: a soft ellipse (centre in the middle 30 %, semi-axes 25–45 % of the side, any
    angle, an edge 8 % of the radius wide), the same for the same ``index``."""
    rng = np.random.default_rng(1_000_003 + index)
    (cy, cx), (ay, ax), th = rng.uniform(0.35, 0.65, 2), rng.uniform(0.25, 0.45, 2), rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(th) + dy * np.sin(th)) / ax
    v = (-dx * np.sin(th) + dy * np.cos(th)) / ay
    return np.clip((1.08 - np.sqrt(u**2 + v**2)) / 0.08, 0, 1).astype(np.float32)


def on_black(raw: np.ndarray, index: int) -> np.ndarray:
    """Raw [0, 1] pixels (C, S, S) on a black background: times ``support_mask(S, index)``."""
    raw = np.asarray(raw, np.float32)
    return raw * support_mask(raw.shape[-1], index)


def calibration_pairs(pixels: np.ndarray, boxes: np.ndarray | None, spec: SamSpec, limit: int | None = None,
                      letterbox: float = 0.0, support: float = 0.0
                      ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """((1, 3, S, S) input, its (K, 4) xyxy boxes or None) of the first ``limit`` images, each followed by its
    letterboxed copy (boxes moved along) and its copy on a black background (same boxes) if planned."""
    n = len(pixels) if limit is None else min(limit, len(pixels))
    plan, dark = letterbox_plan(n, letterbox), set(_spread(n, support, "support"))
    for i in range(n):
        x = to_encoder_input(pixels[i], spec)
        b = None if boxes is None else np.asarray(boxes[i], np.float32)
        yield x, b
        if i in plan:
            xl, (ys, xs) = _letterbox(x, *plan[i])
            yield xl, None if b is None else (b * np.array([xs, ys, xs, ys], np.float32))
        if i in dark:
            yield to_encoder_input(on_black(pixels[i], i), spec), b


def encoder_inputs(pixels: np.ndarray, spec: SamSpec, limit: int | None = None, letterbox: float = 0.0,
                   support: float = 0.0) -> Iterator[np.ndarray]:
    """The inputs of ``calibration_pairs`` alone."""
    return (x for x, _ in calibration_pairs(pixels, None, spec, limit, letterbox, support))


def torch_batches(pixels: np.ndarray, spec: SamSpec, batch_size: int = 1, device: str = "cpu",
                  limit: int | None = None, letterbox: float = 0.0, support: float = 0.0):
    """``encoder_inputs`` as torch tensors (B, 3, S, S)."""
    import torch

    batch: list[np.ndarray] = []
    for x in encoder_inputs(pixels, spec, limit, letterbox, support):
        batch.append(x)
        if len(batch) == batch_size:
            yield torch.from_numpy(np.concatenate(batch)).to(device)
            batch = []
    if batch:
        yield torch.from_numpy(np.concatenate(batch)).to(device)
