"""Run predictors over benchmark sets and score them: GT Dice / IoU / NSD and FP-fidelity (Dice of a
model's mask against the reference (FP) model's mask for the same prompt — docs/architecture.md#evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .datasets import BenchmarkSet
from .metrics import METRICS, bootstrap_ci, dice

Masks = list[np.ndarray]  # one bool (N, H, W) array per benchmark image


def predict_set(predictor, bset: BenchmarkSet, on_image: Callable[[], None] | None = None) -> Masks:
    out = []
    for item in bset.images:
        out.append(predictor.predict(item.image, item.boxes))
        if on_image is not None:
            on_image()
    return out


def per_prompt(bset: BenchmarkSet, masks: Masks, reference: Masks | None = None) -> dict[str, np.ndarray]:
    scores: dict[str, list[float]] = {name: [] for name in METRICS}
    if reference is not None:
        scores["fidelity"] = []
    for i, item in enumerate(bset.images):
        for k in range(len(item.boxes)):
            for name, fn in METRICS.items():
                scores[name].append(fn(masks[i][k], item.masks[k]))
            if reference is not None:
                scores["fidelity"].append(dice(masks[i][k], reference[i][k]))
    return {k: np.asarray(v) for k, v in scores.items()}


@dataclass
class EvalReport:
    """``results[set][model] = {"dice": mean, "iou": ..., "nsd": ..., "fidelity": ..., "fidelity_ci95": [lo, hi]
    (non-reference; bootstrap over prompts, eval.metrics.bootstrap_ci), "prompts": n}``."""

    results: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    masks: dict[str, dict[str, Masks]] = field(default_factory=dict)
    scores: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)  # [set][model][metric]: per prompt
    reference: str = "fp"

    def to_dict(self) -> dict:
        return {"reference": self.reference, "results": self.results}

    def paired(self, set_name: str, model: str, other: str, metric: str = "fidelity") -> dict[str, object]:
        """``model`` minus ``other`` on the same prompts of ``set_name``: the mean per-prompt difference of
        ``metric`` and its 95 % bootstrap interval, ``{"mean": m, "ci95": [lo, hi]}``."""
        scores = self.scores[set_name]
        diff = scores[model][metric] - scores[other][metric]
        return {"mean": float(diff.mean()), "ci95": list(bootstrap_ci(diff))}


def evaluate(predictors: Mapping[str, object], sets: Sequence[BenchmarkSet], reference: str | None = "fp",
             on_image: Callable[[], None] | None = None) -> EvalReport:
    """Evaluate every predictor on every set with the same prompts. ``reference`` names the predictor whose
    masks the others' FP-fidelity is measured against (None: no fidelity)."""
    if reference is not None and reference not in predictors:
        raise ValueError(f"reference predictor {reference!r} is not among {list(predictors)}")
    report = EvalReport(reference=reference or "")
    for bset in sets:
        masks = {name: predict_set(p, bset, on_image) for name, p in predictors.items()}
        report.masks[bset.name] = masks
        ref = masks[reference] if reference else None
        report.results[bset.name], report.scores[bset.name] = {}, {}
        for name, m in masks.items():
            scores = report.scores[bset.name][name] = per_prompt(bset, m, None if name == reference else ref)
            summary = {k: float(v.mean()) for k, v in scores.items()}
            summary["prompts"] = int(len(scores["dice"]))
            if "fidelity" in scores:
                summary["fidelity_ci95"] = list(bootstrap_ci(scores["fidelity"]))
            report.results[bset.name][name] = summary
    return report
