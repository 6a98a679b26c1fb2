"""Box-prompt predictors: ``SamBoxPredictor`` (torch) and ``OVSamPredictor`` (OpenVINO, no torch)."""

from .._lazy import lazy_exports

_EXPORTS = {"BoxPredictor": ".predictor", "SamBoxPredictor": ".predictor", "OVSamPredictor": ".predictor"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
