"""The DFQ-SAM optimisation loop: batched over images and box prompts, seeded, AMP, NaN-guarded.

Every random draw of an image (initial noise, labels, augmentation, PSE sub-sampling, box jitter) comes
from that image's own generators, seeded by (seed, index), and losses are sums over images, so each
image's gradient is its own: an image does not depend on which batch, rank or restart produced it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from ..models.spec import SamBundle
from .config import SynthesisConfig
from .hooks import AttentionCapture
from .labels import augment_images, boxes_from_masks, evolve_masks, random_masks, shift_labels
from .losses import pair_entropy, segmentation_loss, subsample_tokens, total_variation, tv_target
from .texture import laws_filters, texture_loss, texture_target

TERMS = ("seg", "pse", "tv", "total")


def derived_generator(*keys: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


@dataclass
class SynthesizedBatch:
    indices: list[int]
    pixels: np.ndarray  # (B, C, S, S) float32 in [0, 1] raw intensity
    boxes: np.ndarray  # (B, K, 4) float32, model input pixels
    masks: np.ndarray  # (B, K, S, S) uint8 pseudo-positive labels
    losses: dict[str, np.ndarray]  # final per-image terms
    history: dict[str, list[float]] = field(default_factory=dict)  # batch-mean terms per iteration
    reinitialised: list[int] = field(default_factory=list)  # image indices reset after NaN/Inf
    seconds: float = 0.0


@contextlib.contextmanager
def activation_checkpointing(encoder: torch.nn.Module, enabled: bool):
    """Recompute each encoder block in backward instead of storing its activations."""
    blocks = [m for name, m in encoder.named_modules()
              if name.count(".") == 1 and name.split(".")[0] in ("blocks", "layers")] if enabled else []
    originals = [b.forward for b in blocks]
    for block, fwd in zip(blocks, originals):
        block.forward = (lambda f: lambda *a, **k: checkpoint(f, *a, use_reentrant=False, **k))(fwd)
    try:
        yield
    finally:
        for block, fwd in zip(blocks, originals):
            block.forward = fwd


SYNC_EVERY = 10  # steps between host reads of the loss terms and NaN flags


class Synthesizer:
    def __init__(self, sam: SamBundle, config: SynthesisConfig, device: str | torch.device = "cpu") -> None:
        self.sam, self.cfg = sam, config
        self.device = torch.device(device)
        self.model = sam.model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.encoder, self.dtype = self.model.image_encoder, torch.float32
        if config.amp == "bf16-model":
            # the encoder as a bf16 copy, run without autocast: no per-op activation casts (the caller's model stays
            # fp32; eval() makes TinyViT re-cache its attention biases in bf16); the decoder stays under autocast
            self.encoder, self.dtype = copy.deepcopy(self.encoder).to(torch.bfloat16).eval(), torch.bfloat16
        self.size = sam.spec.img_size
        self.scale = self.size / 256.0
        amp = config.amp in ("bf16", "bf16-model") or (config.amp == "auto" and self.device.type == "cuda")
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp)
        self._encoder_autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                enabled=amp and self.dtype == torch.float32)
        self.tv_target = tv_target((config.channels, self.size, self.size), config.tv_rms_step)
        self._capture: AttentionCapture | None = None  # hooks that stay attached (compiled encoder only)
        self._encoder_fn, self._seg_fn = self.encoder, self._segmentation
        self._pair_entropy, self._tv, self._texture = pair_entropy, total_variation, texture_loss
        self._laws = laws_filters().to(self.device)
        mode = config.compile_mode(self.device.type)
        if mode != "off":
            self._compile(mode)

    def _compile(self, mode: str) -> None:
        """torch.compile the encoder, the decoder + segmentation loss, the PSE/KDE and TV terms: one fused
        kernel where eager runs a cast, a mask or an element-wise op each (the loop is launch-bound)."""
        if self.encoder is self.model.image_encoder:  # hooks stay attached: on a copy, never the caller's model
            self.encoder = copy.deepcopy(self.encoder)
        if self.cfg.lambda_pse > 0:
            self._capture = AttentionCapture(self.encoder).attach()
        import torch._dynamo

        # each attention-block shape and batch size is its own static graph (TinyViT: 3 shapes, SAM ViT: 2)
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)
        opts = {"dynamic": False, "backend": self.cfg.compile_backend,
                **({} if mode == "default" or self.cfg.compile_backend != "inductor" else {"mode": mode})}
        self._encoder_fn = torch.compile(self.encoder, **opts)
        self._seg_fn = torch.compile(self._segmentation, **opts)
        self._pair_entropy = torch.compile(pair_entropy, **opts)
        self._tv = torch.compile(total_variation, **opts)
        self._texture = torch.compile(texture_loss, **opts)

    # -- pixels ---------------------------------------------------------------------------------------
    def to_model_input(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) raw [0, 1] -> (B, 3, S, S) encoder input of this SAM family."""
        return self.sam.spec.normalise(raw.expand(-1, 3, -1, -1) if raw.shape[1] == 1 else raw)

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        """Image embeddings of raw pixels: the encoder under autocast, or its bf16 copy without it."""
        if self._capture is not None:  # a fresh list each forward (its length is part of the compiled graph's guards)
            self._capture.outputs.clear()
        with self._encoder_autocast:
            return self._encoder_fn(self.to_model_input(raw).to(self.dtype))

    def encode_with_attention(self, raw: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings and, if ``enabled``, the attention·V output U of every attention block."""
        if self._capture is not None:
            emb = self.encode(raw)
            return emb, list(self._capture.outputs) if enabled else []
        with AttentionCapture(self.encoder, enabled=enabled) as cap, \
                activation_checkpointing(self.encoder, self.cfg.activation_checkpointing):
            emb = self.encode(raw)
        return emb, list(cap.outputs)

    def _logits(self, emb: torch.Tensor, boxes: torch.Tensor, fp32: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits at the input side (B, K, S, S) and predicted IoU (B, K), the decoder under autocast;
        ``fp32``: the low-resolution logits are cast to fp32 before they are resized (label evolution)."""
        with self.autocast:
            logits, iou = self.model.decode(emb, boxes)
            logits = logits.float() if fp32 else logits
            if logits.shape[-1] != self.size:
                logits = torch.nn.functional.interpolate(logits, size=(self.size, self.size), mode="bilinear")
        return logits, iou

    def _segmentation(self, emb: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits, iou = self._logits(emb, boxes)
        return segmentation_loss(logits, iou, masks)

    def _noise(self, generator: torch.Generator) -> torch.Tensor:
        shape = (self.cfg.channels, self.size, self.size)
        if self.cfg.method == "uniform":
            return torch.rand(shape, generator=generator)
        return (self.cfg.init_mean + self.cfg.init_std * torch.randn(shape, generator=generator)).clamp(0, 1)

    def initial_state(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        g = derived_generator(cfg.seed, index)
        pixels = self._noise(g)
        masks = random_masks(cfg.boxes_per_image, self.size, g, *cfg.label_axes)
        nb = cfg.boundary_prompts
        if nb:  # superposed soft labels: 1 on M and M', 0.5 on M xor M', boxes around the union
            second = random_masks(nb, self.size, derived_generator(cfg.seed, index, 13), *cfg.label_axes)
            masks[:nb] = 0.5 * (masks[:nb] + second)
        boxes = boxes_from_masks((masks > 0).float(), cfg.box_jitter * self.scale, g)
        return pixels, masks, boxes

    def texture_targets(self, indices: Sequence[int]) -> torch.Tensor | None:
        """Each image's Laws-energy target (B, 15), drawn from its own generator; None with the switch off."""
        if not self.cfg.uses_texture:
            return None
        draws = [texture_target(self.size, self.cfg.texture_slope, self.cfg.tv_rms_step,
                                derived_generator(self.cfg.seed, i, 17)) for i in indices]
        return torch.stack(draws).to(self.device)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Host -> device without a stream sync: a copy from pageable memory waits for the GPU's queue to drain
        (CUDA's rule for pageable H2D copies), which stalls the launch of the next step's kernels."""
        if self.device.type != "cuda":
            return t.to(self.device)
        return t.pin_memory().to(self.device, non_blocking=True)

    # -- losses ---------------------------------------------------------------------------------------
    def losses(self, raw: torch.Tensor, masks: torch.Tensor, boxes: torch.Tensor,
               generators: Sequence[torch.Generator], stage: int, texture: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
        """Per-image terms; ``texture`` (B, 15): the images' texture targets, whose term goes into the total only."""
        cfg, b = self.cfg, raw.shape[0]
        zero = torch.zeros(b, device=self.device)
        if cfg.roll or cfg.flip:
            amp = int(round(cfg.roll[min(stage, len(cfg.roll) - 1)] * self.scale)) if cfg.roll else 0
            draws = torch.stack([torch.cat([torch.randint(-amp, amp + 1, (2,), generator=g),
                                            (torch.rand(1, generator=g) < 0.5).long()]) for g in generators])
            draws = self._to_device(draws)
            dy, dx = draws[:, 0], draws[:, 1]
            flip = draws[:, 2].bool() & cfg.flip
            raw_aug = augment_images(raw, dy, dx, flip)
            masks, boxes = shift_labels(masks, boxes, dy, dx, flip)
        else:
            raw_aug = raw
        use_seg, use_pse = cfg.method == "dfq-sam" and cfg.lambda_seg > 0, cfg.lambda_pse > 0
        emb, outputs = self.encode_with_attention(raw_aug, use_pse)
        seg = self._seg_fn(emb, boxes, masks) if use_seg else zero
        pse = -sum(self._pair_entropy(subsample_tokens(u, b, cfg.max_pse_tokens, generators), b) for u in outputs) \
            if use_pse else zero
        tv = (self._tv(raw.float()) - self.tv_target).abs() if cfg.lambda_tv > 0 else zero
        total = cfg.lambda_seg * seg + cfg.lambda_pse * pse + cfg.lambda_tv * tv
        if texture is not None:
            total = total + cfg.texture * self._texture(raw, texture, self._laws)
        return {"seg": seg, "pse": pse, "tv": tv, "total": total}

    @torch.no_grad()
    def predict_masks(self, raw: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self._logits(self.encode(raw), boxes, fp32=True)[0]

    # -- the loop -------------------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        cfg = self.cfg
        warm = min(cfg.warmup, cfg.iterations // 5)
        if step < warm:
            return cfg.lr * (step + 1) / warm
        progress = (step - warm) / max(1, cfg.iterations - warm)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def run_batch(self, indices: Sequence[int], on_step: Callable[[dict[str, float]], None] | None = None
                  ) -> SynthesizedBatch:
        cfg, start = self.cfg, time.perf_counter()
        states = [self.initial_state(i) for i in indices]
        raw = torch.stack([s[0] for s in states]).to(self.device)
        masks = torch.stack([s[1] for s in states]).to(self.device)
        boxes = torch.stack([s[2] for s in states]).to(self.device)
        history: dict[str, list[float]] = {t: [] for t in TERMS}
        reinit: list[int] = []
        gens = [derived_generator(cfg.seed, i, 7) for i in indices]
        texture = self.texture_targets(indices)
        if cfg.optimises:
            raw = raw.requires_grad_(True)
            evolve_every = max(1, min(cfg.evolve_every, cfg.iterations // 4))
            # the host reads losses and NaN flags every SYNC_EVERY steps only: a read per step stalls the
            # kernel launches of the next step (the loop is launch-bound on a GPU: docs/notebook/2026-11-22.md §2)
            pending: list[torch.Tensor] = []  # per step: batch means of TERMS over the finite images
            flagged = torch.zeros(len(indices), dtype=torch.bool, device=self.device)

            def flush() -> None:
                nonlocal flagged
                if pending:
                    for row in torch.stack(pending).tolist():
                        step = dict(zip(TERMS, row))
                        for k in TERMS:
                            history[k].append(step[k])
                        if on_step is not None:
                            on_step(step)
                    pending.clear()
                if flagged.any():
                    reinit.extend(self._reinitialise(raw, opt, flagged, indices, len(reinit)))
                    flagged = torch.zeros_like(flagged)

            for stage in range(cfg.stages):
                opt = torch.optim.Adam([raw], lr=cfg.lr, betas=cfg.betas)
                for it in range(cfg.iterations):
                    for group in opt.param_groups:
                        group["lr"] = self._lr(it)
                    terms = self.losses(raw, masks, boxes, gens, stage, texture)
                    bad = ~torch.isfinite(terms["total"].detach())
                    opt.zero_grad(set_to_none=True)
                    terms["total"].masked_fill(bad, 0.0).sum().backward()
                    bad |= ~torch.isfinite(raw.grad).flatten(1).all(dim=1)
                    raw.grad.masked_fill_(bad.view(-1, *([1] * (raw.dim() - 1))), 0.0)
                    opt.step()
                    with torch.no_grad():
                        raw.clamp_(0.0, 1.0)
                        good = (~bad).float()
                        pending.append(torch.stack([
                            torch.where(good.sum() > 0, (terms[k].detach().float() * good).nansum()
                                        / good.sum().clamp_min(1), torch.full_like(good.sum(), float("nan")))
                            for k in TERMS]))
                        flagged |= bad
                        evolve = cfg.method == "dfq-sam" and stage == 0 and (it + 1) % evolve_every == 0
                        if evolve or (it + 1) % SYNC_EVERY == 0 or it + 1 == cfg.iterations:
                            flush()
                        if evolve:
                            logits = self.predict_masks(raw, boxes)
                            evolved, _ = evolve_masks(masks.cpu(), logits.cpu(), *cfg.evolve_area)
                            nb = cfg.boundary_prompts  # superposed labels stay as they are
                            evolved[:, :nb] = masks[:, :nb].cpu()
                            new_boxes = torch.stack([boxes_from_masks(m, cfg.box_jitter * self.scale, g)
                                                     for m, g in zip(evolved, gens)]).to(self.device)
                            new_boxes[:, :nb] = boxes[:, :nb]
                            masks, boxes = evolved.to(self.device), new_boxes
        with torch.no_grad():
            final = self.losses(raw.detach(), masks, boxes, [derived_generator(cfg.seed, i, 11) for i in indices],
                                cfg.stages - 1, texture) \
                if cfg.optimises else {t: torch.zeros(len(indices)) for t in TERMS}
        return SynthesizedBatch(
            indices=list(indices), pixels=raw.detach().float().cpu().numpy(),
            boxes=boxes.float().cpu().numpy(), masks=(masks >= 0.5).to(torch.uint8).cpu().numpy(),
            losses={k: v.float().cpu().numpy() for k, v in final.items()}, history=history,
            reinitialised=reinit, seconds=time.perf_counter() - start,
        )

    def _reinitialise(self, raw: torch.Tensor, opt: torch.optim.Optimizer, bad: torch.Tensor,
                      indices: Sequence[int], attempt: int) -> list[int]:
        """Replace non-finite images by fresh noise and clear their optimiser state."""
        hit = [i for i, flag in enumerate(bad.tolist()) if flag]
        state = opt.state.get(raw, {})
        for j in hit:
            raw[j] = self._noise(derived_generator(self.cfg.seed, indices[j], 1000 + attempt)).to(self.device)
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][j] = 0.0
        return [indices[j] for j in hit]

    def run(self, indices: Sequence[int], on_step: Callable[[dict[str, float]], None] | None = None
            ) -> Iterator[SynthesizedBatch]:
        for start in range(0, len(indices), self.cfg.batch_size):
            yield self.run_batch(indices[start : start + self.cfg.batch_size], on_step)
