"""Box-prompt predictors: ``predict(image, boxes) -> bool (N, H, W)`` over any SAM runtime.

``BoxPredictor`` is the runtime-free part (validation, pre/post-processing, prompt chunking); a runtime
only supplies ``embed`` (encoder input -> image embedding) and ``decode`` (embedding + model-space boxes
-> low-res logits). ``SamBoxPredictor`` runs torch; ``OVSamPredictor`` runs OpenVINO IRs and never
imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.preprocess import boxes_to_model, postprocess_masks, preprocess_image, validate_boxes, validate_image
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
