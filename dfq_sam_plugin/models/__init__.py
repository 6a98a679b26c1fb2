"""The SAM family behind one interface: ``load_sam(name, checkpoint=None) -> SamBundle``."""

from .._lazy import lazy_exports

_EXPORTS = {
    "CheckpointError": ".checkpoint",
    "MODEL_NAMES": ".spec",
    "load_sam": ".registry",
    "SamDecoder": ".sam_model",
    "SamModel": ".sam_model",
    "SamBundle": ".spec",
    "SamSpec": ".spec",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
