"""Closed-form block compensation of an OpenVINO encoder IR: ``distill/compensate.py``'s fit, as OpenVINO graph edits.

The IR (an INT8 PTQ encoder from ``nncf.quantize``, a distilled or a QCDQ one) runs pinned to f32 on the synthetic
fit inputs; each residual unit's output is found by the torch module name ``ov.convert_model`` gives its nodes
(``__module.layers.1.blocks.0/...``: the unit's last node in execution order), its input searched forward from the
previous unit's output (``unit_input``). Unit after unit, in execution order, the correction is fitted against the
FP torch encoder's unit output (``fit_correction``) and inserted as float nodes after the unit — ``linear``:
y + x·Wᵀ + b (MatMul on tokens, a 1×1 Convolution on feature maps); ``channel``: a ⊙ y + b — so the next unit is
fitted on the corrected IR, and the IR's own quantizers (FakeQuantize on the next unit's input) see the corrected
value. With ``reshaping``, units that change the shape (patch embedding, patch mergings, neck) get the correction
from their own output (``linear``: y + y·Wᵀ + b). A correction that does not lower its unit's error on the fit
inputs is not inserted; a unit without error (kept float by the recipe) is not fitted. If the corrections together
do not lower the IR's output error on the fit inputs (a distilled IR's later units learnt to offset the earlier
ones' errors), the IR comes back unchanged. Each unit's sub-model starts at the previous unit's output,
whose values the previous step kept (``_run_from``): one pass of each unit over the inputs, plus one for a
corrected unit's output.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from ..distill.compensate import (
    EXACT,
    CompensateConfig,
    Compensated,
    CompensateResult,
    correction_axis,
    fit_correction,
    keeps,
    unit_outputs,
)
from ..distill.losses import relative_mse
from ..distill.reconstruct import unit_names
from ..runtime.split import F32

_NOT_COMPUTE = ("Constant", "FakeQuantize", "Convert", "Result", "Parameter")


def _inside(unit: str):
    prefixes = (f"__module.{unit}/", f"__module.{unit}.")
    return lambda node: node.get_friendly_name().startswith(prefixes) and node.get_type_name() not in _NOT_COMPUTE


def unit_output(model, unit: str):
    """The output of ``model``'s last node (execution order) converted from torch module ``unit``."""
    inside = _inside(unit)
    nodes = [op for op in model.get_ordered_ops() if inside(op)]
    if not nodes:
        raise ValueError(f"no node of the IR was converted from encoder unit {unit!r} (node names "
                         f"'__module.{unit}/...' expected, as ov.convert_model writes them)")
    return nodes[-1].output(0)


def unit_input(start, unit: str, depth: int = 4):
    """The tensor ``unit`` reads, searched forward from ``start`` (the previous unit's output) through ops between
    units (SAM ViT adds its position embedding after the patch embedding): the first one a node of ``unit`` consumes,
    directly or through a quantizer (FakeQuantize / Convert). None if none is found within ``depth`` ops."""
    inside = _inside(unit)

    def consumers(port):
        return [t.get_node() for t in port.get_target_inputs()]

    frontier = [start]
    for _ in range(depth):
        following = []
        for port in frontier:
            for node in consumers(port):
                through = consumers(node.output(0)) if node.get_type_name() in ("FakeQuantize", "Convert") else []
                if inside(node) or any(inside(n) for n in through):
                    return port
                if node.get_type_name() not in ("Result", "FakeQuantize", "Convert") and node.get_output_size() == 1:
                    following.append(node.output(0))
        frontier = following
    return None


