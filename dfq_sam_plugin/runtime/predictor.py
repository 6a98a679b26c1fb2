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

    def _prepare(self, image: np.ndarray, boxes: np.ndarray):
        """(encoder input, boxes in model input pixels, geometry) of one validated image and its boxes."""
        image = validate_image(image)
        boxes = validate_boxes(boxes, image.shape[0], image.shape[1])
        pixels, geo = preprocess_image(image, self.spec)
        return pixels, boxes_to_model(boxes, geo), geo

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """image: HxW or HxWx3 (uint8/uint16/float); boxes: (N, 4) xyxy in image pixels -> bool (N, H, W)."""
        pixels, model_boxes, geo = self._prepare(image, boxes)
        return postprocess_masks(self.decode(self.embed(pixels), model_boxes), geo)

    def predict_many(self, images, boxes) -> list[np.ndarray]:
        """``predict`` over many images (the slices of a volume, say), ``boxes[i]`` the (N_i, 4) boxes of
        ``images[i]``; every input is validated before any inference. This base runs them one after another;
        ``OVSamPredictor`` keeps all cores busy (OpenVINO's THROUGHPUT hint, encoder and decoder overlapped)."""
        prepared = self._prepare_many(images, boxes)
        return [postprocess_masks(self.decode(self.embed(px), mb), geo) for px, mb, geo in prepared]

    def predict_volume(self, volume: np.ndarray, boxes_per_slice) -> list[np.ndarray]:
        """A (Z, H, W) volume segmented slice by slice: ``boxes_per_slice[z]`` the (N_z, 4) boxes of slice z
        (a list of Z arrays, or a dict {z: boxes} for the slices that have prompts). Returns one bool (N_z, H, W)
        per slice (empty where a slice has no boxes)."""
        volume = np.asarray(volume)
        if volume.ndim != 3:
            raise ValueError(f"volume must be (Z, H, W); got shape {volume.shape}")
        if isinstance(boxes_per_slice, dict):
            bad = [z for z in boxes_per_slice if not 0 <= z < len(volume)]
            if bad:
                raise ValueError(f"boxes_per_slice has slices {bad} outside the volume's 0..{len(volume) - 1}")
            boxes_per_slice = [boxes_per_slice.get(z, np.zeros((0, 4), np.float32)) for z in range(len(volume))]
        if len(boxes_per_slice) != len(volume):
            raise ValueError(f"{len(boxes_per_slice)} box arrays for {len(volume)} slices")
        todo = [z for z, b in enumerate(boxes_per_slice) if len(b)]
        masks = self.predict_many([volume[z] for z in todo], [boxes_per_slice[z] for z in todo])
        out = [np.zeros((0, *volume.shape[1:]), bool) for _ in range(len(volume))]
        for z, m in zip(todo, masks):
            out[z] = m
        return out

    def _prepare_many(self, images, boxes) -> list:
        images, boxes = list(images), list(boxes)
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box arrays: one (N, 4) array per image")
        prepared = []
        for i, (image, b) in enumerate(zip(images, boxes)):
            try:
                prepared.append(self._prepare(image, b))
            except ValueError as exc:
                raise ValueError(f"image {i}: {exc}") from None
        return prepared


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
        self._device, self._config, self._tput = device, config, None
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

    def _chunks(self, boxes: np.ndarray):
        """(chunk of exactly ``boxes_per_call`` boxes, how many are real) over ``boxes``; the last padded."""
        k = self.boxes_per_call
        for start in range(0, len(boxes), k):
            chunk = boxes[start : start + k]
            real = len(chunk)
            if real < k:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], k - real, axis=0)])
            yield chunk.astype(np.float32), real

    def decode(self, embedding: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = [np.array(self._dec_req.infer({0: embedding, 1: chunk})[0][:real]) for chunk, real in self._chunks(boxes)]
        return np.concatenate(out)

    def _throughput_models(self):
        """Encoder and decoder compiled again with the THROUGHPUT hint (as many parallel requests as the device
        likes), once, for ``predict_many``."""
        if self._tput is None:
            import openvino as ov

            core = ov.Core()
            config = {"PERFORMANCE_HINT": "THROUGHPUT", **(self._config or {})}
            self._tput = tuple(core.compile_model(f"{self.folder}/{part}.xml", self._device, config)
                               for part in ("encoder", "decoder"))
        return self._tput

    def predict_many(self, images, boxes) -> list[np.ndarray]:
        """``predict`` over many images with every core busy: encoder requests run asynchronously (THROUGHPUT
        hint, as many in flight as OpenVINO asks for) and each finished embedding's decoder requests start while
        later images encode. Plain infer requests polled from this thread, no Python callbacks: with
        ``AsyncInferQueue`` callbacks, freeing the compiled models could deadlock on the GIL (seen 2026-12-03)."""
        from collections import deque

        prepared = self._prepare_many(images, boxes)
        encoder, decoder = self._throughput_models()
        logits: list[list] = [[None] * -(-len(mb) // self.boxes_per_call) for _, mb, _ in prepared]
        pools = {m: [m.create_infer_request() for _ in range(max(1, m.get_property(
            "OPTIMAL_NUMBER_OF_INFER_REQUESTS")))] for m in (encoder, decoder)}
        busy: dict = {encoder: deque(), decoder: deque()}

        def finish_oldest(model) -> None:
            request, key = busy[model].popleft()
            request.wait()
            out = request.get_output_tensor(0).data
            if model is encoder:
                emb = out.copy()
                pools[encoder].append(request)
                for c, (chunk, real) in enumerate(self._chunks(prepared[key][1])):
                    start(decoder, {0: emb, 1: chunk}, (key, c, real))
            else:
                i, c, real = key
                logits[i][c] = out[:real].copy()
                pools[decoder].append(request)

        def start(model, inputs, key) -> None:
            if not pools[model]:
                finish_oldest(model)
            request = pools[model].pop()
            request.start_async(inputs, share_inputs=False)
            busy[model].append((request, key))

        for i, (pixels, _, _) in enumerate(prepared):
            start(encoder, {0: pixels}, i)
        while busy[encoder]:
            finish_oldest(encoder)
        while busy[decoder]:
            finish_oldest(decoder)
        return [postprocess_masks(np.concatenate(parts), geo) for parts, (_, _, geo) in zip(logits, prepared)]
