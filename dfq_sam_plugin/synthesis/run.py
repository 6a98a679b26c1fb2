"""A resumable synthesis run into a folder: engine batches -> shards -> (rank 0) one dataset."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..data.shards import ShardStore
from ..models.spec import SamBundle
from .config import SynthesisConfig
from .distributed import RankInfo, barrier
from .engine import TERMS, SynthesizedBatch, Synthesizer


def run_key(sam: SamBundle, config: SynthesisConfig, num_images: int) -> dict:
    """What must match for finished images to be reused (JSON-normalised: tuples become lists)."""
    cfg = config.to_dict()
    cfg.pop("batch_size")  # batching does not change an image's initial state: a restart may re-batch
    cfg.pop("amp")  # precision and compilation change rounding, not what is optimised
    cfg.pop("compile")
    cfg.pop("compile_backend")  # so also runs started before the key existed resume
    if not cfg["texture"]:  # switched off: runs started before the texture switch existed resume
        cfg.pop("texture"), cfg.pop("texture_slope")
    key = {"model": sam.name, "weights_sha256": sam.weights_sha256, "num_images": num_images, "config": cfg}
    return json.loads(json.dumps(key))


def batch_arrays(batch: SynthesizedBatch, device: str) -> dict[str, np.ndarray]:
    n = len(batch.indices)
    arrays = {
        "indices": np.asarray(batch.indices, dtype=np.int64),
        "pixels": batch.pixels.astype(np.float32),
        "boxes": batch.boxes.astype(np.float32),
        "masks": batch.masks.astype(np.uint8),
        "seconds": np.full(n, batch.seconds / n, dtype=np.float64),
        "device": np.asarray([device] * n),
        "reinitialised": np.asarray([i in batch.reinitialised for i in batch.indices], dtype=bool),
    }
    for term in TERMS:
        arrays[f"loss_{term}"] = batch.losses[term].astype(np.float32)
        arrays[f"history_{term}"] = np.tile(np.asarray(batch.history.get(term, []), np.float32), (n, 1))
    return arrays


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def synthesize_shards(sam: SamBundle, config: SynthesisConfig, num_images: int, folder: str | Path,
                      device: str = "cpu", rank: RankInfo | None = None,
                      on_progress: Callable[[int, dict[str, float]], None] | None = None) -> dict:
    """Synthesise the images of ``range(num_images)`` that ``folder`` does not hold yet (this rank's
    share of them). Returns timing facts of this rank's work."""
    rank = rank or RankInfo()
    store = ShardStore(folder)
    if rank.is_main:
        store.start(run_key(sam, config, num_images))
    barrier(rank)
    if not rank.is_main:
        store.start(run_key(sam, config, num_images))
    todo = [i for i in range(num_images) if i not in store.done()]
    barrier(rank)  # every rank has read the same to-do list before anyone writes
    mine = rank.shard(todo)
    engine = Synthesizer(sam, config, device=device)
    start, steps = time.perf_counter(), 0

    def step(terms: dict[str, float], size: int) -> None:
        nonlocal steps
        steps += size
        if on_progress is not None:
            on_progress(size, terms)

    for first in range(0, len(mine), config.batch_size):
        idx = mine[first : first + config.batch_size]
        size = len(idx)
        batch = engine.run_batch(idx, on_step=lambda terms, size=size: step(terms, size))
        store.write(f"r{rank.rank}-{idx[0]:06d}", batch_arrays(batch, device_name(engine.device)))
        if not config.optimises and on_progress is not None:
            on_progress(len(idx) * config.stages * config.iterations, {})
    seconds = time.perf_counter() - start
    return {"rank": rank.rank, "images": len(mine), "image_iterations": steps, "seconds": seconds,
            "device": str(engine.device)}
