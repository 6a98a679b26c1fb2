"""Whole-volume throughput: slices/s of each runtime segmenting every slice of a volume (``predict_many``), in
one run, with the masks scored too (GT Dice, and FP-fidelity against the first runtime)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from .datasets import BenchmarkSet
from .harness import per_prompt


@dataclass
class VolumeResult:
    runtime: str
    slices: int
    prompts: int
    seconds: float
    slices_per_s: float
    prompts_per_s: float
    gt_dice: float
    fidelity: float  # mean Dice against the reference runtime's masks (1.0 for the reference itself)
    sequential_slices_per_s: float | None = None  # the same slices through plain ``predict``, one at a time

    def to_dict(self) -> dict:
        return asdict(self)


def volume_throughput(predictors: Mapping[str, object], volume: BenchmarkSet,
                      on_runtime: Callable[[str], None] | None = None, sequential: bool = False) -> list[VolumeResult]:
    """Each predictor (``BoxPredictor``) segments the whole ``volume`` through ``predict_many`` after one warm-up
    slice (compilation and first-call costs out of the timing); the first predictor is the reference. With
    ``sequential``, also through a plain loop of ``predict`` calls (what the batch API is measured against)."""
    images = [item.image for item in volume.images]
    boxes = [item.boxes for item in volume.images]
    results, reference = [], None
    for name, predictor in predictors.items():
        if on_runtime is not None:
            on_runtime(name)
        predictor.predict_many(images[:1], boxes[:1])
        t0 = time.perf_counter()
        masks = predictor.predict_many(images, boxes)
        seconds = time.perf_counter() - t0
        reference = reference if reference is not None else masks
        seq = None
        if sequential:
            t0 = time.perf_counter()
            for image, b in zip(images, boxes):
                predictor.predict(image, b)
            seq = len(images) / (time.perf_counter() - t0)
        scores = per_prompt(volume, masks, reference)
        results.append(VolumeResult(name, len(images), volume.num_prompts, seconds, len(images) / seconds,
                                    volume.num_prompts / seconds, float(scores["dice"].mean()),
                                    float(scores["fidelity"].mean()), seq))
    return results
