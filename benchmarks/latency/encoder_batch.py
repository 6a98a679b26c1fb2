"""Does a batched encoder pay for whole volumes? Encoder IRs at batch 1 / 4 / 8 / 16, float and INT8, images/s.

    python benchmarks/latency/encoder_batch.py build --out carried/batch [--batches 1 4 8 16]   # torch + nncf + openvino
    python benchmarks/latency/encoder_batch.py run carried/batch --json R.json [--seconds 6 --rounds 2]  # openvino only

`build` exports LiteMedSAM's float encoder and the `openvino_int8_cpu_vnni` INT8 encoder (reparameterized,
calibrated on two batches of the bundled synthetic images stacked: a speed run, not a quality one) as `float_bB.xml` / `int8_bB.xml`. `run` measures each IR as `predict_many` runs
the encoder: OpenVINO's THROUGHPUT hint, as many asynchronous requests as it asks for, images/s over `--seconds`,
rounds interleaved across IRs (a load spike hits all alike); and the LATENCY hint, one request, images/s.
Skeleton IRs (`ir_skeleton.py strip` / `fill`) time like their originals, so the run can happen on a host that has
only `openvino`.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def build(out: Path, batches: list[int]) -> None:
    import nncf
    import openvino as ov

    from dfq_sam_plugin import DFQSAMDataset, load_sam
    from dfq_sam_plugin.backends.nncf import _reparameterize_per_recipe, calibration_inputs, nncf_quantize
    from dfq_sam_plugin.export.openvino import convert_encoder
    from dfq_sam_plugin.recipes import load_recipe

    sam = load_sam("litemedsam")
    ds = DFQSAMDataset.bundled(sam)
    recipe = load_recipe("openvino_int8_cpu_vnni")
    inputs = calibration_inputs(ds, recipe)
    work = _reparameterize_per_recipe(sam, ds, recipe, {}, inputs)
    out.mkdir(parents=True, exist_ok=True)
    for b in batches:
        fp = convert_encoder(sam.model.image_encoder, sam.spec.img_size, batch=b)
        ov.save_model(fp, out / f"float_b{b}.xml", compress_to_fp16=True)
        # two stacked calibration batches: enough for ranges of a speed run (every batch of the images at once ran
        # out of 24 GiB in NNCF's statistics at batch 8 on a 2-core machine)
        batched = [np.concatenate([inputs[(i * b + k) % len(inputs)] for k in range(b)]) for i in range(2)]
        q = nncf_quantize(convert_encoder(work.model.image_encoder, sam.spec.img_size, batch=b), nncf.Dataset(batched),
                          {**recipe, "subset_size": len(batched)})
        ov.save_model(q, out / f"int8_b{b}.xml")
        print(f"batch {b}: float + int8 written", flush=True)


def _images_per_s(compiled, batch: int, seconds: float) -> float:
    import openvino as ov

    x = np.random.default_rng(0).random(tuple(compiled.inputs[0].get_shape()), np.float32)
    queue = ov.AsyncInferQueue(compiled, max(1, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    for _ in range(len(queue)):  # warm-up
        queue.start_async({0: x})
    queue.wait_all()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        queue.start_async({0: x})
        done += 1
    queue.wait_all()
    return done * batch / (time.perf_counter() - t0)


def run(folder: Path, seconds: float, rounds: int) -> dict:
    import openvino as ov

    core = ov.Core()
    irs = sorted(folder.glob("*_b*.xml"), key=lambda p: (p.stem.split("_b")[0], int(p.stem.split("_b")[1])))
    compiled = {(p.stem, hint): core.compile_model(str(p), "CPU", {"PERFORMANCE_HINT": hint})
                for p in irs for hint in ("THROUGHPUT", "LATENCY")}
    found: dict = {}
    for _ in range(rounds):
        for (stem, hint), model in compiled.items():
            batch = int(stem.split("_b")[1])
            found.setdefault(stem, {}).setdefault(hint.lower(), []).append(_images_per_s(model, batch, seconds))
    return {"cpu": _cpu(), "cores": _cores(), "openvino": ov.get_version(), "seconds": seconds, "rounds": rounds,
            "images_per_s": {k: {h: float(np.median(v)) for h, v in hints.items()} for k, hints in found.items()},
            "all": found}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", required=True)
    b.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    r = sub.add_parser("run")
    r.add_argument("folder")
    r.add_argument("--seconds", type=float, default=6.0)
    r.add_argument("--rounds", type=int, default=2)
    r.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.cmd == "build":
        build(Path(args.out), args.batches)
        return
    result = run(Path(args.folder), args.seconds, args.rounds)
    print(f"{result['cpu']} ({result['cores']} cores), OpenVINO {result['openvino']}")
    for stem, hints in result["images_per_s"].items():
        print(f"  {stem:10s} throughput {hints['throughput']:7.2f} img/s   latency {hints['latency']:7.2f} img/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
