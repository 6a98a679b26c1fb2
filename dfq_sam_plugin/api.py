"""One entry point over both backends: ``dfq_sam_plugin.quantize(sam, calib, recipe="auto")``.

The recipe's ``backend`` key chooses the flow — ``openvino``: reparameterize, ``ov.convert_model``,
``nncf.quantize`` (or NNCF's torch backend + distillation) → OpenVINO IRs; ``brevitas``: reparameterize, Brevitas
quantizers, ``calibration_mode`` (then GPTQ / reconstruction / distillation as the recipe says). Both return a
``QuantizationResult`` (``save``, ``summary``); ``load_quantized`` reads a saved one back. The backends' own
``quantize_sam`` functions stay for their users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .result import BREVITAS_STATE_DICT, QuantizationResult


def quantize(sam, calib, recipe: str | Path | dict[str, Any] = "auto", *, device: str = "cpu",
             work_dir: str | Path | None = None, progress: bool = False) -> QuantizationResult:
    """Quantize ``sam`` (a ``SamBundle`` from ``load_sam``) with the calibration set ``calib`` (a
    ``DFQSAMDataset``) and ``recipe``: a packaged recipe's name, a YAML path, a dict, or ``"auto"`` (the OpenVINO
    recipe for this CPU's class). ``device`` is the torch device of training recipes (distillation,
    reconstruction; Brevitas calibration too), ``work_dir`` holds their resumable checkpoints, ``progress`` shows
    their progress bars."""
    from .recipes import as_recipe, load_recipe

    recipe = as_recipe(recipe) if isinstance(recipe, dict) else load_recipe(recipe)  # validated once, here
    if recipe.backend == "openvino":
        from .backends.nncf import quantize_sam

        return quantize_sam(sam, calib, recipe, device=device, work_dir=work_dir, progress=progress)
    from .backends.brevitas import quantize_sam

    return quantize_sam(sam, calib, recipe, device=device, work_dir=work_dir, train_progress=progress)


def load_quantized(folder: str | Path, sam) -> QuantizationResult:
    """A saved result back: a Brevitas folder (state dict + recipe) or an OpenVINO export (``manifest.json``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (expected a folder written by quantize(...).save)")
    if (folder / BREVITAS_STATE_DICT).exists():
        from .backends.brevitas import load_quantized as load_brevitas

        return load_brevitas(folder, sam)
    from .backends.nncf import QuantizedSam

    return QuantizedSam.load(folder, sam)
