"""Box-prompt predictors: ``predict(image, boxes) -> bool (N, H, W)`` over any SAM runtime.

``BoxPredictor`` is the runtime-free part (validation, pre/post-processing, prompt chunking); a runtime
only supplies ``embed`` (encoder input -> image embedding) and ``decode`` (embedding + model-space boxes
-> low-res logits). ``SamBoxPredictor`` runs torch; ``OVSamPredictor`` runs OpenVINO IRs and never
imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from .candidates import at_precisions, box_chunks, compiled_decoder, default_precision, run_config
from .split import HEADS, SplitEncoder, compile_encoder

_log = logging.getLogger("dfq_sam_plugin")


class BoxPredictor:
    spec: SamSpec
    _image: tuple | None = None  # (embedding, geometry, (H, W)) of the image given to ``set_image``

    def embed(self, pixels: np.ndarray) -> Any:
        """(1, 3, S, S) float32 encoder input -> the runtime's image embedding."""
        raise NotImplementedError

    def decode_scores(self, embedding: Any, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) float32 boxes in model input pixels -> ((N, h, w) float32 low-res mask logits, (N,) predicted
        IoU scores of the decoder)."""
        raise NotImplementedError

    def decode(self, embedding: Any, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) float32 boxes in model input pixels -> (N, h, w) float32 low-res mask logits."""
        return self.decode_scores(embedding, boxes)[0]

    def _prepare(self, image: np.ndarray, boxes: np.ndarray):
        """(encoder input, boxes in model input pixels, geometry) of one validated image and its boxes."""
        image = validate_image(image)
        boxes = validate_boxes(boxes, image.shape[0], image.shape[1])
        pixels, geo = preprocess_image(image, self.spec)
        return pixels, boxes_to_model(boxes, geo), geo

    def set_image(self, image: np.ndarray) -> None:
        """Encode ``image`` (HxW or HxWx3) once; ``predict(boxes)`` then decodes prompts against it, as
        segment-anything's ``SamPredictor.set_image`` does."""
        image = validate_image(image)
        pixels, geo = preprocess_image(image, self.spec)
        self._image = (self.embed(pixels), geo, image.shape[:2])

    def reset_image(self) -> None:
        self._image = None

    def predict(self, image_or_boxes: np.ndarray, boxes: np.ndarray | None = None, multimask_output: bool = False):
        """Two forms, as segment-anything's predictor and our one-shot call:

        - ``predict(image, boxes)``: image HxW or HxWx3 (uint8/uint16/float); boxes (N, 4) xyxy in image pixels
          -> bool (N, H, W);
        - ``predict(boxes)`` after ``set_image(image)`` -> (bool (N, H, W) masks, float32 (N,) IoU scores the
          decoder predicts), without encoding the image again.

        ``multimask_output``: the exported decoders return one mask per box (LiteMedSAM's and MedSAM's box-prompt
        mode); ``True`` is refused rather than answered with one mask."""
        if multimask_output:
            raise ValueError("multimask_output=True is not supported: the decoder returns one mask per box prompt "
                             "(box prompts are unambiguous; MedSAM and LiteMedSAM use multimask_output=False)")
        if boxes is not None:
            pixels, model_boxes, geo = self._prepare(image_or_boxes, boxes)
            return postprocess_masks(self.decode(self.embed(pixels), model_boxes), geo)
        if self._image is None:
            raise RuntimeError("no image set: call set_image(image) first, or predict(image, boxes) in one go")
        embedding, geo, (height, width) = self._image
        model_boxes = boxes_to_model(validate_boxes(image_or_boxes, height, width), geo)
        logits, iou = self.decode_scores(embedding, model_boxes)
        return postprocess_masks(logits, geo), np.asarray(iou, np.float32)

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

    def decode_scores(self, embedding, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        logits, scores = [], []
        with torch.inference_mode():
            for start in range(0, len(boxes), self.max_boxes):
                chunk = torch.from_numpy(boxes[start : start + self.max_boxes]).to(self.device)
                masks, iou = self.sam.model.decode(embedding, chunk[None])
                logits.append(masks[0].float().cpu().numpy())
                scores.append(iou[0].float().cpu().numpy())
        return np.concatenate(logits), np.concatenate(scores)


class OVSamPredictor(BoxPredictor):
    """OpenVINO predictor over an export folder (``encoder*.xml`` + ``decoder.xml`` + ``manifest.json``).

    Runs OpenVINO only: importing and using it never imports torch. The decoder IR has a static box count
    (``manifest["decoder_boxes"]``); prompts are fed in chunks of that size, the last chunk padded.

    Before compiling, the IR files are checked against the sha256 the manifest recorded (``verify=False``
    skips it): a damaged, truncated or swapped shared file is one ``ExportIntegrityError`` naming it; an encoder
    candidate whose files fail is left out (and named in ``rejected``), or refused if ``policy`` names it. With
    ``require_data_free=True`` an export whose provenance says real data was used (or records none) is refused.

    An export may carry several encoder candidates (float, INT8 weights, INT8) that share the decoder. Then the
    predictor measures each on this CPU, as it will run it (``device``, ``config``): median encoder latency and
    FP-fidelity on the synthetic probe the export carries, cached beside the export per CPU model and OpenVINO
    version (``cache=False`` measures again), and runs the one ``policy`` picks (``runtime.selection``:
    ``fastest_faithful`` within ``tolerance`` of the most faithful, ``fastest``, ``smallest``, ``most_faithful``,
    or a candidate's name). ``choice`` says which and why; it is logged, and printed with ``verbose=True``.

    ``precisions`` widens the choice to pinned inference precisions: ``("default", "f32")`` also measures each
    candidate with ``INFERENCE_PRECISION_HINT=f32`` (named ``int8@f32``, ``float@f32``; encoder and decoder pinned,
    same files) where the device's default differs (bf16 on AMX CPUs), so a box can trade its fast lossy default
    for f32 where the policy says so; ``"input"`` / ``"mixed"`` measure ``NAME@input`` / ``NAME@mixed``, the
    encoder's first layer / convolutional head at f32 and the rest at the default (``runtime.split``; ``@mixed``
    for LiteMedSAM only).
    A policy naming a pinned variant (``policy="int8@f32"``, ``"float@input"``) adds its precision.
    """

    def __init__(self, folder, device: str = "CPU", config: dict | None = None, verify: bool = True,
                 require_data_free: bool = False, policy: str = "fastest_faithful", tolerance: float | None = None,
                 cache: bool = True, verbose: bool = False, precisions: Sequence[str] = ("default",)) -> None:
        import openvino as ov

        from ..export.openvino import candidates_of, read_manifest
        from ..integrity import (
            ExportIntegrityError,
            check_data_free,
            file_problems,
            recorded_files,
            verify_export,
        )
        from ..models.spec import SamSpec

        self.folder = folder
        self.manifest = read_manifest(folder)
        candidates = candidates_of(self.manifest)
        self.rejected: dict[str, list[str]] = {}
        if verify:
            shared = [f for f in self.manifest.get("files", {}) if not f.startswith("encoder")]
            verify_export(folder, self.manifest, names=shared or ("decoder.xml", "decoder.bin"))
            recorded = recorded_files(folder, self.manifest)
            for name, c in candidates.items():
                if problems := file_problems(folder, recorded, (c["xml"], c["bin"])):
                    self.rejected[name] = problems
            if policy.partition("@")[0] in self.rejected or len(self.rejected) == len(candidates):
                raise ExportIntegrityError("export failed its integrity check:\n  " + "\n  ".join(
                    p for ps in self.rejected.values() for p in ps))
            candidates = {k: v for k, v in candidates.items() if k not in self.rejected}
            for name, problems in self.rejected.items():
                _log.warning("encoder candidate %r left out: %s", name, "; ".join(problems))
        if require_data_free:
            check_data_free(folder, self.manifest)
        self.spec = SamSpec.from_dict(self.manifest["spec"])
        self.boxes_per_call = int(self.manifest["decoder_boxes"])
        self._device, self._config, self._tput = device, config, None
        core = ov.Core()
        base, _, pin = policy.partition("@")
        names_pinned = bool(pin) and base in candidates  # a pinned variant: measure (or run) that precision too
        if names_pinned:
            precisions = (*precisions, pin)
        candidates = at_precisions(candidates, precisions, default_precision(core, device, config),
                                   HEADS.get(self.spec.family))
        if names_pinned and policy not in candidates:  # the pin is this box's default: the candidate itself
            policy = base
        decoders: dict = {}  # config -> compiled decoder, shared by the candidates' measurement and this predictor
        self.choice = self._choose(core, candidates, policy, tolerance, cache, decoders)
        self.candidate = self.choice.name
        self._encoder_xml = f"{folder}/{candidates[self.candidate]['xml']}"
        self._candidate_entry = candidates[self.candidate]
        self._run_config = run_config(config, candidates[self.candidate])
        (_log.info if not verbose else lambda msg, *a: print(msg % a))("%s: encoder %r (%s: %s)", folder,
                                                                       self.candidate, policy, self.choice.reason)
        # a pinned variant's decoder runs at its pin too; compiled once, whether measured or not
        self.decoder = compiled_decoder(core, folder, device, self._run_config, decoders)
        self.encoder = compile_encoder(core, self._encoder_xml, device, self._run_config, self._candidate_entry)
        self._enc_req = self.encoder.create_infer_request()
        self._dec_req = self.decoder.create_infer_request()

    def _choose(self, core, candidates: dict, policy: str, tolerance: float | None, cache: bool, decoders: dict):
        from ..export.probe import load_probe
        from .candidates import SelectionCache, as_measured, box_key, measure
        from .selection import DEFAULT_TOLERANCE, POLICIES, Choice, choose

        if policy not in POLICIES and policy not in candidates:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)} or a candidate of this export "
                             f"({', '.join(candidates)}); got {policy!r}")
        if policy in candidates:
            return Choice(policy, policy, "named by the user", ())
        if len(candidates) == 1:
            return Choice(next(iter(candidates)), policy, "the export's only encoder", ())
        probe = load_probe(self.folder)
        if probe is None:
            primary = self.manifest.get("primary", next(iter(candidates)))
            return Choice(primary, policy, "the export carries no probe to measure its candidates with: its primary "
                                           "encoder", ())
        store = SelectionCache(self.folder)
        key = box_key(core, self._device, self._config, self.manifest, candidates)
        measured = store.get(key) if cache else None
        if measured is None or set(measured) != set(candidates):
            measured = measure(core, self.folder, candidates, probe, self._device, self._config,
                               decoders=decoders)
            self.cache_path = store.put(key, measured)
        self.measured = measured
        return choose(as_measured(candidates, measured), policy,
                      DEFAULT_TOLERANCE if tolerance is None else tolerance)

    @property
    def calibration(self) -> dict:
        return self.manifest.get("calibration", {})

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        return self._enc_req.infer({0: pixels})[0].copy()

    def _chunks(self, boxes: np.ndarray):
        return box_chunks(boxes, self.boxes_per_call)

    def decode_scores(self, embedding: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, scores = [], []
        for chunk, real in self._chunks(boxes):
            out = self._dec_req.infer({0: embedding, 1: chunk})
            logits.append(np.array(out[0][:real]))
            scores.append(np.array(out[1][:real]).reshape(real))
        return np.concatenate(logits), np.concatenate(scores)

    def _throughput_models(self):
        """Encoder and decoder compiled again with the THROUGHPUT hint (as many parallel requests as the device
        likes), once, for ``predict_many``."""
        if self._tput is None:
            import openvino as ov

            core = ov.Core()
            config = {"PERFORMANCE_HINT": "THROUGHPUT", **self._run_config}
            self._tput = (compile_encoder(core, self._encoder_xml, self._device, config, self._candidate_entry),
                          core.compile_model(f"{self.folder}/decoder.xml", self._device, config))
        return self._tput

    def predict_many(self, images, boxes) -> list[np.ndarray]:
        """``predict`` over many images with every core busy: encoder requests run asynchronously (THROUGHPUT
        hint, as many in flight as OpenVINO asks for) and each finished embedding's decoder requests start while
        later images encode. A split encoder (``@input``, ``@mixed``) is two stages of the same pipeline, its
        body's requests started as its head's finish. Plain infer requests polled from this thread, no Python
        callbacks: with ``AsyncInferQueue`` callbacks, freeing the compiled models could deadlock on the GIL (seen
        2026-12-03)."""
        from collections import deque

        prepared = self._prepare_many(images, boxes)
        encoder, decoder = self._throughput_models()
        stages = [encoder.head, encoder.body, decoder] if isinstance(encoder, SplitEncoder) else [encoder, decoder]
        last = len(stages) - 1  # the decoder's stage; the one before it makes embeddings
        logits: list[list] = [[None] * -(-len(mb) // self.boxes_per_call) for _, mb, _ in prepared]
        pools = [[m.create_infer_request() for _ in range(max(1, m.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))]
                 for m in stages]
        busy: list[deque] = [deque() for _ in stages]

        def finish_oldest(stage: int) -> None:
            request, key = busy[stage].popleft()
            request.wait()
            out = request.get_output_tensor(0).data
            if stage == last:
                i, c, real = key
                logits[i][c] = out[:real].copy()
                pools[stage].append(request)
                return
            out = out.copy()
            pools[stage].append(request)
            if stage < last - 1:  # a split encoder's head: its output feeds the body
                start(stage + 1, {0: out}, key)
                return
            for c, (chunk, real) in enumerate(self._chunks(prepared[key][1])):
                start(last, {0: out, 1: chunk}, (key, c, real))

        def start(stage: int, inputs, key) -> None:
            if not pools[stage]:
                finish_oldest(stage)
            request = pools[stage].pop()
            request.start_async(inputs, share_inputs=False)
            busy[stage].append((request, key))

        for i, (pixels, _, _) in enumerate(prepared):
            start(0, {0: pixels}, i)
        for stage in range(len(stages)):  # finishing a stage only starts later ones
            while busy[stage]:
                finish_oldest(stage)
        return [postprocess_masks(np.concatenate(parts), geo) for parts, (_, _, geo) in zip(logits, prepared)]
