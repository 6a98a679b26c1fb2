"""Closed-form block compensation of a quantized image encoder, fitted on synthetic images only.

After calibration (and any reconstruction / distillation), each residual unit u of the student (input and output
of one shape: TinyViT's MBConv and attention blocks, SAM ViT's blocks) gets a correction fitted by ridge least
squares against the FP encoder, one unit after the other in execution order (later units see the corrected
earlier ones):

- ``linear`` (QwT's idea, "Quantization without Tears"): y' = y_q + x_q·Wᵀ + b, W (C×C) and b regress the unit's
  output error (FP unit on the FP input minus student unit on the student input) on the student's input x_q;
- ``channel`` (DFQ-ViT's activation correction): y' = a ⊙ y_q + b per channel, a and b regress the FP output on
  the student's, channel by channel.

Tokens (B, L, C) / (B, H, W, C) and feature maps (B, C, H, W) all work (``channel_dim``).

Units whose output shape differs from their input's (patch embedding, patch mergings, the neck: the last one's output
is the encoder's) are skipped unless ``CompensateConfig.reshaping``; then they get the correction from their own
output: ``linear`` y' = y_q + y_q·Wᵀ + b (W: C_out×C_out), ``channel`` as above (``output_channel_dim`` finds the
output's channel axis from its shape). Ridge: λ =
``ridge`` × (mean variance of the regressors), so the fit shrinks toward no correction (``linear``) or identity
(``channel``) as ``ridge`` grows (default 1: on LiteMedSAM W6A6 it gave the lower real-image errors of 0.1 and 1,
docs/notebook/2026-12-05.md §24). The corrections stay in float (``Compensated`` wraps the unit; a C×C matrix per
block: for LiteMedSAM 401k float parameters for ``linear``, 7 % of its encoder's 5.7M). A unit whose corrected error
on its fit inputs is not lower, or that has no error (a float unit), keeps no correction; if the corrections
together do not lower the encoder's output error on the fit inputs, none is kept (``CompensateResult.kept``). The
student pass takes all inputs as one batch (its activation memory grows with their number). Backend-free: the
student is any library's quantized encoder with the teacher's module tree (``backends/ov_compensate.py`` fits the
same corrections into an OpenVINO IR).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .losses import relative_mse
from .reconstruct import DEFAULT_UNITS, _unit_error, unit_names

MODES = ("linear", "channel")
EXACT = 1e-8  # a unit's relative error below this is float rounding (the unit is not quantized): no correction


def keeps(before: float, after: float) -> bool:
    """Whether a fitted correction stays: its unit has an error to correct and the correction lowers it on the fit
    inputs (a NaN never does)."""
    return before > EXACT and after < before


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"compensation mode must be one of {', '.join(MODES)}; got {mode!r}")


@dataclass
class CompensateConfig:
    mode: str = "linear"
    ridge: float = 1.0  # relative to the regressors' mean variance
    units: str = DEFAULT_UNITS
    batch_size: int = 8
    reshaping: bool = False  # also correct units whose output shape differs from their input's, from their output

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if self.ridge < 0 or self.batch_size < 1:
            raise ValueError(f"ridge >= 0 and batch_size >= 1 expected; got {self}")
        re.compile(self.units)


@dataclass
class CompensateResult:
    units: list[dict[str, Any]] = field(default_factory=list)  # name, before, after (or skipped)
    seconds: float = 0.0
    output_before: float = float("nan")
    output_after: float = float("nan")
    parameters: int = 0  # float parameters the corrections add
    config: dict[str, Any] = field(default_factory=dict)
    kept: bool = True  # False: the corrections together raised the encoder's output error, none was kept
    output_fitted: float = float("nan")  # the output error with every fitted correction in place

    def settle(self) -> bool:
        """Record ``output_after`` as ``output_fitted``; if the corrections did not lower the encoder's output
        error on the fit inputs (each lowered its own unit's, but later units of a student trained end to end may
        have learnt to offset earlier errors), mark them dropped. Returns whether they stay."""
        self.output_fitted = self.output_after
        if not keeps(self.output_before, self.output_after):
            self.kept, self.output_after, self.parameters = False, self.output_before, 0
        return self.kept

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def _channels_last(t: torch.Tensor, dim: int) -> torch.Tensor:
    """All positions as rows, channels (axis ``dim``) as columns."""
    t = t.movedim(dim, -1)
    return t.reshape(-1, t.shape[-1])


def channel_dim(unit: nn.Module, x: torch.Tensor | tuple[int, ...]) -> int:
    """The channel axis of ``unit``'s input (a tensor or its shape): tokens (B, L, C) and SAM ViT's (B, H, W, C) keep
    it last (their first layer is a LayerNorm / Linear); TinyViT's MBConv blocks take (B, C, H, W) (their first
    layer a convolution)."""
    if (x.ndim if torch.is_tensor(x) else len(x)) != 4:
        return -1
    first = next((m for m in unit.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.LayerNorm))),
                 None)
    return 1 if isinstance(first, (nn.Conv2d, nn.BatchNorm2d)) else -1


def output_channel_dim(shape: tuple[int, ...]) -> int | None:
    """The channel axis of a unit's output from its shape alone: last for tokens (B, L, C); for 4-d maps, the one of
    axes 1 and 3 that a square spatial grid leaves (B, C, H, H) → 1, (B, H, H, C) → -1; None if the shape does not
    tell (not square, or C = H)."""
    if len(shape) == 3:
        return -1
    if len(shape) != 4:
        return None
    n1, n2, n3 = shape[1:]
    if n2 == n3 and n1 != n2:
        return 1
    if n1 == n2 and n3 != n2:
        return -1
    return None


def correction_axis(unit: nn.Module, x_shape: tuple[int, ...] | None, y_shape: tuple[int, ...], reshaping: bool
                    ) -> tuple[int, bool] | str:
    """Where ``unit``'s correction acts: (channel axis, from the output?) — from the input for a unit that keeps the
    shape of its (3- or 4-d) input, from the output for one that changes it (``reshaping`` only) — or why it gets
    none. ``x_shape`` None: the input is not one tensor (or was not found in an IR)."""
    y_shape = tuple(y_shape)
    if x_shape is not None and tuple(x_shape) == y_shape and len(y_shape) in (3, 4):
        return channel_dim(unit, y_shape), False
    if not reshaping:
        return "input and output shapes differ" if x_shape is not None else "input not one tensor"
    dim = output_channel_dim(y_shape)
    return (dim, True) if dim is not None else f"no channel axis told by the output shape {y_shape}"


class Compensated(nn.Module):
    """``block`` plus a fitted float correction: ``weight`` (C, C) on the block's input (``linear``; on its output
    with ``on_output``, for blocks that change the shape) or (C,) a per-channel scale of its output (``channel``),
    and ``bias`` (C,). Zero weight and bias (linear) / unit scale and zero bias (channel) leave the block as it is."""

    def __init__(self, block: nn.Module, channels: int, mode: str, channel_dim: int, on_output: bool = False
                 ) -> None:
        super().__init__()
        _check_mode(mode)
        self.block, self.mode, self.channel_dim = block, mode, channel_dim
        self.on_output = on_output and mode == "linear"
        shape = (channels, channels) if mode == "linear" else (channels,)
        self.weight = nn.Parameter(torch.zeros(shape) if mode == "linear" else torch.ones(shape), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(channels), requires_grad=False)
        # in the state dict, so ``restore_wrappers`` finds the wrapper and its axis (a tensor, not extra state:
        # TorchScript's tracer, which the ONNX exports use, takes only tensors from a state dict)
        self.register_buffer("compensation_axis", torch.tensor(channel_dim))
        if self.on_output:  # only then (state dicts saved before this option load as they were)
            self.register_buffer("compensation_on_output", torch.tensor(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.correct(x, self.block(x))

    def correct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The corrected output, given the block's input ``x`` and output ``y``."""
        if self.mode == "linear":
            src = (y if self.on_output else x).movedim(self.channel_dim, -1)
            return y + (src @ self.weight.t() + self.bias).movedim(-1, self.channel_dim)
        view = [1] * y.ndim
        view[self.channel_dim] = -1
        return y * self.weight.view(view) + self.bias.view(view)


