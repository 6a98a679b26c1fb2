"""dfq-sam-plugin: data-free quantization of the Segment Anything Model for NNCF, Brevitas and OpenVINO.

``from dfq_sam_plugin import load_sam, synthesize, DFQSAMDataset, quantize`` — see README.md. Exports are imported lazily so
that the OpenVINO-only runtime (``dfq_sam_plugin.runtime.OVSamPredictor``) never imports torch.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "load_sam": ".models.registry",
    "SamBundle": ".models.spec",
    "SamSpec": ".models.spec",
    "DFQSAMDataset": ".data.dataset",
    "synthesize": ".synthesis.api",
    "SamBoxPredictor": ".runtime.predictor",
    "OVSamPredictor": ".runtime.predictor",
    "quantize": ".api",
    "load_quantized": ".api",
    "QuantizationResult": ".result",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
