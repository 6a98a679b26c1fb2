"""Block-wise reconstruction (BRECQ / QDrop style) of a quantized image encoder against the FP one, on synthetic
images only.

Backend-free like the distillation loop: the student is the quantized encoder (any library's quantizers), the
teacher the FP encoder with the same module tree (reparameterization and quantizer insertion keep it). Units —
TinyViT's MBConv / attention blocks and patch mergings, SAM ViT's blocks, patch embedding and neck — are
reconstructed one after the other in execution order. For unit u:

- its inputs are taken from the *student* (earlier units already reconstructed and quantized), its target is the
  FP unit's output on the FP input (``teacher(x_fp)``), so each unit also learns to undo the error it receives;
- QDrop: during training each element of the unit's input and of every activation-quantizer output inside it
  keeps its float value with probability ``drop`` (``act_quant_points(unit)`` names the quantizers: a module whose
  output, or the first item of its output tuple, is the fake-quantized version of its first input);
- the unit's float parameters learn (weights through the quantizers' straight-through estimator, at
  ``lr_weights``); quantizer parameters (``is_quantizer``: activation step sizes, zero points, learned weight
  scales) at ``lr_quant`` times their own magnitude, like ``Distiller``;
- loss: relative MSE of the unit's output, per image, on batches of ``batch_size`` stored inputs; with
  ``decoder_weight`` > 0 (CAR-SAM's idea: what matters is the mask), plus ``decoder_weight`` times the per-pixel
  mask KL (``mask_kl``) between the FP mask decoder's logits for ``decoder_boxes`` random boxes per image on two
  embeddings: the FP encoder's, and the FP encoder's with unit u's output replaced by the student unit's (the rest
  of the encoder stays float, so the term sees how u's error reaches the masks). Zero for an unquantized student.

The per-unit output error before and after (no drop, student inputs) is reported: where the error is left (with the
decoder term, also its value before / after on fixed boxes). A unit whose objective did not go down is put back as
calibrated (``reverted``).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .augment import random_boxes
from .engine import load_in_place, param_groups
from .losses import mask_kl, relative_mse

# TinyViT (LiteMedSAM, MobileSAM): patch_embed, layers.i.blocks.j, layers.i.downsample, neck; SAM ViT: blocks.i
DEFAULT_UNITS = r"^(patch_embed|neck|layers\.\d+\.blocks\.\d+|layers\.\d+\.downsample|blocks\.\d+)$"


@dataclass
class ReconstructConfig:
    iters: int = 500  # per unit
    batch_size: int = 8
    lr_weights: float = 1e-5
    lr_quant: float = 1e-3
    drop: float = 0.5  # QDrop: probability that an activation element skips its quantizer while training
    units: str = DEFAULT_UNITS  # regex (re.fullmatch after the anchors) of the encoder submodules reconstructed
    grad_clip: float = 1.0
    seed: int = 0
    decoder_weight: float = 0.0  # weight of the mask KL through the FP rest of the encoder and the FP decoder
    decoder_boxes: int = 4  # random boxes per image for that term

    def __post_init__(self) -> None:
        if self.iters < 0 or self.batch_size < 1 or not 0 <= self.drop <= 1:
            raise ValueError(f"iters >= 0, batch_size >= 1 and 0 <= drop <= 1 expected; got {self}")
        if self.decoder_weight < 0 or self.decoder_boxes < 1:
            raise ValueError(f"decoder_weight >= 0 and decoder_boxes >= 1 expected; got {self}")
        re.compile(self.units)


@dataclass
class ReconstructResult:
    units: list[dict[str, Any]] = field(default_factory=list)  # name, before, after, seconds (or skipped)
    seconds: float = 0.0
    output_before: float = float("nan")  # relative MSE of the encoder output over the inputs
    output_after: float = float("nan")
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


class _Stop(Exception):
    """Raised by a capture hook once the unit of interest has run: the rest of the forward is skipped."""


def unit_names(encoder: nn.Module, example: torch.Tensor, pattern: str = DEFAULT_UNITS) -> list[str]:
    """Names of ``encoder``'s submodules matching ``pattern``, in the order one forward of ``example`` runs them."""
    regex = re.compile(pattern)
    order: list[str] = []
    handles = [m.register_forward_pre_hook(lambda _m, _a, name=name: order.append(name))
               for name, m in encoder.named_modules() if name and regex.search(name)]
    try:
        with torch.no_grad():
            encoder(example)
    finally:
        for h in handles:
            h.remove()
    seen: list[str] = []
    for name in order:  # a unit called twice (weight sharing) is reconstructed once, at its first call
        if name not in seen:
            seen.append(name)
    if not seen:
        raise ValueError(f"no submodule of the encoder matches the reconstruction units {pattern!r}")
    return seen


