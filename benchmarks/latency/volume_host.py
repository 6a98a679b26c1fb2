"""Whole-volume throughput on another host (issue #15 item 3) without the benchmark data's wheels there: `pack`
writes the MNI T1 slices, boxes and labels of `dfq-sam benchmark --volume` to one .npz here; `run` times every
predictor folder on it there (`OVSamPredictor`: `predict_many` vs a plain `predict` loop, the first folder the
fidelity reference), the same `eval.volume.volume_throughput` as the CLI.

    python benchmarks/latency/volume_host.py pack --plane axial --stride 3 --out carried/mni_axial.npz
    python benchmarks/latency/volume_host.py run carried/mni_axial.npz IR_FOLDER... --json out.json

Predictor folders may be `ir_skeleton.py` fills (random weights): then only the speed columns mean anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def pack(args) -> None:
    from dfq_sam_plugin.eval import mni_volume

    vol = mni_volume(args.plane, stride=args.stride)
    arrays = {}
    for i, item in enumerate(vol.images):
        arrays[f"image{i}"], arrays[f"boxes{i}"], arrays[f"masks{i}"] = item.image, item.boxes, item.masks
    np.savez_compressed(args.out, count=len(vol.images), name=vol.name, source=vol.source, **arrays)
    print(f"{len(vol.images)} slices, {vol.num_prompts} boxes -> {args.out}")


def run(args) -> None:
    from dfq_sam_plugin.eval.datasets import BenchmarkImage, BenchmarkSet
    from dfq_sam_plugin.eval.volume import volume_throughput
    from dfq_sam_plugin.runtime import OVSamPredictor

    z = np.load(args.volume)
    items = [BenchmarkImage(f"slice{i}", z[f"image{i}"], z[f"boxes{i}"], z[f"masks{i}"])
             for i in range(int(z["count"]))]
    vol = BenchmarkSet(str(z["name"]), items, str(z["source"]))
    # verify=False: a filled skeleton's weights differ from the hashes its manifest records, by design
    predictors = {Path(f).name: OVSamPredictor(f, config=dict(kv.split("=", 1) for kv in args.config),
                                               verify=False) for f in args.irs}
    results = [r.to_dict() for r in volume_throughput(predictors, vol, sequential=True)]
    for r in results:
        print(f"{r['runtime']}: {r['slices_per_s']:.2f} slices/s predict_many, "
              f"{r['sequential_slices_per_s']:.2f} predict loop, fidelity {r['fidelity']:.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"slices": len(items), "boxes": vol.num_prompts, "results": results},
                                              indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--plane", default="axial")
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("volume")
    r.add_argument("irs", nargs="+", help="OVSamPredictor folders; the first is the fidelity reference")
    r.add_argument("--config", nargs="*", default=[], help="OpenVINO CPU properties KEY=VALUE for every folder")
    r.add_argument("--json", default=None)
    args = ap.parse_args()
    (pack if args.cmd == "pack" else run)(args)


if __name__ == "__main__":
    main()
