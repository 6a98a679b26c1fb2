"""The distillation loop: a quantized student image encoder learns the FP SAM on synthetic images.

Backend-free: the student is any ``nn.Module`` mapping encoder inputs to image embeddings, whichever library
put its quantizers there; ``is_quantizer(module)`` tells which modules hold quantizer parameters (they get
relative learning rates). The teacher is the FP ``SamBundle``; its prompt encoder and mask decoder (frozen,
float) turn both embeddings into mask logits for the mask loss. Seeded per step (batch, augmentation and boxes
depend only on (seed, step)), resumable from ``out/checkpoint.pt``, ``torchrun`` DDP when a process group
is initialised (the global batch is split over ranks: the same images as one process).

Against fitting the pool (``DistillConfig``): a validation split scored during training keeps the best student
and can stop early; a refresh re-optimises part of the pool toward the student's disagreement with the teacher;
the feature loss can compare attention maps instead of raw values.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.inputs import on_black
from ..models.preprocess import letterbox
from ..models.spec import SamBundle
from ..synthesis.engine import derived_generator
from .augment import augment, random_boxes
from .config import DistillConfig
from .losses import attention_map_loss, mask_kl, relative_mse

CHECKPOINT = "checkpoint.pt"
# generator keys of the validation split, of refreshes and of the curriculum's fixed boxes
VAL_SALT, REFRESH_SALT, CURRICULUM_SALT = 3 * 10**6, 4 * 10**6, 5 * 10**6
HISTORY = "history.json"
TERMS = ("embed", "mask", "feature", "total")


@dataclass
class DistillResult:
    steps: int
    seconds: float  # this call's training time (a resumed run counts only its own part)
    history: dict[str, list[float]] = field(default_factory=dict)  # per logged step: step, embed, mask, total
    resumed_from: int = 0
    world_size: int = 1
    best_step: int | None = None  # with a validation split: the step whose student was kept
    stopped_early: bool = False

    def summary(self) -> dict[str, Any]:
        last = {k: self.history[k][-1] for k in TERMS if self.history.get(k)}
        first = {k: self.history[k][0] for k in TERMS if self.history.get(k)}
        out = {"steps": self.steps, "seconds": round(self.seconds, 1), "resumed_from": self.resumed_from,
               "world_size": self.world_size, "first_losses": first, "final_losses": last}
        if self.history.get("val"):
            out.update(best_step=self.best_step, stopped_early=self.stopped_early,
                       validation={"first": self.history["val"][0], "best": min(self.history["val"]),
                                   "last": self.history["val"][-1]})
        if self.history.get("refresh_step"):
            out["refresh"] = {k: self.history[k] for k in ("refresh_step", "refresh_before", "refresh_after")}
        if self.history.get("curriculum_step"):  # the training pool's mean disagreement at each difficulty score
            out["curriculum"] = {k: self.history[k] for k in ("curriculum_step", "curriculum_mean")}
        return out


@torch.no_grad()
def load_in_place(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (a ``state_dict`` of ``module``) into ``module``'s own tensors, strictly.

    Unlike ``load_state_dict`` it keeps every tensor object where it is: the optimizer's parameters stay the
    module's, and no backend rebuilds its quantizers (Brevitas re-creates its quantizer modules on every
    ``load_state_dict``, on the CPU and with new parameters, which left a student on the GPU half on the CPU)."""
    own = module.state_dict(keep_vars=True)
    if own.keys() != state.keys():
        missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        raise KeyError(f"state does not match the module: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, tensor in own.items():
        if tensor.shape != state[key].shape:
            raise ValueError(f"{key}: shape {tuple(state[key].shape)} in the state, {tuple(tensor.shape)} here")
        tensor.copy_(state[key])


def param_groups(module: nn.Module, is_quantizer: Callable[[nn.Module], bool], lr_weights: float,
                 lr_quant: float) -> list[dict[str, Any]]:
    """Adam parameter groups of ``module``'s trainable parameters: one group of weights at ``lr_weights``, and one
    group per quantizer parameter (those held directly by modules that ``is_quantizer`` accepts) at ``lr_quant``
    times its own magnitude: a relative (log-space) step, whatever the parameter's scale."""
    quant_ids = {id(p) for m in module.modules() if is_quantizer(m) for p in m.parameters(recurse=False)}
    weights, groups = [], []
    for p in module.parameters():
        if not p.requires_grad:
            continue
        if id(p) in quant_ids:
            magnitude = float(p.detach().abs().mean()) or 1e-3
            groups.append({"params": [p], "lr": lr_quant * magnitude, "base_lr": lr_quant * magnitude,
                           "kind": "quant"})
        else:
            weights.append(p)
    if weights:
        groups.insert(0, {"params": weights, "lr": lr_weights, "base_lr": lr_weights, "kind": "weights"})
    if not groups:
        raise ValueError("the student has no trainable parameters")
    return groups


def _dist() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Distiller:
    def __init__(self, teacher: SamBundle, student: nn.Module, pixels: np.ndarray | torch.Tensor,
                 boxes: np.ndarray | torch.Tensor, config: DistillConfig | None = None,
                 is_quantizer: Callable[[nn.Module], bool] = lambda m: False,
                 device: str | torch.device = "cpu") -> None:
        """``pixels`` (N, C, S, S) raw [0, 1] synthetic images (C = 1 or 3); ``boxes`` (N, K, 4) their stored
        box prompts in model input pixels (K may be 0)."""
        self.cfg = config or DistillConfig()
        self.device = torch.device(device)
        self.rank, self.world = _dist()
        if self.cfg.batch_size % self.world:
            raise ValueError(f"batch_size {self.cfg.batch_size} must be divisible by the {self.world} DDP ranks")
        self.pixels = torch.as_tensor(np.asarray(pixels, np.float32))
        self.boxes = torch.as_tensor(np.asarray(boxes, np.float32))
        if self.pixels.ndim != 4 or self.pixels.shape[-1] != teacher.spec.img_size or len(self.pixels) == 0:
            raise ValueError(f"pixels must be (N, C, {teacher.spec.img_size}, {teacher.spec.img_size}) with N >= 1; "
                             f"got {tuple(self.pixels.shape)}")
        if self.boxes.ndim != 3 or len(self.boxes) != len(self.pixels) or self.boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be (N, K, 4) with N = {len(self.pixels)}; got {tuple(self.boxes.shape)}")
        self.teacher = teacher
        self.size = teacher.spec.img_size
        self.train_idx, self.val_idx = split_pool(len(self.pixels), self.cfg.validation, self.cfg.seed)
        # images per forward/backward pass (training: at most a rank's share; scoring and refresh chunks too)
        self.chunk = self.cfg.micro_batch or (self.cfg.batch_size if self.device.type == "cuda" else 2)
        teacher.model.to(self.device).eval()
        for p in teacher.model.parameters():
            p.requires_grad_(False)
        # eval mode: BatchNorm statistics and cached attention biases stay as calibrated; parameters still learn
        self.student = student.to(self.device).eval()
        if any(p is q for p in student.parameters() for q in teacher.model.image_encoder.parameters()):
            raise ValueError("the student shares parameters with the teacher: pass a copy (copy.deepcopy)")
        for p in student.parameters():  # every float student parameter learns (a frozen teacher's copy included)
            p.requires_grad_(p.is_floating_point())
        self.groups = param_groups(student, is_quantizer, self.cfg.lr_weights, self.cfg.lr_quant)
        self.optimizer = torch.optim.Adam(self.groups, lr=self.cfg.lr_weights)
        for name in self.cfg.feature_layers:  # fail now, not at step 1, on a misspelt layer
            teacher.model.image_encoder.get_submodule(name), student.get_submodule(name)
        self.step = 0
        self.history: dict[str, list[float]] = {"step": [], **{t: [] for t in TERMS}}
        self.best: dict[str, Any] | None = None  # validation: {"score", "step", "state"} of the best student
        self.difficulty: torch.Tensor | None = None  # curriculum: the training images' last disagreement scores
        self._ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self._ddp = DistributedDataParallel(self.student, device_ids=[self.device.index]
                                                if self.device.type == "cuda" else None)
        if self.device.type == "cuda" and self.cfg.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    @property
    def num_quantizer_params(self) -> int:
        return sum(1 for g in self.groups if g["kind"] == "quant")

    # -- one step -------------------------------------------------------------------------------------
    def order(self, step: int) -> torch.Tensor:
        """Pool indices of step ``step``'s global batch: drawn from the training split only (uniformly, or by the
        curriculum's weights once the pool is scored)."""
        g = derived_generator(self.cfg.seed, step)
        if self.cfg.curriculum and self.difficulty is not None:
            pick = torch.multinomial(self.curriculum_weights(step), self.cfg.batch_size, replacement=True,
                                     generator=g)
        else:
            pick = torch.randint(len(self.train_idx), (self.cfg.batch_size,), generator=g)
        return self.train_idx[pick]

    def curriculum_weights(self, step: int) -> torch.Tensor:
        """Unnormalised draw weights of the training images at ``step``: exp(τ · z), z the standardised log
        disagreement, τ = curriculum · (2 step / steps − 1) (easy favoured first, hard last)."""
        log_d = self.difficulty.clamp_min(1e-12).log()
        z = (log_d - log_d.mean()) / log_d.std().clamp_min(1e-6) if len(log_d) > 1 else torch.zeros_like(log_d)
        tau = self.cfg.curriculum * (2 * step / max(1, self.cfg.steps) - 1)
        return torch.exp(tau * z - (tau * z).max())

    def score_difficulty(self) -> torch.Tensor:
        """The current student's ``disagreement`` on every training image, unaugmented with fixed boxes ->
        ``difficulty`` (rank 0's scores on every DDP rank)."""
        scores = self._from_rank0(self._disagreements(self.train_idx, CURRICULUM_SALT))
        self.difficulty = scores
        self.history.setdefault("curriculum_step", []).append(self.step)
        self.history.setdefault("curriculum_mean", []).append(float(scores.mean()))
        return scores

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of step ``step``'s global batch: (encoder inputs (b, 3, S, S), boxes (b, K', 4))."""
        cfg = self.cfg
        order = self.order(step)
        share = cfg.batch_size // self.world
        slots = range(self.rank * share, (self.rank + 1) * share)
        gens = [derived_generator(cfg.seed, step, slot) for slot in range(cfg.batch_size)]
        px = self.pixels[order]
        bx = self.boxes[order] if cfg.stored_boxes else self.boxes[order][:, :0]
        if cfg.augment:
            # mixup partners come from the whole global batch: draw on all of it, keep this rank's share
            px, bx = augment(px, bx, gens, cfg.mixup)
        px, bx = px[list(slots)], bx[list(slots)]
        if cfg.support:
            px = self._on_black(px, step, slots)
        if cfg.random_boxes:  # drawn for the global batch too: a DDP run sees the boxes of a one-process run
            extra = random_boxes(cfg.batch_size, cfg.random_boxes, self.size, derived_generator(cfg.seed, step, 10**6))
            bx = torch.cat([bx, extra[list(slots)]], dim=1)
        inputs = self._encoder_inputs(px)
        if cfg.letterbox:  # after normalisation: the padding is zero in input space, as preprocess_image pads
            inputs, bx = self._letterbox(inputs, bx, step, slots)
        return inputs.to(self.device), bx.to(self.device)

    def _encoder_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw [0, 1] pool pixels (B, 1 or 3, S, S) -> the encoder's normalised 3-channel input."""
        return self.teacher.spec.normalise(pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels)

    def _on_black(self, pixels: torch.Tensor, step: int, slots: range) -> torch.Tensor:
        """Raw pixels of this rank's slots, each with probability ``support`` on a black background
        (``data.inputs.on_black``, its ellipse drawn from (seed, step, slot))."""
        pixels = pixels.clone()
        for j, slot in enumerate(slots):
            g = derived_generator(self.cfg.seed, step, 3 * 10**6 + slot)
            if float(torch.rand(1, generator=g)) < self.cfg.support:
                index = int(torch.randint(2**31 - 1, (1,), generator=g))
                pixels[j] = torch.from_numpy(on_black(pixels[j].numpy(), index))
        return pixels

    def _letterbox(self, inputs: torch.Tensor, boxes: torch.Tensor, step: int, slots: range
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, boxes = inputs.clone(), boxes.clone()
        for j, slot in enumerate(slots):
            r = torch.rand(3, generator=derived_generator(self.cfg.seed, step, 2 * 10**6 + slot))
            if r[0] < self.cfg.letterbox:
                x, (ys, xs) = letterbox(inputs[j : j + 1].numpy(), 0.55 + 0.4 * float(r[1]), tall=bool(r[2] < 0.5))
                inputs[j] = torch.from_numpy(x[0])
                boxes[j] = boxes[j] * boxes.new_tensor([xs, ys, xs, ys])
        return inputs, boxes

    def losses(self, inputs: torch.Tensor, boxes: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, model = self.cfg, self.teacher.model
        layers = cfg.feature_layers if cfg.feature_weight > 0 else ()
        with torch.no_grad(), captured(model.image_encoder, layers) as t_feat:
            t_emb = model.encode(inputs)
            t_logits = model.decode(t_emb, boxes)[0] if cfg.mask_weight > 0 and boxes.shape[1] else None
        with captured(self.student, layers) as s_feat:
            s_emb = (self._ddp or self.student)(inputs)
        embed = relative_mse(s_emb, t_emb)
        mask = mask_kl(model.decode(s_emb, boxes)[0], t_logits) if t_logits is not None else embed.new_zeros(())
        term = attention_map_loss if cfg.feature_mode == "attention" else relative_mse
        feature = sum((term(s_feat[n], t_feat[n]) for n in layers), embed.new_zeros(()))
        total = cfg.embed_weight * embed + cfg.mask_weight * mask + cfg.feature_weight * feature
        return {"embed": embed, "mask": mask, "feature": feature, "total": total}

    def _lr_factor(self, step: int) -> float:
        cfg = self.cfg
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))

    # -- the validation split -------------------------------------------------------------------------
    def _fixed_inputs(self, idx: torch.Tensor, salt: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``idx`` of the pool as they are (no augmentation) with their stored boxes and, for the mask
        term, ``random_boxes`` boxes fixed per (seed, salt, image): the same inputs every time they are scored."""
        px, bx = self.pixels[idx], self.boxes[idx] if self.cfg.stored_boxes else self.boxes[idx][:, :0]
        if self.cfg.random_boxes:
            extra = torch.stack([random_boxes(1, self.cfg.random_boxes, self.size,
                                              derived_generator(self.cfg.seed, salt, int(i)))[0] for i in idx])
            bx = torch.cat([bx, extra], dim=1)
        return self._encoder_inputs(px).to(self.device), bx.to(self.device)

    @torch.no_grad()
    def _disagreements(self, idx: torch.Tensor, salt: int) -> torch.Tensor:
        """Per-image student-teacher ``disagreement`` of pool images ``idx``, unaugmented, boxes fixed by
        ``salt`` -> (len(idx),) float32 on the CPU."""
        return torch.cat([self.disagreement(*self._fixed_inputs(chunk, salt))[0].float().cpu()
                          for chunk in idx.split(self.chunk)])

    def _from_rank0(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (on the CPU) as rank 0 holds it, on every DDP rank; itself in a one-process run."""
        if self.world == 1:
            return tensor
        import torch.distributed as dist

        on_device = tensor.to(self.device)
        dist.broadcast(on_device, 0)
        return on_device.cpu()

    def validate(self) -> float:
        """Mean student-teacher ``disagreement`` on the held-out images, unaugmented."""
        return float(self._disagreements(self.val_idx, VAL_SALT).sum()) / len(self.val_idx)

    def _track_best(self) -> bool:
        """Score the validation split; keep the student if it is the best so far. False: stop (patience)."""
        score = self.validate()
        self.history.setdefault("val_step", []).append(self.step)
        self.history.setdefault("val", []).append(score)
        if self.best is None or score < self.best["score"]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.student.state_dict().items()}
            self.best = {"score": score, "step": self.step, "state": state}
        patience = self.cfg.patience
        return not patience or self.step - self.best["step"] < patience * self.cfg.validate_every

    # -- student-aware refresh of the pool -----------------------------------------------------------
    def disagreement(self, inputs: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-image student-teacher disagreement, embedding rel. MSE + mask KL on ``boxes`` -> (B,), and the
        teacher's mask logits on ``boxes`` (None without boxes)."""
        model = self.teacher.model
        t_emb, s_emb = model.encode(inputs), self.student(inputs)
        out = torch.stack([relative_mse(s[None], t[None]) for s, t in zip(s_emb, t_emb)])
        if not boxes.shape[1]:
            return out, None
        t_log, s_log = model.decode(t_emb, boxes)[0], model.decode(s_emb, boxes)[0]
        return out + torch.stack([mask_kl(s[None], t[None]) for s, t in zip(s_log, t_log)]), t_log

    def refresh(self, step: int) -> tuple[float, float]:
        """Re-optimise ``refresh_fraction`` of the training pool (chosen by (seed, step)) for ``refresh_iters``
        Adam steps on the raw pixels: maximise the student-teacher disagreement, while the teacher's masks on
        the stored boxes stay its own masks of the image before the refresh (DFQ-SAM's segmentation prior with
        SAM's predictions as labels) and the image gets no rougher than it was (TV bound). Gradients reach the
        pixels only. Returns the mean disagreement before and after."""
        cfg = self.cfg
        k = max(1, round(cfg.refresh_fraction * len(self.train_idx)))
        pick = self.train_idx[torch.randperm(len(self.train_idx), generator=derived_generator(cfg.seed, step,
                                                                                              REFRESH_SALT))[:k]]
        before = after = 0.0
        for chunk in pick.split(self.chunk):
            _, boxes = self._fixed_inputs(chunk, REFRESH_SALT + step)
            x = self.pixels[chunk].to(self.device).clone().requires_grad_(True)
            with torch.no_grad():
                rough0 = _roughness(x).clamp_min(1e-8)
            opt = torch.optim.Adam([x], lr=cfg.refresh_lr, betas=(0.5, 0.9))
            for it in range(cfg.refresh_iters + 1):
                dis, t_log = self.disagreement(self._encoder_inputs(x), boxes)
                if it == 0:  # the image before the refresh: its disagreement, and the teacher's masks to hold
                    before += float(dis.detach().sum())
                    t_log0 = t_log.detach() if t_log is not None else None
                if it == cfg.refresh_iters:
                    after += float(dis.detach().sum())
                    break
                prior = torch.relu(_roughness(x) / rough0 - 1).sum()
                if t_log0 is not None:
                    prior = prior + mask_kl(t_log, t_log0) * len(chunk)
                (grad,) = torch.autograd.grad(-dis.sum() + cfg.refresh_prior * prior, [x])
                x.grad = grad
                opt.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
            self.pixels[chunk] = x.detach().to(self.pixels.device)
        if self.world > 1:  # every rank trains on the same pool: rank 0's
            self.pixels.copy_(self._from_rank0(self.pixels))
        for key, value in (("refresh_step", step), ("refresh_before", before / k), ("refresh_after", after / k)):
            self.history.setdefault(key, []).append(value)
        return before / k, after / k

    def train_step(self) -> dict[str, float]:
        factor = self._lr_factor(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        inputs, boxes = self.batch(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        n, terms = len(inputs), {}
        for i in range(0, n, self.chunk):  # every term is a mean over images: chunks weighted by their share
            x, b = inputs[i : i + self.chunk], boxes[i : i + self.chunk]
            synced = i + self.chunk >= n or self._ddp is None  # DDP reduces the gradients on the last chunk only
            with contextlib.nullcontext() if synced else self._ddp.no_sync():
                part = self.losses(x, b)
                (part["total"] * (len(x) / n)).backward()
            for k in TERMS:
                terms[k] = terms.get(k, 0.0) + part[k].detach() * (len(x) / n)
        params = [p for g in self.groups for p in g["params"]]
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        if all(p.grad is None or torch.isfinite(p.grad).all() for p in params):
            self.optimizer.step()
        self.step += 1
        return {k: float(v) for k, v in terms.items()}

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        state = {"student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                 "history": self.history, "config": self.cfg.resume_key(), "extra": extra or {}, "best": self.best}
        if self.cfg.refresh_every:
            state["pixels"] = self.pixels  # the refreshed pool
        if self.difficulty is not None:
            state["difficulty"] = self.difficulty
        return state

    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        if self.rank:
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{CHECKPOINT}.tmp"
        torch.save(self.state(extra), tmp)
        os.replace(tmp, folder / CHECKPOINT)
        (folder / HISTORY).write_text(json.dumps(self.history))

    def load(self, folder: Path) -> bool:
        """Resume from ``folder/checkpoint.pt`` if there is one; refuse one made with other settings."""
        path = folder / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        mine = self.cfg.resume_key()
        made = {**DistillConfig().resume_key(), **state["config"]}  # a setting added since: its default then
        if made != mine:
            diff = sorted(k for k in {**made, **mine} if made.get(k) != mine.get(k))
            raise ValueError(f"{path} was made with other settings ({', '.join(diff)}); use another output folder "
                             f"or delete it")
        load_in_place(self.student, state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.history = int(state["step"]), state["history"]
        self.best = state.get("best")
        if "pixels" in state:
            self.pixels = state["pixels"].cpu()
        self.difficulty = state["difficulty"].cpu() if "difficulty" in state else None  # draws use CPU generators
        return True

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, out: str | Path | None = None, progress: bool = True, extra: dict[str, Any] | None = None
            ) -> DistillResult:
        """Train to ``config.steps`` (resuming from ``out`` when it holds a checkpoint); checkpoint every
        ``checkpoint_every`` steps and at the end."""
        cfg = self.cfg
        folder = Path(out) if out is not None else None
        if folder is not None:
            self.load(folder)
        resumed = self.step
        start = time.perf_counter()
        bar = _progress_bar(progress and self.rank == 0, cfg.steps, self.step)
        stopped = False
        with bar as update:
            while self.step < cfg.steps:
                if cfg.refresh_every and self.step and self.step % cfg.refresh_every == 0 and \
                        self.history.get("refresh_step", [None])[-1] != self.step:
                    self.refresh(self.step)
                if cfg.curriculum and self.step % cfg.curriculum_every == 0 and \
                        self.history.get("curriculum_step", [None])[-1] != self.step:
                    self.score_difficulty()
                if len(self.val_idx) and self.step % cfg.validate_every == 0 and \
                        self.history.get("val_step", [None])[-1] != self.step and not self._track_best():
                    stopped = True
                    break
                terms = self.train_step()
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.history["step"].append(self.step)
                    for k in TERMS:
                        self.history[k].append(terms[k])
                if folder is not None and (self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps):
                    self.save(folder, extra)
                update(terms)
        if len(self.val_idx):
            if not stopped and self.history.get("val_step", [None])[-1] != self.step:
                self._track_best()
            load_in_place(self.student, {k: v.to(self.device) for k, v in self.best["state"].items()})
            if folder is not None:
                self.save(folder, extra)
        best = self.best["step"] if self.best else None
        return DistillResult(self.step, time.perf_counter() - start, self.history, resumed, self.world, best, stopped)


def split_pool(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices of a pool of ``n`` images: ``round(fraction * n)`` (at least one when the
    fraction is > 0, at most n - 1) held out, chosen by ``seed``; with no validation, all of them train."""
    if not fraction:
        return torch.arange(n), torch.arange(0)
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 images; the pool has {n}")
    held = min(n - 1, max(1, round(fraction * n)))
    perm = torch.randperm(n, generator=derived_generator(seed, VAL_SALT))
    return perm[held:].sort().values, perm[:held].sort().values


def _roughness(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared neighbour difference of raw pixels (B, C, S, S) -> (B,)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).mean(1)
    return dx + dy


@contextlib.contextmanager
def captured(root: nn.Module, names: tuple[str, ...]):
    """``{name: output}`` of ``root``'s submodules ``names`` during the ``with`` block (hooks removed after)."""
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        return lambda _m, _a, out: outputs.__setitem__(name, out[0] if isinstance(out, tuple) else out)

    handles = [root.get_submodule(name).register_forward_hook(keep(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, done: int):
    if not enabled:
        yield lambda terms: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]distill"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[loss]}")) as bar:
        task = bar.add_task("distill", total=total, completed=done, loss="")
        yield lambda terms: bar.update(task, advance=1, loss=f"embed {terms['embed']:.4f} mask {terms['mask']:.4f}")


def loss_figure(history: dict[str, list[float]], path: str | Path, title: str = "distillation") -> Path:
    from .._plot import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k in TERMS:
        if history.get(k):
            ax.plot(history["step"], history[k], label=k)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    return save(fig, path)
