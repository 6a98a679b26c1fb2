"""The synthetic probe an export carries: a few synthetic encoder inputs, random box prompts and the float SAM's
masks for them (``probe.npz``), so that any box can measure a candidate's FP-fidelity and latency on itself.

No real image is involved: the inputs are the calibration set's synthetic images (``real_data_used: false``), the
prompts are seeded random boxes (``eval.synthetic_fidelity.random_boxes``: synthetic images are segmented with
wide margins on their own boxes, random ones track the real sets better, docs/notebook/2026-11-23.md §4.1), the reference masks
come from the torch FP32 model. ``make_probe`` needs torch; ``probe_fidelity`` and ``load_probe`` do not (the edge
predictor uses them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..models.preprocess import resize

PROBE = "probe.npz"


def masks_at_input(low_res_logits: np.ndarray, img_size: int) -> np.ndarray:
    """(N, h, w) low-res logits -> bool (N, S, S) masks at model input resolution (bilinear, logit > 0)."""
    return resize(np.asarray(low_res_logits, np.float32), (img_size, img_size)) > 0


def make_probe(sam, dataset, images: int | None = None, boxes_per_image: int = 16, seed: int = 0
               ) -> dict[str, np.ndarray]:
    """Probe arrays from ``dataset`` (synthetic) and the FP ``sam``: ``inputs`` (n, 3, S, S) float16 encoder
    inputs, ``boxes`` (n, k, 4) float32 in model pixels, ``reference`` packed bool (n, k, S, S) FP masks.
    ``images`` defaults to 4 at inputs up to 512 px (LiteMedSAM: 1.6 MB) and 1 above (SAM ViT at 1024: 6 MB)."""
    import torch

    from ..data.inputs import to_encoder_input
    from ..eval.synthetic_fidelity import random_boxes

    dataset.check_model(sam)
    size = sam.spec.img_size
    n = min(len(dataset), images if images is not None else (4 if size <= 512 else 1))
    if n < 1 or boxes_per_image < 1:
        raise ValueError("a probe needs at least one image and one box per image")
    rng = np.random.default_rng(seed)
    # every image of the set, spread evenly, rounded to float16 first: the reference is made from what is stored
    picks = np.linspace(0, len(dataset) - 1, n).round().astype(int)
    inputs = to_encoder_input(np.asarray(dataset.pixels)[picks], sam.spec).astype(np.float16)
    boxes = np.stack([random_boxes(rng, boxes_per_image, size) for _ in range(n)])
    reference = []
    with torch.inference_mode():
        for x, b in zip(inputs, boxes):
            emb = sam.model.encode(torch.from_numpy(x[None].astype(np.float32)))
            logits, _ = sam.model.decode(emb, torch.from_numpy(b)[None])
            reference.append(masks_at_input(logits[0].float().numpy(), size))
    return {"inputs": inputs, "boxes": boxes, "reference": np.packbits(np.stack(reference), axis=-1),
            "img_size": np.int64(size)}


def save_probe(folder: str | Path, probe: dict[str, np.ndarray]) -> Path:
    path = Path(folder) / PROBE
    with path.open("wb") as handle:
        np.savez_compressed(handle, **probe)
    return path


def load_probe(folder: str | Path) -> dict[str, np.ndarray] | None:
    path = Path(folder) / PROBE
    if not path.exists():
        return None
    with np.load(path) as arrays:
        probe = {k: arrays[k] for k in arrays.files}
    size = int(probe["img_size"])
    probe["reference"] = np.unpackbits(probe["reference"], axis=-1, count=size).astype(bool)
    return probe


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def probe_fidelity(probe: dict[str, np.ndarray], embed: Callable[[np.ndarray], np.ndarray],
                   decode: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[float, list[float]]:
    """(mean, per-prompt) Dice between the masks of ``embed`` + ``decode`` and the probe's FP masks.
    ``embed``: (1, 3, S, S) float32 -> embedding; ``decode``: (embedding, (k, 4) boxes) -> (k, h, w) logits."""
    size = int(probe["img_size"])
    per_prompt = []
    for x, boxes, reference in zip(probe["inputs"], probe["boxes"], probe["reference"]):
        masks = masks_at_input(decode(embed(x[None].astype(np.float32)), boxes), size)
        per_prompt += [_dice(m, r) for m, r in zip(masks, reference)]
    return float(np.mean(per_prompt)), per_prompt
