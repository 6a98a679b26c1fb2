"""``ArraySet``: a calibration set held as arrays (an npz, shards, or a ``DFQSAMDataset``'s columns), for
machines without the Hugging Face ``datasets`` stack (a GPU box running distillation). It offers the part of
``DFQSAMDataset``'s interface that reparameterization, NNCF's torch backend and distillation use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..models.spec import SamBundle, SamSpec


class ArraySet:
    def __init__(self, pixels: np.ndarray, boxes: np.ndarray, provenance: dict[str, Any]) -> None:
        self.pixels = np.asarray(pixels, np.float32)
        self.boxes = np.asarray(boxes, np.float32)
        self.provenance = provenance
        self.spec = SamSpec.from_dict(provenance["spec"])

    @classmethod
    def from_npz(cls, path: str | Path) -> "ArraySet":
        """An npz with ``pixels`` and ``boxes`` and its provenance JSON beside it (``NAME.npz`` + ``NAME.json``),
        as the bundled set ships."""
        import json

        path = Path(path)
        with np.load(path) as arrays:
            return cls(arrays["pixels"], arrays["boxes"], json.loads(path.with_suffix(".json").read_text()))

    def __len__(self) -> int:
        return len(self.pixels)

    def check_model(self, sam: SamBundle) -> None:
        if self.provenance.get("model") != sam.name or self.provenance.get("weights_sha256") not in (
                None, sam.weights_sha256):
            raise ValueError(f"this calibration set was made for {self.provenance.get('model')}, not {sam.name}")

    def torch_batches(self, batch_size: int = 1, device: str = "cpu", limit: int | None = None):
        import torch

        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            raw = self.pixels[start : min(start + batch_size, n)]
            raw = np.repeat(raw, 3, axis=1) if raw.shape[1] == 1 else raw
            yield torch.from_numpy(np.ascontiguousarray(self.spec.normalise(raw), np.float32)).to(device)
