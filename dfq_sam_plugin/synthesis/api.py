"""``synthesize``: one call from an FP SAM to a saved ``DFQSAMDataset`` (resumable, torchrun-aware)."""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..models.spec import SamBundle
from .config import SynthesisConfig
from .distributed import RankInfo, barrier, init_from_env


def _progress_bar(total: int, enabled: bool, desc: str):
    if not enabled:
        return nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img-iter", dynamic_ncols=True)


def synthesize(sam: SamBundle, num_images: int = 32, device: str = "cpu", seed: int = 0, method: str = "dfq-sam",
               out: str | Path | None = None, progress: bool = True, rank: RankInfo | None = None,
               shards_only: bool = False, **config: Any):
    """Synthesise ``num_images`` calibration images from the FP ``sam`` alone.

    With ``out``, finished batches are kept under ``out/.shards`` so a restarted call continues where the
    last one stopped; the finished set is saved to ``out`` (data/, provenance.json, samples.png,
    losses.png). Launched by torchrun, every rank takes a disjoint share and rank 0 writes the set;
    other ranks return None. ``shards_only`` stops after the images (a GPU box without nncf/datasets):
    the same call with the same ``out`` on another machine then only merges.
    """
    from .run import synthesize_shards

    if num_images < 1:
        raise ValueError(f"num_images must be >= 1; got {num_images}")
    cfg = SynthesisConfig(method=method, seed=seed, **config)
    rank = rank or init_from_env()
    device = rank.device(device)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="dfq-sam-"))
    finished = _finished_set(sam, cfg, num_images, folder)
    if finished is not None:
        return finished if rank.is_main else None
    total = num_images * cfg.stages * cfg.iterations
    started = time.perf_counter()
    with _progress_bar(total, progress and rank.is_main, f"synthesize[{method}]") as bar:
        def on_progress(n: int, terms: dict[str, float]) -> None:
            if bar is not None:
                bar.update(n * rank.world_size)
                if terms:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in terms.items()}, refresh=False)

        synthesize_shards(sam, cfg, num_images, folder, device=device, rank=rank, on_progress=on_progress)
    barrier(rank)
    if not rank.is_main or shards_only:
        return None
    ds = merge(sam, cfg, folder, num_images, rank.world_size, time.perf_counter() - started)
    if out is None:
        shutil.rmtree(folder, ignore_errors=True)
    return ds


def _finished_set(sam: SamBundle, cfg: SynthesisConfig, num_images: int, folder: Path):
    """The set already saved in ``folder`` by the same run (a re-run is a no-op), else None."""
    if not (folder / "provenance.json").exists():
        return None
    from ..data.dataset import DFQSAMDataset
    from .run import run_key

    ds = DFQSAMDataset.load(folder)
    if ds.provenance.get("run_key") != run_key(sam, cfg, num_images):
        raise ValueError(f"{folder} already holds a calibration set made with other settings; "
                         f"choose another --out folder")
    return ds


def merge(sam: SamBundle, cfg: SynthesisConfig, folder: Path, num_images: int, world_size: int, seconds: float):
    from ..data.dataset import DFQSAMDataset
    from ..data.shards import ShardStore
    from .figures import losses_figure, samples_figure

    store = ShardStore(folder)
    arrays = store.read()
    got = sorted(int(i) for i in arrays.get("indices", []))
    if got != list(range(num_images)):
        raise RuntimeError(f"synthesis finished with images {got[:5]}... ({len(got)} of {num_images}); "
                           f"re-run with the same --out to complete it")
    losses = {t: arrays[f"loss_{t}"] for t in ("seg", "pse", "tv", "total")}
    history = {t: arrays[f"history_{t}"] for t in ("seg", "pse", "tv", "total")}
    image_iters = num_images * cfg.stages * cfg.iterations if cfg.optimises else 0
    from .run import run_key

    provenance = {
        "run_key": run_key(sam, cfg, num_images),
        "method": cfg.method,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "timing": {
            # from the shards: the images may have been made by another call, machine or rank
            "synthesis_seconds": round(float(np.sum(arrays["seconds"])), 3),
            "img_iter_per_s": round(image_iters / max(float(np.sum(arrays["seconds"])), 1e-9), 3),
            "devices": sorted({str(d) for d in arrays["device"]}),
            "world_size_last_call": world_size,
            "image_iterations": image_iters,
            "seconds_this_call": round(seconds, 3),
        },
        "final_losses": {t: float(np.mean(v)) for t, v in losses.items()},
        "reinitialised_images": [int(i) for i, r in zip(arrays["indices"], arrays["reinitialised"]) if r],
        "real_data_used": False,
        "data_sources": ["noise from torch.Generator", f"the FP {sam.name} model"],
    }
    ds = DFQSAMDataset.from_arrays(sam, arrays["pixels"], arrays["boxes"], arrays["masks"], losses, provenance)
    ds.save(folder)
    title = f"{sam.name} · {cfg.method} · seed {cfg.seed}"
    samples_figure(arrays["pixels"], arrays["boxes"], arrays["masks"], folder / "samples.png", title=title)
    if cfg.optimises:
        losses_figure(history, folder / "losses.png", title=title)
    shutil.rmtree(store.dir, ignore_errors=True)
    return ds
