"""Does a quantized encoder learn the synthetic images or the task? Its output error on held-out synthetic images
against its error on real ones: the *generalisation ratio* (docs/RESULTS.md, issue 34).

For each input, the relative squared error of the student's image embedding against the FP32 torch encoder's,
``||s - t||² / ||t||²``. ``generalisation_ratio`` = mean error on the real sets / mean error on synthetic images
that neither calibration nor training saw. A student that learned what real images need has a ratio near 1; one
that fitted its synthetic pool has a ratio well above it (measured 2.6-5.5 before issue 34).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np


def real_encoder_inputs(bsets, spec) -> list[np.ndarray]:
    """(1, 3, S, S) encoder inputs of every image of the benchmark sets, preprocessed as the predictors do."""
    from ..models.preprocess import preprocess_image, validate_image

    return [preprocess_image(validate_image(item.image), spec)[0] for bset in bsets for item in bset.images]


def torch_embed(module, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A torch encoder (FP or a student) as ``embed`` / ``reference``: numpy input, run on ``device``, float32 numpy
    output (the caller chooses the grad mode)."""
    import torch

    return lambda x: module(torch.from_numpy(x).to(device)).float().cpu().numpy()


def fp32_reference(encoder, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """The FP32 torch ``encoder`` as the reference of :func:`generalisation`: each input's embedding computed once,
    on ``device``, and kept for the next student scored on the same input array (keyed by the array's identity; the
    array is held with its embedding, so an identity is never reused for another input)."""
    import torch

    embed = torch_embed(encoder, device)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def reference(x: np.ndarray) -> np.ndarray:
        if id(x) not in cache:
            with torch.no_grad():
                cache[id(x)] = (x, embed(x))
        return cache[id(x)][1]

    return reference


def relative_errors(embed: Callable[[np.ndarray], np.ndarray], reference: Callable[[np.ndarray], np.ndarray],
                    inputs: Iterable[np.ndarray]) -> np.ndarray:
    """Per-input ``||embed(x) - reference(x)||² / ||reference(x)||²`` (float64)."""
    out = []
    for x in inputs:
        s = np.asarray(embed(x), np.float64).ravel()
        t = np.asarray(reference(x), np.float64).ravel()
        out.append(float(((s - t) ** 2).sum() / max((t**2).sum(), 1e-12)))
    return np.asarray(out)


@dataclass
class Generalisation:
    synthetic: float  # mean relative error on held-out synthetic inputs
    real: dict[str, float]  # per real set
    ratio: float  # mean over the real sets / synthetic

    def to_dict(self) -> dict:
        return asdict(self)


def generalisation(embed, reference, synthetic_inputs, real_inputs: dict[str, list[np.ndarray]]) -> Generalisation:
    """The student ``embed`` against ``reference`` on held-out synthetic inputs and on each real set."""
    synthetic = float(relative_errors(embed, reference, synthetic_inputs).mean())
    real = {name: float(relative_errors(embed, reference, xs).mean()) for name, xs in real_inputs.items()}
    ratio = float(np.mean(list(real.values())) / max(synthetic, 1e-12))
    return Generalisation(synthetic, real, ratio)
