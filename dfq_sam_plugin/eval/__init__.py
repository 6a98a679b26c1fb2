"""Real-data evaluation: benchmark sets, metrics, harness and figures."""

from .datasets import SET_NAMES, BenchmarkImage, BenchmarkSet, load_benchmark, mni_set, mni_volume, nuclei_set
from .harness import EvalReport, evaluate, per_prompt, predict_set
from .metrics import dice, iou, nsd

__all__ = ["SET_NAMES", "BenchmarkImage", "BenchmarkSet", "EvalReport", "dice", "evaluate", "iou",
           "load_benchmark", "mni_set", "mni_volume", "nsd", "nuclei_set", "per_prompt", "predict_set"]
