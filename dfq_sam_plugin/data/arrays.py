"""``ArraySet``: a calibration set held as arrays (an npz, shards, or a ``DFQSAMDataset``'s columns), for
machines without the Hugging Face ``datasets`` stack (a GPU box running distillation). It offers the part of
``DFQSAMDataset``'s interface that reparameterization, NNCF's torch backend and distillation use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..models.spec import SamBundle, SamSpec

ASSETS = Path(__file__).resolve().parent.parent / "assets"  # bundled calibration sets (npz + provenance json)


class ArraySet:
    def __init__(self, pixels: np.ndarray, boxes: np.ndarray, provenance: dict[str, Any]) -> None:
        self.pixels = np.asarray(pixels, np.float32)
        self.boxes = np.asarray(boxes, np.float32)
        self.provenance = provenance
        self.spec = SamSpec.from_dict(provenance["spec"])

    @classmethod
    def from_npz(cls, path: str | Path) -> "ArraySet":
        """An npz with ``pixels`` and ``boxes`` and its provenance JSON beside it (``NAME.npz`` + ``NAME.json``),
        as the bundled set ships (pixels may be stored as float16 to halve the file; they load as float32)."""
        import json

        path = Path(path)
        with np.load(path) as arrays:
            return cls(arrays["pixels"].astype(np.float32), arrays["boxes"], json.loads(path.with_suffix(".json").read_text()))

    @classmethod
    def from_shards(cls, folder: str | Path, spec: SamSpec) -> "ArraySet":
        """The finished images of a synthesis run's ``folder/.shards`` (``dfq-sam synthesize --shards-only``),
        with a provenance made from the run's key (``spec``: the model's, which the shards do not record)."""
        import json

        from .shards import ShardStore

        store = ShardStore(folder)
        arrays = store.read()
        if not arrays:
            raise ValueError(f"{store.dir} holds no finished synthesis shards")
        key = json.loads((store.dir / "run.json").read_text())
        provenance = {"model": key["model"], "weights_sha256": key["weights_sha256"], "spec": spec.to_dict(),
                      "real_data_used": False, "method": key["config"]["method"], "seed": key["config"]["seed"],
                      "run_key": key, "num_images": int(len(arrays["indices"]))}
        return cls(arrays["pixels"], arrays["boxes"], provenance)

    @classmethod
    def concat(cls, sets: list["ArraySet"]) -> "ArraySet":
        """One set of several made for the same model (box counts may differ: the extra boxes are dropped)."""
        if not sets:
            raise ValueError("nothing to concatenate")
        for part in sets:
            if (part.provenance.get("model"), part.provenance.get("weights_sha256")) != (
                    sets[0].provenance.get("model"), sets[0].provenance.get("weights_sha256")):
                raise ValueError("calibration sets made for different models cannot be joined")
            if part.provenance.get("real_data_used", True) is not False:
                raise ValueError("a set whose provenance does not say real_data_used: false cannot be joined")
        k = min(s.boxes.shape[1] for s in sets)
        keys = ("method", "seed", "num_images", "real_data_used")
        provenance = {**sets[0].provenance, "parts": [{k: s.provenance.get(k) for k in keys} for s in sets],
                      "num_images": sum(len(s) for s in sets), "real_data_used": False}
        return cls(np.concatenate([s.pixels for s in sets]), np.concatenate([s.boxes[:, :k] for s in sets]),
                   provenance)

    def __len__(self) -> int:
        return len(self.pixels)

    def check_model(self, sam: SamBundle) -> None:
        if self.provenance.get("model") != sam.name or self.provenance.get("weights_sha256") not in (
                None, sam.weights_sha256):
            raise ValueError(f"this calibration set was made for {self.provenance.get('model')}, not {sam.name}")

    def torch_batches(self, batch_size: int = 1, device: str = "cpu", limit: int | None = None,
                      letterbox: float = 0.0, support: float = 0.0):
        from .inputs import torch_batches

        return torch_batches(self.pixels, self.spec, batch_size, device, limit, letterbox, support)
