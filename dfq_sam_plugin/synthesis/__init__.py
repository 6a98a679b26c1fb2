"""DFQ-SAM data synthesis (backend-free torch): labels, losses, attention hooks, the optimisation loop."""

from .._lazy import lazy_exports

_EXPORTS = {"SynthesisConfig": ".config", "METHODS": ".config", "Synthesizer": ".engine", "synthesize": ".api"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
