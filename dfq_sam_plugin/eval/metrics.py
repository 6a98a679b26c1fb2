"""Mask metrics: Dice, IoU, normalised surface Dice (NSD) at a pixel tolerance. Empty-vs-empty scores 1."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    total = pred.sum() + gt.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, gt).sum() / total)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def _border(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def nsd(pred: np.ndarray, gt: np.ndarray, tolerance: float = 2.0) -> float:
    """Fraction of both boundaries lying within ``tolerance`` pixels of the other boundary."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if not pred.any() and not gt.any():
        return 1.0
    if not pred.any() or not gt.any():
        return 0.0
    bp, bg = _border(pred), _border(gt)
    dist_to_g = ndimage.distance_transform_edt(~bg)
    dist_to_p = ndimage.distance_transform_edt(~bp)
    close = (dist_to_g[bp] <= tolerance).sum() + (dist_to_p[bg] <= tolerance).sum()
    return float(close / (bp.sum() + bg.sum()))


METRICS = {"dice": dice, "iou": iou, "nsd": nsd}


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-prompt ``values`` (resampled with replacement). With the
    benchmark's few prompts (MNI: 41) it says how far apart two models' means must be before their order means
    anything; it treats prompts as independent, which prompts sharing an image are not, so it is a lower bound on
    the uncertainty."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)
