"""Data-free validation: mask agreement with the float SAM on random box prompts over the synthetic images.

NNCF's accuracy control (``nncf.quantize_with_accuracy_control``) needs a validation set and a metric, and a
hospital has no labelled images to give it. The float model itself supplies the labels: the metric is
docs/architecture.md#evaluation's FP-fidelity measured on synthetic images — per image, the mean Dice (at model input resolution)
between the masks decoded from a candidate encoder's embedding and the float model's masks for the same box
prompts. The float model scores 1.0 by construction, so NNCF's ``max_drop`` is a fidelity floor
(``max_drop=0.03`` keeps synthetic fidelity >= 0.97).

The prompts are random boxes (seeded; sides log-uniform between 1/32 and 1/2 of the input), not the boxes
the images were optimised for: SAM segments those with wide logit margins, and an INT8 encoder whose
nuclei/MNI FP-fidelity is 0.91 still scores 0.998 on them, while random boxes give 0.928 — a proxy that
tracks the real sets (docs/notebook/2026-11-23.md §4.1).

``SyntheticFidelity(sam, dataset)`` is the ``validation_fn``; ``.dataset()`` is the matching
``validation_dataset``. The decoder is the float torch decoder, so only the encoder under test varies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import dice


def random_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, 4) xyxy float32 boxes inside a size x size input, sides log-uniform in [size/32, size/2]."""
    sides = np.exp(rng.uniform(np.log(size / 32), np.log(size / 2), (n, 2)))
    lo = rng.uniform(0, 1, (n, 2)) * (size - 1 - sides)
    return np.concatenate([lo, lo + sides], axis=1).astype(np.float32)


class SyntheticFidelity:
    def __init__(self, sam, dataset, limit: int | None = None, boxes_per_image: int = 16, seed: int = 0) -> None:
        import torch

        dataset.check_model(sam)
        self.sam = sam
        n = len(dataset) if limit is None else min(limit, len(dataset))
        if n < 1 or boxes_per_image < 1:
            raise ValueError("synthetic fidelity needs at least one image and one box per image")
        rng = np.random.default_rng(seed)
        self.inputs = [dataset.encoder_input(dataset[i]["pixels"]) for i in range(n)]
        self.boxes = [random_boxes(rng, boxes_per_image, sam.spec.img_size) for _ in range(n)]
        with torch.inference_mode():
            self.reference = [self._masks(sam.model.encode(torch.from_numpy(x)), b)
                              for x, b in zip(self.inputs, self.boxes)]

    def __len__(self) -> int:
        return len(self.inputs)

    def _masks(self, embedding, boxes: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            emb = torch.as_tensor(np.asarray(embedding, np.float32))
            logits, _ = self.sam.model.decode(emb, torch.from_numpy(boxes)[None])
            size = self.sam.spec.img_size
            return (F.interpolate(logits.float(), (size, size), mode="bilinear", align_corners=False) > 0)[0].numpy()

    def score(self, embed, index: int) -> float:
        """Mean Dice over image ``index``'s boxes; ``embed`` maps a (1, 3, S, S) input to an embedding."""
        masks = self._masks(embed(self.inputs[index]), self.boxes[index])
        return float(np.mean([dice(m, r) for m, r in zip(masks, self.reference[index])]))

    def dataset(self):
        """The ``nncf.Dataset`` of image indices that NNCF hands back to ``__call__``."""
        import nncf

        return nncf.Dataset(list(range(len(self))))

    def __call__(self, model: Any, indices) -> tuple[float, list[float]]:
        """``validation_fn`` for NNCF: ``model`` is an ``ov.CompiledModel`` of the encoder (or any callable
        returning the embedding first); returns (mean fidelity, per-image fidelity)."""
        per_item = [self.score(lambda x: model(x)[0], int(i)) for i in indices]
        return float(np.mean(per_item)), per_item
