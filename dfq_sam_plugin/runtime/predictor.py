"""Box-prompt predictors: ``predict(image, boxes) -> bool (N, H, W)`` over any SAM runtime.

``BoxPredictor`` is the runtime-free part (validation, pre/post-processing, prompt chunking); a runtime
only supplies ``embed`` (encoder input -> image embedding) and ``decode`` (embedding + model-space boxes
-> low-res logits). ``SamBoxPredictor`` runs torch; ``OVSamPredictor`` runs OpenVINO IRs and never
imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.preprocess import (
    boxes_to_model,
    postprocess_masks,
    preprocess_image,
    validate_boxes,
    validate_image,
)
from ..models.spec import SamSpec


class BoxPredictor:
    spec: SamSpec

    def embed(self, pixels: np.ndarray) -> Any:
        """(1, 3, S, S) float32 encoder input -> the runtime's image embedding."""
        raise NotImplementedError

    def decode(self, embedding: Any, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) float32 boxes in model input pixels -> (N, h, w) float32 low-res mask logits."""
        raise NotImplementedError

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """image: HxW or HxWx3 (uint8/uint16/float); boxes: (N, 4) xyxy in image pixels -> bool (N, H, W)."""
        image = validate_image(image)
        boxes = validate_boxes(boxes, image.shape[0], image.shape[1])
        pixels, geo = preprocess_image(image, self.spec)
        logits = self.decode(self.embed(pixels), boxes_to_model(boxes, geo))
        return postprocess_masks(logits, geo)


class SamBoxPredictor(BoxPredictor):
    """Torch predictor over a ``SamBundle`` (FP, or any fake-quantized copy of its model)."""

    def __init__(self, sam, device: str = "cpu", max_boxes: int = 64) -> None:
        import torch

        self._torch = torch
        self.sam = sam
        self.spec = sam.spec
        self.device = torch.device(device)
        self.max_boxes = max_boxes
        sam.model.to(self.device).eval()

    def embed(self, pixels: np.ndarray):
        with self._torch.inference_mode():
            return self.sam.model.encode(self._torch.from_numpy(pixels).to(self.device))

    def decode(self, embedding, boxes: np.ndarray) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(boxes), self.max_boxes):
                chunk = torch.from_numpy(boxes[start : start + self.max_boxes]).to(self.device)
                logits, _ = self.sam.model.decode(embedding, chunk[None])
                out.append(logits[0].float().cpu().numpy())
        return np.concatenate(out)


class OVSamPredictor(BoxPredictor):
    """OpenVINO predictor over an export folder (``encoder.xml`` + ``decoder.xml`` + ``manifest.json``).

    Runs OpenVINO only: importing and using it never imports torch. The decoder IR has a static box count
    (``manifest["decoder_boxes"]``); prompts are fed in chunks of that size, the last chunk padded.

    Before compiling, the IR files are checked against the sha256 the manifest recorded (``verify=False``
    skips it): a damaged, truncated or swapped file is one ``ExportIntegrityError`` naming it. With
    ``require_data_free=True`` an export whose provenance says real data was used (or records none) is refused.
    """

    def __init__(self, folder, device: str = "CPU", config: dict | None = None, verify: bool = True,
                 require_data_free: bool = False) -> None:
        import openvino as ov

        from ..export.openvino import read_manifest
        from ..integrity import check_data_free, verify_export
        from ..models.spec import SamSpec

        self.folder = folder
        self.manifest = read_manifest(folder)
        if verify:
            verify_export(folder, self.manifest)
        if require_data_free:
            check_data_free(folder, self.manifest)
        self.spec = SamSpec.from_dict(self.manifest["spec"])
        self.boxes_per_call = int(self.manifest["decoder_boxes"])
        core = ov.Core()
        self.encoder = core.compile_model(f"{folder}/encoder.xml", device, config or {})
        self.decoder = core.compile_model(f"{folder}/decoder.xml", device, config or {})
        self._enc_req = self.encoder.create_infer_request()
        self._dec_req = self.decoder.create_infer_request()

    @property
    def calibration(self) -> dict:
        return self.manifest.get("calibration", {})

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        return self._enc_req.infer({0: pixels})[0].copy()

    def decode(self, embedding: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        n, k = len(boxes), self.boxes_per_call
        out = []
        for start in range(0, n, k):
            chunk = boxes[start : start + k]
            real = len(chunk)
            if real < k:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], k - real, axis=0)])
            logits = self._dec_req.infer({0: embedding, 1: chunk.astype(np.float32)})[0]
            out.append(np.array(logits[:real]))
        return np.concatenate(out)
