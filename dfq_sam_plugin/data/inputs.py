"""Encoder inputs of a calibration set, as every flow reads them (``DFQSAMDataset`` and ``ArraySet`` alike).

Raw [0, 1] synthetic images (C, S, S) become (1, 3, S, S) float32 in the model's input space. With
``letterbox`` > 0, that fraction of the images also gives a *letterboxed* copy: the image shrunk into the
top-left as ``preprocess_image`` places a non-square image, zero padding around it. Synthetic images are
square, so without this the quantizer ranges never see a padding edge — and on non-square real images (MNI
slices, 189×233) that edge drives the downsampling convolutions far outside the calibrated range (docs/notebook/2026-11-25.md §9:
relative error of the stage-1 output 0.078 on MNI vs 0.002 on square nuclei images; 0.002 on both with
letterboxed copies). Nothing real is involved: it is the model's own preprocessing applied to synthetic images.
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


def letterbox_plan(n: int, fraction: float) -> dict[int, tuple[float, bool]]:
    """Which of ``n`` images get a letterboxed copy, and its (short/long side ratio, tall): ``round(n·fraction)``
    images spread evenly over the set, ratios in [0.55, 0.95] from a golden-ratio sequence, tall and wide
    alternating. Deterministic: the same set and fraction always give the same inputs."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"letterbox fraction must be in [0, 1]; got {fraction}")
    chosen = [i for i in range(n) if int((i + 1) * fraction + 1e-9) > int(i * fraction + 1e-9)]
    return {i: (0.55 + 0.4 * ((k + 1) * GOLDEN % 1.0), bool(k % 2)) for k, i in enumerate(chosen)}


def calibration_pairs(pixels: np.ndarray, boxes: np.ndarray | None, spec: SamSpec, limit: int | None = None,
                      letterbox: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """((1, 3, S, S) input, its (K, 4) xyxy boxes or None) of the first ``limit`` images, each followed by its
    letterboxed copy (boxes moved along) if planned."""
    n = len(pixels) if limit is None else min(limit, len(pixels))
    plan = letterbox_plan(n, letterbox)
    for i in range(n):
        x = to_encoder_input(pixels[i], spec)
        b = None if boxes is None else np.asarray(boxes[i], np.float32)
        yield x, b
        if i in plan:
            x, (ys, xs) = _letterbox(x, *plan[i])
            yield x, None if b is None else (b * np.array([xs, ys, xs, ys], np.float32))


def encoder_inputs(pixels: np.ndarray, spec: SamSpec, limit: int | None = None, letterbox: float = 0.0
                   ) -> Iterator[np.ndarray]:
    """The inputs of ``calibration_pairs`` alone."""
    return (x for x, _ in calibration_pairs(pixels, None, spec, limit, letterbox))


def torch_batches(pixels: np.ndarray, spec: SamSpec, batch_size: int = 1, device: str = "cpu",
                  limit: int | None = None, letterbox: float = 0.0):
    """``encoder_inputs`` as torch tensors (B, 3, S, S)."""
    import torch

    batch: list[np.ndarray] = []
    for x in encoder_inputs(pixels, spec, limit, letterbox):
        batch.append(x)
        if len(batch) == batch_size:
            yield torch.from_numpy(np.concatenate(batch)).to(device)
            batch = []
    if batch:
        yield torch.from_numpy(np.concatenate(batch)).to(device)
