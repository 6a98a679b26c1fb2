"""Data-free quantization-aware distillation (docs/architecture.md#distillation-and-reconstruction): a quantized student image encoder learns the FP
SAM on synthetic images only. Backend-free: nothing here imports NNCF, Brevitas or OpenVINO; the adapters in
``backends/`` build the student and export it."""

from .config import DistillConfig
from .engine import Distiller, DistillResult, loss_figure

__all__ = ["DistillConfig", "Distiller", "DistillResult", "loss_figure"]