def wrap(encoder: nn.Module, name: str, channels: int, mode: str, channel_dim: int, on_output: bool = False
         ) -> Compensated:
    """Replace ``encoder``'s submodule ``name`` by a ``Compensated`` around it (identity correction)."""
    module = Compensated(encoder.get_submodule(name), channels, mode, channel_dim, on_output)
    encoder.set_submodule(name, module)
    return module


def restore_wrappers(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Before ``model.load_state_dict(state)`` of a compensated student: wrap every submodule whose
    ``compensation_axis`` buffer is in ``state`` (mode from its weight's shape). Returns the names."""
    names = [k[: -len(".compensation_axis")] for k in state if k.endswith(".compensation_axis")]
    for name in names:
        weight = state[f"{name}.weight"]
        wrap(model, name, weight.shape[0], "linear" if weight.ndim == 2 else "channel",
             int(state[f"{name}.compensation_axis"]), f"{name}.compensation_on_output" in state)
    return names


@torch.no_grad()
def unit_outputs(teacher: nn.Module, names: list[str], inputs: torch.Tensor, batch_size: int
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every unit's FP output (first call of a unit only) and the encoder's output over all ``inputs``, ``batch_size``
    at a time: the targets of a compensation, from one teacher pass."""
    got: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    calls = [0]

    def hook(name):
        def store(_m, _args, out):
            if len(got[name]) < calls[0]:
                got[name].append((out[0] if isinstance(out, tuple) else out).detach())
        return store

    outputs = []
    handles = [teacher.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        for chunk in inputs.split(batch_size):
            calls[0] += 1
            outputs.append(teacher(chunk))
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(outs) for name, outs in got.items()}, torch.cat(outputs)


@torch.no_grad()
def fit_correction(mode: str, x_q: torch.Tensor, y_q: torch.Tensor, target: torch.Tensor, ridge: float, dim: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the correction, in float64 normal equations over every token / pixel."""
    src = _channels_last(x_q if mode == "linear" else y_q, dim).double()
    resid = _channels_last(target - y_q if mode == "linear" else target, dim).double()
    mx, mr = src.mean(0), resid.mean(0)
    sx, sr = src - mx, resid - mr
    n = len(src)
    if mode == "linear":
        cov = sx.T @ sx / n
        lam = ridge * float(cov.diagonal().mean())
        eye = torch.eye(len(cov), dtype=cov.dtype, device=cov.device)
        w = torch.linalg.solve(cov + lam * eye, sx.T @ sr / n).T  # (C_out, C_in)
        return w.float(), (mr - w @ mx).float()
    var, cov = (sx * sx).mean(0), (sx * sr).mean(0)
    lam = ridge * float(var.mean())
    a = (cov + lam) / (var + lam)  # shrinks toward a = 1 (no correction) as lam grows
    return a.float(), (mr - a * mx).float()


class BlockCompensator:
    def __init__(self, teacher: nn.Module, student: nn.Module, inputs: torch.Tensor,
                 config: CompensateConfig | None = None, device: str | torch.device = "cpu") -> None:
        """``teacher`` / ``student``: FP and quantized image encoders with the same module tree; ``inputs``: encoder
        inputs (N, 3, S, S), synthetic. The student is changed in place (units wrapped in ``Compensated``).

        Cost: one chunked teacher forward (every unit's FP output and the encoder's output kept: the targets), one
        student forward of all N inputs at once in which each unit's correction is fitted and applied as the forward
        reaches it (later units see corrected inputs), and two chunked student forwards for the before / after
        output errors."""
        self.cfg = config or CompensateConfig()
        self.device = torch.device(device)
        if inputs.ndim != 4 or len(inputs) == 0:
            raise ValueError(f"inputs must be (N, 3, S, S) with N >= 1; got {tuple(inputs.shape)}")
        if any(p is q for p in student.parameters() for q in teacher.parameters()):
            raise ValueError("the student shares parameters with the teacher: pass a copy (copy.deepcopy)")
        self.inputs = inputs.float().to(self.device)
        self.teacher = teacher.to(self.device).eval()
        self.student = student.to(self.device).eval()
        self.names = unit_names(self.student, self.inputs[:1], self.cfg.units)

    def _fit_hook(self, name: str, target: torch.Tensor, entries: list[dict[str, Any]]):
        def hook(unit, args, out):
            if any(e["name"] == name for e in entries):  # a unit called twice: corrected at its first call
                return None
            x_q, y_q = args[0] if args else None, out[0] if isinstance(out, tuple) else out
            if not torch.is_tensor(y_q):
                entries.append({"name": name, "skipped": "output not one tensor"})
                return None
            axis = correction_axis(unit, x_q.shape if torch.is_tensor(x_q) else None, y_q.shape, self.cfg.reshaping)
            if isinstance(axis, str):
                entries.append({"name": name, "skipped": axis})
                return None
            dim, on_output = axis
            module = Compensated(unit, y_q.shape[dim], self.cfg.mode, dim, on_output).to(self.device)
            weight, bias = fit_correction(self.cfg.mode, y_q if on_output else x_q, y_q, target, self.cfg.ridge, dim)
            module.weight.copy_(weight)
            module.bias.copy_(bias)
            corrected = module.correct(x_q, y_q)
            before, after = float(relative_mse(y_q, target)), float(relative_mse(corrected, target))
            if not keeps(before, after):  # no error, or no gain (or NaN) on the fit inputs: no correction
                entries.append({"name": name, "before": before, "after": before, "fitted": after, "reverted": True})
                return None
            entries.append({"name": name, "before": before, "after": after})
            self.student.set_submodule(name, module)
            return (corrected, *out[1:]) if isinstance(out, tuple) else corrected

        return hook

    def run(self) -> CompensateResult:
        cfg = self.cfg
        result = CompensateResult(config=asdict(cfg))
        t0 = time.perf_counter()
        targets, output = unit_outputs(self.teacher, self.names, self.inputs, cfg.batch_size)
        result.output_before = _unit_error(self.student, self.inputs, output, cfg.batch_size)
        entries: list[dict[str, Any]] = []
        handles = [self.student.get_submodule(n).register_forward_hook(self._fit_hook(n, targets.pop(n), entries))
                   for n in self.names]
        try:
            with torch.no_grad():
                self.student(self.inputs)
        finally:
            for h in handles:
                h.remove()
        order = {n: i for i, n in enumerate(self.names)}
        result.units = sorted(entries, key=lambda e: order[e["name"]])
        result.output_after = _unit_error(self.student, self.inputs, output, cfg.batch_size)
        result.parameters = sum(m.weight.numel() + m.bias.numel() for m in self.student.modules()
                                if isinstance(m, Compensated))
        if not result.settle():
            for name, module in list(self.student.named_modules()):
                if isinstance(module, Compensated):
                    self.student.set_submodule(name, module.block)
        result.seconds = time.perf_counter() - t0
        return result