@torch.no_grad()
def capture(encoder: nn.Module, name: str, inputs: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, outputs) of ``encoder``'s submodule ``name`` over the encoder inputs, ``batch`` at a time; the
    forward stops once that unit has run."""
    unit = encoder.get_submodule(name)
    got: dict[str, torch.Tensor] = {}

    def hook(_m, args, out):
        if len(args) != 1 or not torch.is_tensor(args[0]):
            raise TypeError(f"reconstruction unit {name!r} must take one tensor argument")
        got["in"], got["out"] = args[0].detach(), (out[0] if isinstance(out, tuple) else out).detach()
        raise _Stop

    ins, outs = [], []
    handle = unit.register_forward_hook(hook)
    try:
        for chunk in inputs.split(batch):
            try:
                encoder(chunk)
            except _Stop:
                pass
            ins.append(got.pop("in"))
            outs.append(got.pop("out"))
    finally:
        handle.remove()
    return torch.cat(ins), torch.cat(outs)


def _mix(quantized: torch.Tensor, float_: torch.Tensor, drop: float, gen: torch.Generator) -> torch.Tensor:
    keep_float = torch.rand(quantized.shape, generator=gen, device=quantized.device) < drop
    return torch.where(keep_float, float_.to(quantized.dtype), quantized)


def _drop_hook(drop: float, gen: torch.Generator):
    def hook(_m, args, out):
        y = out[0] if isinstance(out, tuple) else out
        x = args[0] if args else None
        if not (torch.is_tensor(x) and torch.is_tensor(y)) or x.shape != y.shape:
            return None
        mixed = _mix(y, x, drop, gen)
        return (mixed, *out[1:]) if isinstance(out, tuple) else mixed

    return hook


@torch.no_grad()
def _unit_error(unit: nn.Module, x: torch.Tensor, target: torch.Tensor, batch: int) -> float:
    total = sum(float(relative_mse(unit(xb), tb)) * len(xb) for xb, tb in zip(x.split(batch), target.split(batch)))
    return total / len(x)


@torch.no_grad()
def output_error(teacher: nn.Module, student: nn.Module, inputs: torch.Tensor, batch: int) -> float:
    """Relative MSE of the student encoder's output against the teacher's, averaged over ``inputs``."""
    return _unit_error(student, inputs, torch.cat([teacher(xb) for xb in inputs.split(batch)]), batch)


class BlockReconstructor:
    def __init__(self, teacher: nn.Module, student: nn.Module, inputs: torch.Tensor | Iterable[torch.Tensor],
                 config: ReconstructConfig | None = None,
                 is_quantizer: Callable[[nn.Module], bool] = lambda m: False,
                 act_quant_points: Callable[[nn.Module], list[nn.Module]] = lambda m: [],
                 device: str | torch.device = "cpu",
                 decoder: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        """``teacher`` / ``student``: FP and quantized image encoders with the same module tree; ``inputs``: encoder
        inputs (N, 3, S, S) (normalised synthetic images, e.g. ``data.inputs.encoder_inputs``); ``decoder``: the FP
        prompt encoder + mask decoder, (embeddings (B, C, h, w), boxes (B, K, 4)) -> mask logits, on ``device``
        (needed when ``decoder_weight`` > 0; e.g. ``lambda e, b: sam.model.decode(e, b)[0]``)."""
        self.cfg = config or ReconstructConfig()
        self.device = torch.device(device)
        self.inputs = (inputs if torch.is_tensor(inputs) else torch.cat([torch.as_tensor(x) for x in inputs]))
        if self.inputs.ndim != 4 or len(self.inputs) == 0:
            raise ValueError(f"inputs must be (N, 3, S, S) with N >= 1; got {tuple(self.inputs.shape)}")
        self.inputs = self.inputs.float().to(self.device)
        if any(p is q for p in student.parameters() for q in teacher.parameters()):
            raise ValueError("the student shares parameters with the teacher: pass a copy (copy.deepcopy)")
        self.teacher = teacher.to(self.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.student = student.to(self.device).eval()  # eval: BatchNorm statistics stay; parameters still learn
        self.is_quantizer, self.act_quant_points = is_quantizer, act_quant_points
        self.names = unit_names(self.student, self.inputs[:1], self.cfg.units)
        self.decoder = decoder
        if self.cfg.decoder_weight > 0:
            if decoder is None:
                raise ValueError("decoder_weight > 0 needs the FP decoder (decoder=...)")
            with torch.no_grad():  # the FP embeddings, once: the decoder term's targets
                self._t_emb = torch.cat([self.teacher(xb) for xb in self.inputs.split(self.cfg.batch_size)])
            # fixed boxes for the before / after objective, fresh ones each training iteration
            self._eval_boxes = self._boxes(len(self.inputs), torch.Generator().manual_seed(self.cfg.seed))

    def _boxes(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return random_boxes(n, self.cfg.decoder_boxes, self.inputs.shape[-1], gen).to(self.device)

    def decoder_loss(self, name: str, idx: torch.Tensor, unit_out: torch.Tensor, boxes: torch.Tensor
                     ) -> torch.Tensor:
        """Mask KL, for ``boxes`` (len(idx), K, 4), between the FP decoder's logits on the FP embeddings of inputs
        ``idx`` and on the FP encoder's embeddings with unit ``name``'s output replaced by ``unit_out`` (the student
        unit's, differentiable)."""
        def replace(_m, _args, out):
            return (unit_out, *out[1:]) if isinstance(out, tuple) else unit_out

        handle = self.teacher.get_submodule(name).register_forward_hook(replace)
        try:
            emb = self.teacher(self.inputs[idx])
        finally:
            handle.remove()
        with torch.no_grad():
            target = self.decoder(self._t_emb[idx], boxes)
        return mask_kl(self.decoder(emb, boxes), target)

    @torch.no_grad()
    def _decoder_error(self, name: str, unit: nn.Module, x_q: torch.Tensor) -> float:
        batch, total = self.cfg.batch_size, 0.0
        for idx in torch.arange(len(x_q), device=self.device).split(batch):
            out = unit(x_q[idx])
            total += float(self.decoder_loss(name, idx, out[0] if isinstance(out, tuple) else out,
                                             self._eval_boxes[idx])) * len(idx)
        return total / len(x_q)

    def _has_quantizers(self, unit: nn.Module) -> bool:
        return any(self.is_quantizer(m) for m in unit.modules()) or bool(self.act_quant_points(unit))

    def reconstruct(self, name: str) -> dict[str, Any]:
        """Reconstruct one unit; returns {name, before, after, seconds}."""
        cfg, batch = self.cfg, self.cfg.batch_size
        unit = self.student.get_submodule(name)
        if not self._has_quantizers(unit):
            return {"name": name, "skipped": "no quantizers"}
        t0 = time.perf_counter()
        x_fp, target = capture(self.teacher, name, self.inputs, batch)
        x_q, _ = capture(self.student, name, self.inputs, batch)
        before = _unit_error(unit, x_q, target, batch)
        w = cfg.decoder_weight
        dec_before = self._decoder_error(name, unit, x_q) if w > 0 else 0.0
        snapshot = {k: v.detach().clone() for k, v in unit.state_dict().items()}
        for p in unit.parameters():
            p.requires_grad_(p.is_floating_point())
        groups = param_groups(unit, self.is_quantizer, cfg.lr_weights, cfg.lr_quant)
        optimizer = torch.optim.Adam(groups)
        gen = torch.Generator(self.device).manual_seed(cfg.seed + _seed_offset(name))
        cpu_gen = torch.Generator().manual_seed(cfg.seed + _seed_offset(name))
        handles = [m.register_forward_hook(_drop_hook(cfg.drop, gen)) for m in self.act_quant_points(unit)]
        params = [p for g in groups for p in g["params"]]
        try:
            for it in range(cfg.iters):
                factor = 0.5 * (1 + math.cos(math.pi * it / max(1, cfg.iters)))
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                idx = torch.randint(len(x_q), (min(batch, len(x_q)),), generator=cpu_gen).to(self.device)
                xb = _mix(x_q[idx], x_fp[idx], cfg.drop, gen)
                out = unit(xb)
                out = out[0] if isinstance(out, tuple) else out
                loss = relative_mse(out, target[idx])
                if w > 0:
                    loss = loss + w * self.decoder_loss(name, idx, out, self._boxes(len(idx), cpu_gen))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                if all(p.grad is None or torch.isfinite(p.grad).all() for p in params):
                    optimizer.step()
        finally:
            for h in handles:
                h.remove()
            for p in unit.parameters():
                p.requires_grad_(False)
                p.grad = None
        after = _unit_error(unit, x_q, target, batch)
        entry = {"name": name, "before": before, "after": after}
        dec_after = self._decoder_error(name, unit, x_q) if w > 0 else 0.0
        if w > 0:
            entry.update(decoder_before=dec_before, decoder_after=dec_after)
        if not after + w * dec_after <= before + w * dec_before:  # worse (or NaN) on its inputs: keep the calibrated unit
            load_in_place(unit, snapshot)
            entry.update(after=before, trained=after, reverted=True)
            if w > 0:
                entry.update(decoder_after=dec_before, decoder_trained=dec_after)
        entry["seconds"] = time.perf_counter() - t0
        return entry

    def run(self, progress: bool = True) -> ReconstructResult:
        cfg = self.cfg
        result = ReconstructResult(config=asdict(cfg))
        t0 = time.perf_counter()
        result.output_before = output_error(self.teacher, self.student, self.inputs, cfg.batch_size)
        with _progress(progress, len(self.names)) as advance:
            for name in self.names:
                result.units.append(self.reconstruct(name))
                advance(result.units[-1])
        result.output_after = output_error(self.teacher, self.student, self.inputs, cfg.batch_size)
        result.seconds = time.perf_counter() - t0
        for p in self.student.parameters():
            p.requires_grad_(False)
        return result


def _seed_offset(name: str) -> int:
    """A stable (process-independent) small integer per unit name."""
    return zlib.crc32(name.encode()) % 10**6


@contextlib.contextmanager
def _progress(enabled: bool, total: int):
    if not enabled:
        yield lambda entry: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]reconstruct"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[last]}")) as bar:
        task = bar.add_task("reconstruct", total=total, last="")
        yield lambda e: bar.update(task, advance=1, last=f"{e['name']} {e['before']:.4f} -> {e['after']:.4f}"
                                   if "after" in e else f"{e['name']} skipped")


def reconstruction_figure(result: ReconstructResult, path, title: str = "block reconstruction"):
    """Per-unit relative output error before/after reconstruction (log scale), in execution order."""
    from .._plot import pyplot, save

    rows = [u for u in result.units if "after" in u]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows)), 3.5))
    xs = range(len(rows))
    ax.plot(xs, [u["before"] for u in rows], "o-", label="calibrated")
    ax.plot(xs, [u["after"] for u in rows], "o-", label="reconstructed")
    ax.set_xticks(list(xs), [u["name"] for u in rows], rotation=70, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("unit output rel. MSE")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save(fig, path)
