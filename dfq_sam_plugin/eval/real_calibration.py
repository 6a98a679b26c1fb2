"""Real-data calibration sets for the baselines (never the evaluated images): MNI slices at other
positions than the benchmark's 40/50/60 %. Their provenance says ``real_data_used: true``."""

from __future__ import annotations

import numpy as np

from ..models.preprocess import geometry, resize, validate_image
from .datasets import package_data_dir


def raw_pixels(image: np.ndarray, size: int) -> np.ndarray:
    """HxW image -> (1, size, size) [0, 1] intensities, resized longest side + zero pad (model-independent)."""
    image = validate_image(image).astype(np.float32)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    geo = geometry(image.shape[0], image.shape[1], size)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    out = np.zeros((1, size, size), np.float32)
    out[0, : geo.resized[0], : geo.resized[1]] = resize(image, geo.resized, antialias=True)
    return out


def mni_calibration_set(sam, fractions=(0.3, 0.35, 0.45, 0.55, 0.65, 0.7), boxes_per_image: int = 4):
    import nibabel as nib

    from ..data.dataset import DFQSAMDataset

    folder = package_data_dir("nilearn", "datasets", "data")
    t1 = np.asanyarray(nib.load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz").dataobj)
    pixels = []
    for axis in (2, 1, 0):
        for frac in fractions:
            index = int(round(frac * (t1.shape[axis] - 1)))
            pixels.append(raw_pixels(np.rot90(np.take(t1, index, axis=axis)), sam.spec.img_size))
    size = sam.spec.img_size
    boxes = np.tile(np.array([[0.1, 0.1, 0.9, 0.9]], np.float32) * (size - 1), (len(pixels), boxes_per_image, 1))
    return DFQSAMDataset.from_arrays(sam, np.stack(pixels), boxes, provenance={
        "method": "real:mni152", "real_data_used": True,
        "data_sources": [f"nilearn MNI152 T1 slices at {list(fractions)} of each axis (not the evaluated ones)"],
    })
