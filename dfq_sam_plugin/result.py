"""What every quantization flow returns: one result type, whichever backend made it.

``QuantizationResult`` is the backend-free contract (``backend``, ``recipe``, ``calibration``, ``report``,
``save(folder)``, ``summary()``); ``backends.nncf.QuantizedSam`` (OpenVINO IRs) and
``backends.brevitas.BrevitasQuantizedSam`` (a fake-quantized torch SAM) implement it, and
``dfq_sam_plugin.load_quantized(folder, sam)`` reads either back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BREVITAS_STATE_DICT = "quantized_state_dict.pt"  # the file that marks a saved Brevitas result


class QuantizationResult:
    """Base of the backends' results (the dataclass fields ``recipe``, ``calibration`` and ``report`` come from
    the subclass). ``backend`` is the recipe's backend key: ``openvino`` or ``brevitas``."""

    recipe: dict[str, Any]
    calibration: dict[str, Any]
    report: dict[str, Any]

    @property
    def backend(self) -> str:
        return self.recipe["backend"]

    def save(self, folder: str | Path) -> Path:  # pragma: no cover - implemented by every backend
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """Recipe, calibration provenance and the backend's report, JSON-ready (what ``dfq-sam quantize`` prints)."""
        return {"backend": self.backend, "recipe": self.recipe.get("name", "custom"),
                "calibration": dict(self.calibration), "report": dict(self.report)}
