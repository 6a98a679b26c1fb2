"""The real benchmark sets (docs/architecture.md#evaluation), read from data files that pip installs; nothing is downloaded.

- ``nuclei``: stardist's DSB-2018 fluorescence image ``img2d.tif`` + instance labels ``mask2d.tif``
  (512x512), cut into four 256x256 tiles; one tight box (MedSAM convention: inclusive max) per nucleus of
  at least 20 pixels -> 136 prompts.
- ``mni``: nilearn's MNI152 2009a T1 with its GM/WM probability maps (1 mm); axial, coronal and sagittal
  slices at 40/50/60 % of each axis; prompts are the whole brain and the largest GM/WM components.

Both wheels are installed with ``--no-deps`` and never imported: ``importlib.util.find_spec`` locates
their folders without running their code.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

SET_NAMES = ("nuclei", "mni")


@dataclass
class BenchmarkImage:
    name: str
    image: np.ndarray  # HxW (grey) or HxWx3
    boxes: np.ndarray  # (N, 4) xyxy, image pixels
    masks: np.ndarray  # bool (N, H, W) ground truth, one per box
    labels: list[str] = field(default_factory=list)  # what each box prompts for


@dataclass
class BenchmarkSet:
    name: str
    images: list[BenchmarkImage]
    source: str

    @property
    def num_prompts(self) -> int:
        return sum(len(item.boxes) for item in self.images)


class MissingBenchmarkData(FileNotFoundError):
    pass


def package_data_dir(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingBenchmarkData(
            f"the benchmark data ships in the '{package}' wheel, which is not installed; run "
            f"`pip install --no-deps stardist==0.9.2 nilearn==0.14.1` (make install does)"
        )
    path = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    if not path.exists():
        raise MissingBenchmarkData(f"{path} is missing from the installed '{package}' package")
    return path


def tight_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def _instances(labels: np.ndarray, min_area: int) -> list[np.ndarray]:
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return [labels == i for i, c in zip(ids, counts) if c >= min_area]


def _item(name: str, image: np.ndarray, masks: list[np.ndarray], labels: list[str]) -> BenchmarkImage:
    return BenchmarkImage(name, image, np.array([tight_box(m) for m in masks], dtype=np.float32),
                          np.stack(masks).astype(bool), labels)


@lru_cache(maxsize=1)
def nuclei_set(tile: int = 256, min_area: int = 20) -> BenchmarkSet:
    import tifffile

    folder = package_data_dir("stardist", "data", "images")
    image = tifffile.imread(folder / "img2d.tif")
    labels = tifffile.imread(folder / "mask2d.tif")
    items = []
    for ty in range(0, image.shape[0], tile):
        for tx in range(0, image.shape[1], tile):
            lab = labels[ty : ty + tile, tx : tx + tile]
            masks = _instances(lab, min_area)
            items.append(_item(f"nuclei_y{ty}_x{tx}", image[ty : ty + tile, tx : tx + tile], masks,
                               ["nucleus"] * len(masks)))
    return BenchmarkSet("nuclei", items, "stardist 0.9.2 data/images/img2d.tif + mask2d.tif (DSB-2018)")


def _largest_components(mask: np.ndarray, keep: int, min_area: int) -> list[np.ndarray]:
    lab, n = ndimage.label(mask)
    if n == 0:
        return []
    areas = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    order = np.argsort(areas)[::-1][:keep]
    return [lab == (i + 1) for i in order if areas[i] >= min_area]


def _mni_volumes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import nibabel as nib

    folder = package_data_dir("nilearn", "datasets", "data")

    def volume(kind: str) -> np.ndarray:
        path = folder / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
        return np.asanyarray(nib.load(path).dataobj)

    return volume("t1"), volume("gm"), volume("wm")


PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}


def _mni_slice(t1, gm, wm, axis: int, index: int, per_tissue: int, min_area: int):
    """(image, masks, tissue names) of one MNI slice: the whole brain and the largest WM / GM components."""
    image, g, w = (np.rot90(np.take(vol, index, axis=axis)) for vol in (t1, gm, wm))  # superior / anterior up
    g, w = g > 127, w > 127
    brain = ndimage.binary_fill_holes(g | w)
    masks, names = [], []
    for mask, tissue, keep in ((brain, "brain", 1), (w, "white matter", per_tissue), (g, "grey matter", per_tissue)):
        comps = _largest_components(mask, keep, min_area)
        masks += comps
        names += [tissue] * len(comps)
    return np.ascontiguousarray(image), masks, names


@lru_cache(maxsize=1)
def mni_set(fractions: tuple[float, ...] = (0.4, 0.5, 0.6), per_tissue: int = 3,
            min_area: int = 150) -> BenchmarkSet:
    t1, gm, wm = _mni_volumes()
    items = []
    for plane, axis in PLANES.items():
        for frac in fractions:
            index = int(round(frac * (t1.shape[axis] - 1)))
            image, masks, names = _mni_slice(t1, gm, wm, axis, index, per_tissue, min_area)
            items.append(_item(f"mni_{plane}_{int(frac * 100)}", image, masks, names))
    return BenchmarkSet("mni", items, "nilearn 0.14.1 MNI152 2009a T1 + GM/WM maps (1 mm)")


def mni_volume(plane: str = "axial", per_tissue: int = 3, min_area: int = 150, stride: int = 1) -> BenchmarkSet:
    """Every slice of the MNI T1 along ``plane`` that has brain in it, each with its prompts (whole brain and
    the largest WM / GM components, boxes from the tissue maps): a volume to segment slice by slice.
    ``stride`` > 1 keeps every stride-th slice (a quick look; throughput is per slice either way)."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}; got {plane!r}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1; got {stride}")
    t1, gm, wm = _mni_volumes()
    axis = PLANES[plane]
    items = []
    for index in range(0, t1.shape[axis], stride):
        image, masks, names = _mni_slice(t1, gm, wm, axis, index, per_tissue, min_area)
        if masks:
            items.append(_item(f"mni_{plane}_{index:03d}", image, masks, names))
    return BenchmarkSet(f"mni-{plane}", items, f"nilearn 0.14.1 MNI152 2009a T1, every {'' if stride == 1 else f'{stride}th '}"
                                                   f"{plane} slice with brain")


def load_benchmark(name: str) -> BenchmarkSet:
    if name == "nuclei":
        return nuclei_set()
    if name == "mni":
        return mni_set()
    raise ValueError(f"unknown benchmark set {name!r}; expected one of {', '.join(SET_NAMES)}")
