"""Synthesis throughput: image-iterations per second and peak GPU memory of the DFQ-SAM loop.

    python benchmarks/synthesis_throughput.py --models litemedsam vit_b --batches 1 8 16 32 64 \
        --precisions fp32 bf16 --device cuda --json throughput.json

Each point runs the real loop (``Synthesizer.run_batch``: augmentation, encoder + decoder forward/backward,
PSE/KDE, TV, Adam, label evolution every 50 iterations) for ``--iterations`` steps after one warm-up batch.
SAM ViT models use random weights (latency does not depend on weight values).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

warnings.filterwarnings("ignore", category=FutureWarning)


def measure(sam, batch: int, precision: str, device: str, iterations: int, checkpointing: bool,
            profile: bool = False) -> dict:
    from dfq_sam_plugin.synthesis.config import SynthesisConfig
    from dfq_sam_plugin.synthesis.engine import Synthesizer

    cfg = SynthesisConfig(iterations=iterations, stages=1, warmup=1, batch_size=batch,
                          amp={"fp32": "off", "bf16": "bf16", "bf16m": "bf16-model"}[precision], activation_checkpointing=checkpointing,
                          evolve_every=50)
    engine = Synthesizer(sam, cfg, device=device)
    cuda = device.startswith("cuda")
    try:
        warm = SynthesisConfig(**{**cfg.to_dict(), "iterations": 2})
        Synthesizer(sam, warm, device=device).run_batch(list(range(batch)))
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        engine.run_batch(list(range(batch)))
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        table = None
        if profile:  # a separate short pass under torch.profiler: the top kernels by device time
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            short = Synthesizer(sam, SynthesisConfig(**{**cfg.to_dict(), "iterations": 5}), device=device)
            with torch_profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
                short.run_batch(list(range(batch)))
                if cuda:
                    torch.cuda.synchronize()
            table = prof.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=15)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"batch": batch, "precision": precision, "checkpointing": checkpointing, "oom": True}
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return {"batch": batch, "precision": precision, "checkpointing": checkpointing,
            "img_iter_per_s": batch * iterations / seconds, "seconds": seconds, "peak_gib": peak,
            **({"profile": table} if table else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["litemedsam"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 64])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "bf16m"],
                    help="bf16: autocast; bf16m: a bf16 copy of the model without autocast (amp='bf16-model')")
    ap.add_argument("--checkpointing", nargs="+", type=int, default=[0], help="0 and/or 1")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--max-batch-vit", type=int, default=8, help="largest batch tried for SAM ViT at 1024")
    ap.add_argument("--profile", action="store_true", help="also a torch.profiler table of the top kernels per point")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin import load_sam

    rows = []
    for name in args.models:
        sam = load_sam(name, random_init=name != "litemedsam")
        for precision in args.precisions:
            for ckpt in args.checkpointing:
                for batch in args.batches:
                    if name != "litemedsam" and batch > args.max_batch_vit:
                        continue
                    row = {"model": name, "device_name": torch.cuda.get_device_name() if
                           args.device.startswith("cuda") else "cpu",
                           **measure(sam, batch, precision, args.device, args.iterations, bool(ckpt), args.profile)}
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "profile"}), flush=True)
                    if "profile" in row:
                        print(row["profile"], flush=True)
        del sam
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
