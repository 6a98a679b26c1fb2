"""Image and box transforms between image pixels and the square encoder input, per SAM family.

Both families resize the longest side to ``spec.img_size`` (aspect kept) and zero-pad bottom/right.
LiteMedSAM min-max normalises the image to [0, 1] (no mean/std); SAM maps the image to 0..255 and applies
``(x - mean) / std``, padding with 0 *after* normalisation, like segment-anything. Grey images become
3 identical channels. numpy only (no torch): the same code serves the torch predictor and the OpenVINO
predictor on an edge box without torch. Resizing is separable: ``R_h @ X @ R_w^T`` with the interpolation
matrices of torch's ``interpolate(mode="bilinear", align_corners=False)`` (``antialias=True`` when shrinking).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .spec import SamSpec


@dataclass(frozen=True)
class Geometry:
    """Where an image of ``original`` (H, W) sits inside the square input: resized to ``resized``."""

    original: tuple[int, int]
    resized: tuple[int, int]
    img_size: int

    @property
    def scale(self) -> float:
        return self.resized[0] / self.original[0]


def geometry(height: int, width: int, img_size: int) -> Geometry:
    scale = img_size / max(height, width)
    resized = (int(height * scale + 0.5), int(width * scale + 0.5))
    return Geometry((height, width), resized, img_size)


def letterbox(inputs: np.ndarray, aspect: float, tall: bool = False) -> tuple[np.ndarray, tuple[float, float]]:
    """Square encoder inputs (…, S, S) as ``preprocess_image`` would give an image whose short/long side ratio is
    ``aspect`` (landscape, or ``tall``): the content resized into the top-left (S, aspect·S) or (aspect·S, S)
    and the rest zero-padded (normalised space). Returns (inputs, (y scale, x scale)) for moving boxes along.
    Real non-square images reach the encoder like this; synthetic calibration images alone never show it the
    padding edge, whose activations fall outside the ranges they calibrate."""
    if not 0 < aspect <= 1:
        raise ValueError(f"aspect must be in (0, 1]; got {aspect}")
    size = inputs.shape[-1]
    short = max(1, int(size * aspect + 0.5))
    resized = (size, short) if tall else (short, size)
    out = np.zeros_like(inputs, dtype=np.float32)
    out[..., : resized[0], : resized[1]] = resize(inputs, resized, antialias=True)
    return out, (resized[0] / size, resized[1] / size)


def validate_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"image must be HxW (grey) or HxWx3 (RGB); got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape[:2]}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
            or image.dtype == bool):
        raise ValueError(f"image dtype must be integer or float; got {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError("image contains NaN or Inf values")
    return image


def preprocess_image(image: np.ndarray, spec: SamSpec) -> tuple[np.ndarray, Geometry]:
    """image HxW or HxWx3 (uint8/uint16/float) -> (float32 array (1, 3, S, S), Geometry)."""
    image = validate_image(image).astype(np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    geo = geometry(image.shape[0], image.shape[1], spec.img_size)
    lo, hi = float(image.min()), float(image.max())
    image = (image - lo) / max(hi - lo, 1e-8)  # [0, 1] for every input dtype
    chw = spec.normalise(resize(np.ascontiguousarray(image.transpose(2, 0, 1)), geo.resized, antialias=True))
    out = np.zeros((1, 3, spec.img_size, spec.img_size), dtype=np.float32)
    out[0, :, : geo.resized[0], : geo.resized[1]] = chw
    return out, geo


def validate_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.shape == (4,):
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be an (N, 4) array of x0, y0, x1, y1; got shape {boxes.shape}")
    if len(boxes) == 0:
        raise ValueError("boxes is empty: give at least one (x0, y0, x1, y1) box")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes contain NaN or Inf")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError("boxes must satisfy x1 >= x0 and y1 >= y0")
    outside = (boxes[:, 0] >= width) | (boxes[:, 1] >= height) | (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
    if outside.any():
        raise ValueError(
            f"{int(outside.sum())} box(es) lie entirely outside the {width}x{height} image, e.g. "
            f"{boxes[outside][0].tolist()}"
        )
    return boxes


def boxes_to_model(boxes: np.ndarray, geo: Geometry) -> np.ndarray:
    """xyxy boxes in image pixels -> xyxy in encoder-input pixels (float32, (N, 4))."""
    h, w = geo.original
    rh, rw = geo.resized
    scale = np.array([rw / w, rh / h, rw / w, rh / h])
    return (np.asarray(boxes, dtype=np.float64) * scale).astype(np.float32)


def boxes_from_model(boxes: np.ndarray, geo: Geometry) -> np.ndarray:
    h, w = geo.original
    rh, rw = geo.resized
    scale = np.array([w / rw, h / rh, w / rw, h / rh])
    return (np.asarray(boxes, dtype=np.float64) * scale).astype(np.float32)


def postprocess_masks(low_res_logits: np.ndarray, geo: Geometry) -> np.ndarray:
    """(N, h, w) low-res logits -> bool (N, H, W) masks in image pixels (logit > 0), as segment-anything:
    upsample to the input square, crop the padding, resize to the original size."""
    logits = np.asarray(low_res_logits, dtype=np.float32)
    size = geo.img_size
    logits = resize(logits, (size, size))[:, : geo.resized[0], : geo.resized[1]]
    return resize(logits, geo.original) > 0


@lru_cache(maxsize=64)
def _resize_matrix(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """(out, in) weights of torch's bilinear interpolation, align_corners=False (PIL-style triangle
    filter widened by the shrink factor when ``antialias``)."""
    scale = in_size / out_size
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    if antialias and scale > 1.0:
        support, inv = scale, 1.0 / scale
        for i in range(out_size):
            center = scale * (i + 0.5)
            lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
            j = np.arange(lo, hi)
            w = np.clip(1.0 - np.abs((j - center + 0.5) * inv), 0.0, None)
            matrix[i, lo:hi] = w / w.sum()
    else:
        src = np.clip((np.arange(out_size) + 0.5) * scale - 0.5, 0.0, None)
        i0 = np.minimum(np.floor(src).astype(int), in_size - 1)
        i1 = np.minimum(i0 + 1, in_size - 1)
        frac = src - i0
        rows = np.arange(out_size)
        np.add.at(matrix, (rows, i0), 1.0 - frac)
        np.add.at(matrix, (rows, i1), frac)
    return matrix.astype(np.float32)


def resize(array: np.ndarray, size: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """Bilinear resize of the last two axes of ``array`` (…, H, W) to ``size`` (H', W')."""
    h, w = array.shape[-2:]
    if (h, w) == tuple(size):
        return array.astype(np.float32, copy=False)
    rows = _resize_matrix(h, size[0], antialias)
    cols = _resize_matrix(w, size[1], antialias)
    return np.matmul(np.matmul(rows, array.astype(np.float32, copy=False)), cols.T)
