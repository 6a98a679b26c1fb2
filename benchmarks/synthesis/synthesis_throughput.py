"""Synthesis throughput: image-iterations per second and peak GPU memory of the DFQ-SAM loop.

    python benchmarks/synthesis/synthesis_throughput.py --models litemedsam vit_b --batches 1 8 16 32 64 \
        --precisions fp32 bf16 --device cuda --json throughput.json

Each point runs the real loop (``Synthesizer.run_batch``: augmentation, encoder + decoder forward/backward,
PSE/KDE, TV, Adam, label evolution every 50 iterations) for ``--iterations`` steps after a 2-iteration warm-up
batch on the same engine (which also pays torch.compile's compilation: ``--compile`` modes, ``warmup_s``).
``--reference-roll`` runs the augmentation as the plain advanced-indexing gather it was before (its backward a
scatter-add), to measure the permutation roll of ``synthesis.labels`` against it in the same call.
SAM ViT models use random weights (latency does not depend on weight values).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import warnings

import torch

warnings.filterwarnings("ignore", category=FutureWarning)


def reference_augment(x, dy, dx, flip):
    """The roll before the permutation roll: advanced indexing, whose backward is a scatter-add."""
    size_y, size_x = x.shape[-2:]
    src_y = (torch.arange(size_y, device=x.device)[None, :] - dy[:, None]) % size_y
    src_x = (torch.arange(size_x, device=x.device)[None, :] - dx[:, None]) % size_x
    src_x = torch.where(flip[:, None], src_x.flip(-1), src_x)
    b = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[b, src_y[:, :, None], src_x[:, None, :]].permute(0, 3, 1, 2)


def measure(sam, batch: int, precision: str, device: str, iterations: int, checkpointing: bool,
            profile: bool = False, compile_mode: str = "off", reference_roll: bool = False) -> dict:
    from dfq_sam_plugin.synthesis import engine as engine_module
    from dfq_sam_plugin.synthesis.config import SynthesisConfig
    from dfq_sam_plugin.synthesis.engine import Synthesizer

    cfg = SynthesisConfig(iterations=iterations, stages=1, warmup=1, batch_size=batch,
                          amp={"fp32": "off", "bf16": "bf16", "bf16m": "bf16-model"}[precision],
                          activation_checkpointing=checkpointing, evolve_every=50, compile=compile_mode)
    point = {"batch": batch, "precision": precision, "checkpointing": checkpointing, "compile": compile_mode,
             "roll": "reference gather" if reference_roll else "permutation"}
    cuda = device.startswith("cuda")
    augment = engine_module.augment_images
    if reference_roll:
        engine_module.augment_images = reference_augment
    try:
        engine = Synthesizer(sam, cfg, device=device)

        def timed(config):
            engine.cfg = config
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            engine.run_batch(list(range(batch)))
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - start

        compile_s = timed(SynthesisConfig(**{**cfg.to_dict(), "iterations": 2}))  # warm-up (and compilation)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds = timed(cfg)
        table = None
        if profile:  # a short pass under torch.profiler: the top kernels by device time
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
                timed(SynthesisConfig(**{**cfg.to_dict(), "iterations": 5}))
            table = prof.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=15)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {**point, "oom": True}
    finally:
        engine_module.augment_images = augment
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return {**point, "img_iter_per_s": batch * iterations / seconds, "seconds": seconds, "warmup_s": compile_s,
            "peak_gib": peak, **({"profile": table} if table else {})}


def main() -> None:
    from dfq_sam_plugin.synthesis.config import COMPILE_MODES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["litemedsam"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 64])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "bf16m"],
                    help="bf16: autocast; bf16m: a bf16 copy of the model without autocast (amp='bf16-model')")
    ap.add_argument("--checkpointing", nargs="+", type=int, default=[0], help="0 and/or 1")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--max-batch-vit", type=int, default=8, help="largest batch tried for SAM ViT at 1024")
    ap.add_argument("--compile", nargs="+", default=["off"], choices=[m for m in COMPILE_MODES if m != "auto"],
                    help="torch.compile modes (SynthesisConfig.compile) to measure")
    ap.add_argument("--reference-roll", nargs="+", type=int, default=[0],
                    help="0: the permutation roll; 1: the advanced-indexing gather it replaced")
    ap.add_argument("--profile", action="store_true", help="also a torch.profiler table of the top kernels per point")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin import load_sam

    rows = []
    for name in args.models:
        sam = load_sam(name, random_init=name != "litemedsam")
        for precision in args.precisions:
            for ckpt, mode, ref, batch in itertools.product(args.checkpointing, args.compile, args.reference_roll,
                                                            args.batches):
                if name != "litemedsam" and batch > args.max_batch_vit:
                    continue
                row = {"model": name, "device_name": torch.cuda.get_device_name() if
                       args.device.startswith("cuda") else "cpu",
                       **measure(sam, batch, precision, args.device, args.iterations, bool(ckpt), args.profile,
                                 mode, bool(ref))}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "profile"}), flush=True)
                if "profile" in row:
                    print(row["profile"], flush=True)
                if args.json:  # rewritten after every point: a call cut short keeps what finished
                    write(args.json, rows)
        del sam
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if args.json:
        write(args.json, rows)


def write(path: str, rows: list[dict]) -> None:
    with open(path, "w") as fh:
        json.dump({"torch": torch.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
