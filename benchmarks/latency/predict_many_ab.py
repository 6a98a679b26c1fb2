"""A/B of ``OVSamPredictor.predict_many`` against its version at an older commit, in one process on the same
compiled predictor (rounds alternate the order), over the MNI T1 volume's slices: what a change to the request
pipeline does to volume throughput, with the host's speed drifts cancelled.

    python benchmarks/latency/predict_many_ab.py --export dfq_sam_out/int8 --old-rev c4965bb \\
        --policy float float@mixed --precisions default mixed --json R.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def old_predict_many(rev: str):
    """``OVSamPredictor.predict_many`` as it was at git revision ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:dfq_sam_plugin/runtime/predictor.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "predictor_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dfq_sam_plugin.runtime.predictor_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OVSamPredictor.predict_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True)
    ap.add_argument("--old-rev", required=True)
    ap.add_argument("--policy", nargs="+", default=["float"])
    ap.add_argument("--precisions", nargs="+", default=["default"])
    ap.add_argument("--plane", default="axial")
    ap.add_argument("--stride", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dfq_sam_plugin.eval import mni_volume
    from dfq_sam_plugin.runtime import OVSamPredictor

    vol = mni_volume(args.plane, stride=args.stride)
    images, boxes = [i.image for i in vol.images], [i.boxes for i in vol.images]
    impls = {"new": OVSamPredictor.predict_many, "old": old_predict_many(args.old_rev)}
    rows = {}
    for policy in args.policy:
        p = OVSamPredictor(args.export, policy=policy, precisions=tuple(args.precisions))
        for f in impls.values():  # warm-up: compilation of the THROUGHPUT models
            f(p, images[:2], boxes[:2])
        rates: dict[str, list[float]] = {name: [] for name in impls}
        for r in range(args.rounds):
            for name in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
                t0 = time.perf_counter()
                impls[name](p, images, boxes)
                rates[name].append(len(images) / (time.perf_counter() - t0))
        rows[p.candidate] = {name: {"slices_per_s": v, "median": statistics.median(v)} for name, v in rates.items()}
        rows[p.candidate]["new_over_old"] = [a / b for a, b in zip(rates["new"], rates["old"])]
        print(p.candidate, {k: round(v["median"], 2) for k, v in rows[p.candidate].items() if k in impls},
              "new/old per round", [round(x, 2) for x in rows[p.candidate]["new_over_old"]], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": platform.processor() or "x86_64", "export": args.export,
                                               "old_rev": args.old_rev, "slices": len(images),
                                               "plane": args.plane, "stride": args.stride, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
