"""Real-data calibration sets for the baselines and oracles (never the evaluated images): MNI slices at other
positions than the benchmark's 40/50/60 %, and (``multimodal_calibration_set``) those plus the two images of
stardist's wheel that the benchmark does not use: a 3-D fluorescence nuclei stack and an H&E histology photograph.
Their provenance says ``real_data_used: true``."""

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


MNI_FRACTIONS = (0.3, 0.35, 0.45, 0.55, 0.65, 0.7)


def mni_images(size: int, fractions=MNI_FRACTIONS) -> list[np.ndarray]:
    """MNI152 T1 slices at ``fractions`` of each axis (the benchmark uses 0.4 / 0.5 / 0.6), (1, size, size) each."""
    import nibabel as nib

    folder = package_data_dir("nilearn", "datasets", "data")
    t1 = np.asanyarray(nib.load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz").dataobj)
    return [raw_pixels(np.rot90(np.take(t1, int(round(frac * (t1.shape[axis] - 1))), axis=axis)), size)
            for axis in (2, 1, 0) for frac in fractions]


def stardist_images(size: int, z_fractions=(0.2, 0.35, 0.5, 0.65, 0.8)) -> list[np.ndarray]:
    """stardist's images that the nuclei benchmark (img2d.tif) does not use: slices and the maximum projection of
    the 3-D nuclei stack img3d.tif, and histo.jpg (H&E) whole and as its left and right squares, (1, size, size)."""
    import tifffile
    from PIL import Image

    folder = package_data_dir("stardist", "data", "images")
    stack = tifffile.imread(folder / "img3d.tif")
    out = [raw_pixels(stack[int(round(f * (stack.shape[0] - 1)))], size) for f in z_fractions]
    out.append(raw_pixels(stack.max(axis=0), size))
    with Image.open(folder / "histo.jpg") as im:
        histo = np.asarray(im.convert("RGB"))
    side = min(histo.shape[:2])
    out += [raw_pixels(h, size) for h in (histo, histo[:side, :side], histo[:side, -side:])]
    return out


def _real_set(sam, pixels: list[np.ndarray], method: str, sources: list[str], boxes_per_image: int):
    from ..data.dataset import DFQSAMDataset

    size = sam.spec.img_size
    boxes = np.tile(np.array([[0.1, 0.1, 0.9, 0.9]], np.float32) * (size - 1), (len(pixels), boxes_per_image, 1))
    return DFQSAMDataset.from_arrays(sam, np.stack(pixels), boxes, provenance={
        "method": method, "real_data_used": True, "data_sources": sources})


def mni_calibration_set(sam, fractions=MNI_FRACTIONS, boxes_per_image: int = 4):
    return _real_set(sam, mni_images(sam.spec.img_size, fractions), "real:mni152",
                     [f"nilearn MNI152 T1 slices at {list(fractions)} of each axis (not the evaluated ones)"],
                     boxes_per_image)


def multimodal_calibration_set(sam, boxes_per_image: int = 4):
    """The MNI slices of ``mni_calibration_set`` (18) and ``stardist_images`` (9): T1 MR, fluorescence nuclei and
    H&E histology, none of them an evaluated image (the oracle of issue 34 across modalities)."""
    size = sam.spec.img_size
    return _real_set(sam, mni_images(size) + stardist_images(size), "real:mni152+stardist", [
        f"nilearn MNI152 T1 slices at {list(MNI_FRACTIONS)} of each axis (not the evaluated ones)",
        "stardist 0.9.2 data/images/img3d.tif (5 z-slices + maximum projection) and histo.jpg (whole + 2 squares); "
        "the benchmark uses img2d.tif only"], boxes_per_image)
