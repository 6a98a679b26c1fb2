"""The calibration set: ``DFQSAMDataset`` (an ``nncf.Dataset`` persisted as a Hugging Face dataset)."""

from .._lazy import lazy_exports

_EXPORTS = {"DFQSAMDataset": ".dataset", "CalibrationSetError": ".dataset"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