def _infer(compiled, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Every output of ``compiled`` over ``inputs`` (its one parameter), one image a request."""
    request = compiled.create_infer_request()
    got: list[list[np.ndarray]] = [[] for _ in compiled.outputs]
    for x in inputs.split(1):
        out = request.infer({0: x.numpy()})
        for k, g in enumerate(got):
            g.append(np.array(out[compiled.output(k)]))
    return [torch.from_numpy(np.concatenate(g)) for g in got]


def _run(core, model, ports: list, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The values of ``ports`` (outputs of ``model``'s nodes) over ``inputs``, one image a request, at f32: a model
    of the nodes they depend on only (the rest of the encoder does not run)."""
    import openvino as ov
    import openvino.opset13 as ops

    return _infer(core.compile_model(ov.Model([ops.result(p) for p in ports], model.get_parameters()), "CPU", F32),
                  inputs)


def _run_from(core, model, cut, values: torch.Tensor | None, ports: list, inputs: torch.Tensor
              ) -> list[torch.Tensor]:
    """``_run``, started at the tensor ``cut`` whose ``values`` over ``inputs`` are known (an earlier unit's output)
    instead of at the encoder's input: while the sub-model compiles, a parameter stands in for ``cut`` for its
    consumers, and the graph is restored right after. Each unit then runs once instead of once per later unit
    (the encoder's quantized units are slow on CPUs without VNNI). Where the ports also read a tensor upstream of
    ``cut``, or ``cut`` is None, the whole prefix runs from ``inputs``."""
    import openvino as ov
    import openvino.opset13 as ops

    if cut is None:
        return _run(core, model, ports, inputs)
    wanted = [k for k, p in enumerate(ports) if p != cut]
    if not wanted:
        return [values for _ in ports]
    consumers = list(cut.get_target_inputs())
    param = ops.parameter(cut.get_partial_shape(), cut.get_element_type())
    for c in consumers:
        c.replace_source_output(param.output(0))
    try:
        sub = ov.Model([ops.result(ports[k]) for k in wanted], [param])
        compiled = core.compile_model(sub, "CPU", F32)
    except RuntimeError:  # "undeclared parameters": the ports read more than cut
        compiled = None
    finally:
        for c in consumers:
            c.replace_source_output(cut)
    if compiled is None:
        return _run(core, model, ports, inputs)
    got = dict(zip(wanted, _infer(compiled, values)))
    return [got.get(k, values) for k in range(len(ports))]


def _output(core, model, inputs: torch.Tensor) -> torch.Tensor:
    return _run(core, model, [model.get_results()[0].input_value(0)], inputs)[0]


def _insert(x_port, y_port, module: Compensated, unit: str):
    """Float nodes computing ``module.correct(x, y)`` after ``y_port``; every consumer of ``y_port`` reads them."""
    import openvino.opset13 as ops

    consumers = list(y_port.get_target_inputs())
    ndim, dim = len(y_port.get_partial_shape()), module.channel_dim % len(y_port.get_partial_shape())
    view = [1] * ndim
    view[dim] = -1
    weight, bias = module.weight.detach().numpy(), module.bias.detach().numpy().reshape(view)
    if module.mode == "linear":
        if dim == ndim - 1:
            delta = ops.matmul(x_port, ops.constant(weight), False, True)
        elif dim == 1 and ndim == 4:
            delta = ops.convolution(x_port, ops.constant(weight[:, :, None, None]), [1, 1], [0, 0], [0, 0], [1, 1])
        else:
            raise ValueError(f"unit {unit!r}: channels on axis {dim} of a rank-{ndim} tensor are not supported")
        out = ops.add(y_port, ops.add(delta, ops.constant(bias)))
    else:
        out = ops.add(ops.multiply(y_port, ops.constant(weight.reshape(view))), ops.constant(bias))
    out.set_friendly_name(f"dfq_compensate/{unit}")
    for c in consumers:
        c.replace_source_output(out.output(0))
    return out.output(0)


def compensate_ir(model, teacher: nn.Module, inputs, config: CompensateConfig | None = None
                  ) -> tuple[Any, CompensateResult]:
    """(compensated copy of the encoder IR ``model``, result). ``teacher``: the FP torch image encoder the IR was
    converted from (same module names); ``inputs``: (N, 3, S, S) synthetic encoder inputs (a tensor or a list of
    (1, 3, S, S) arrays). ``model`` itself is not changed; it is what
    comes back when the corrections together do not lower its output error on the fit inputs (``result.kept``)."""
    import openvino as ov

    cfg = config or CompensateConfig()
    x = torch.cat([torch.as_tensor(np.asarray(a)) for a in inputs]) if isinstance(inputs, (list, tuple)) \
        else torch.as_tensor(inputs)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"inputs must be (N, 3, S, S) with N >= 1; got {tuple(x.shape)}")
    x = x.float()
    result = CompensateResult(config={**asdict(cfg), "backend": "openvino"})
    t0 = time.perf_counter()
    teacher = teacher.eval()
    names = unit_names(teacher, x[:1], cfg.units)
    targets, output = unit_outputs(teacher, names, x, cfg.batch_size)
    original, model, core = model, model.clone(), ov.Core()
    ports = {name: unit_output(model, name) for name in names}
    result.output_before = float(relative_mse(_output(core, model, x), output))
    previous = None
    cut, carried = None, None  # the tensor the next unit's sub-model starts from, and its values over x
    for name in names:
        target = targets.pop(name)
        x_port = unit_input(ports[previous], name) if previous else None
        y_port, previous = ports[name], name
        y_shape = tuple(y_port.get_partial_shape().to_shape())
        if y_shape != (1, *target.shape[1:]):
            raise ValueError(f"IR node {y_port.get_node().get_friendly_name()!r} has shape "
                             f"{y_port.get_partial_shape()}, the torch unit {name!r} outputs {tuple(target.shape)}")
        x_shape = None if x_port is None else tuple(x_port.get_partial_shape().to_shape())
        axis = correction_axis(teacher.get_submodule(name), x_shape, y_shape, cfg.reshaping)
        if isinstance(axis, str):
            result.units.append({"name": name, "skipped": axis})
            continue
        dim, on_output = axis
        if on_output:
            (y_q,) = _run_from(core, model, cut, carried, [y_port], x)
            x_port, x_q = y_port, y_q
        else:
            x_q, y_q = _run_from(core, model, cut, carried, [x_port, y_port], x)
        before = float(relative_mse(y_q, target))
        previous_cut, previous_values = cut, carried
        cut, carried = y_port, y_q  # unless a correction is inserted after it (below)
        if before <= EXACT:  # a float unit (the recipe's ignored_modules): nothing to correct, no fit
            result.units.append({"name": name, "before": before, "skipped": "no quantization error"})
            continue
        module = Compensated(nn.Identity(), y_q.shape[dim], cfg.mode, dim, on_output)
        weight, bias = fit_correction(cfg.mode, x_q, y_q, target, cfg.ridge, dim)
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.copy_(bias)
            after = float(relative_mse(module.correct(x_q, y_q), target))
        if not keeps(before, after):
            result.units.append({"name": name, "before": before, "after": before, "fitted": after, "reverted": True})
            continue
        result.units.append({"name": name, "before": before, "after": after})
        ports[name] = _insert(x_port, y_port, module, name)
        result.parameters += module.weight.numel() + module.bias.numel()
        # the corrected output as the IR computes it (f32 nodes), the next unit's start
        cut = ports[name]
        (carried,) = _run_from(core, model, previous_cut, previous_values, [cut], x)
    model.validate_nodes_and_infer_types()
    (final,) = _run_from(core, model, cut, carried, [model.get_results()[0].input_value(0)], x)
    result.output_after = float(relative_mse(final, output))
    result.seconds = time.perf_counter() - t0
    return (model if result.settle() else original), result
