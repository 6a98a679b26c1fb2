"""FP-fidelity of INT8 IRs on another CPU (the device tool's AMX Xeon), with only OpenVINO there.

INT8 accuracy depends on the CPU: on AVX2-only CPUs u8 x s8 pair sums saturate unless NNCF's OverflowFix
leaves 7-bit weights; VNNI/AMX CPUs need no fix. This packs, on this machine, the benchmark sets, the FP
model's masks for their prompts and the encoders of some IR folders (one shared float decoder; a folder whose
decoder differs, e.g. the FP32 export's, brings its own), and then
scores them wherever the pack is carried:

    python benchmarks/quality/fidelity_amx.py pack --out carried/fid IRDIR1 IRDIR2 ...     # here (torch FP reference)
    python benchmarks/quality/fidelity_amx.py run --pack carried/fid --json $OUT/fid.json   # there (OpenVINO only)

``run`` scores every encoder with OpenVINO's default inference precision (bf16 on AMX for what is not INT8)
and with ``INFERENCE_PRECISION_HINT=f32``.
"""

from __future__ import annotations

import argparse
import json
import lzma
import pickle
import platform
import shutil
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


class Replay:
    """A predictor that returns stored masks in the order the harness asks for them."""

    def __init__(self, masks: list) -> None:
        self._masks = iter(masks)

    def predict(self, image, boxes):
        return next(self._masks)


def pack(args) -> None:
    from dfq_sam_plugin import load_sam
    from dfq_sam_plugin.eval import load_benchmark
    from dfq_sam_plugin.eval.harness import predict_set
    from dfq_sam_plugin.runtime import SamBoxPredictor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp = SamBoxPredictor(load_sam("litemedsam"))
    sets = [load_benchmark(s) for s in args.sets]
    fp_masks = {b.name: predict_set(fp, b) for b in sets}
    (out / "sets.pkl.xz").write_bytes(lzma.compress(pickle.dumps({"sets": sets, "fp_masks": fp_masks})))
    first = Path(args.folders[0])
    for name in ("decoder.xml", "decoder.bin"):
        shutil.copy(first / name, out / name)
    for folder in map(Path, args.folders):
        dst = out / "encoders" / folder.name
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("encoder.xml", "encoder.bin", "manifest.json"):
            shutil.copy(folder / name, dst / name)
        if any((folder / n).read_bytes() != (first / n).read_bytes() for n in ("decoder.xml", "decoder.bin")):
            for name in ("decoder.xml", "decoder.bin"):  # its own decoder (the manifest's digests name it)
                shutil.copy(folder / name, dst / name)
    print(f"packed {len(args.folders)} encoders and {sum(len(b.images) for b in sets)} images into {out}")


def run(args) -> None:
    import tempfile

    import openvino as ov

    from dfq_sam_plugin.eval.harness import evaluate
    from dfq_sam_plugin.runtime import OVSamPredictor
    from dfq_sam_plugin.runtime.split import F32

    src = Path(args.pack)
    data = pickle.loads(lzma.decompress((src / "sets.pkl.xz").read_bytes()))
    work = Path(tempfile.mkdtemp(prefix="fid-"))
    rows = []
    for enc in sorted((src / "encoders").iterdir()):
        folder = work / enc.name
        shutil.copytree(enc, folder)
        for name in ("decoder.xml", "decoder.bin"):
            if not (folder / name).exists():
                shutil.copy(src / name, folder / name)
        for hint in args.precisions:
            config = {} if hint == "default" else dict(F32)
            for bset in data["sets"]:
                predictors = {"fp": Replay(data["fp_masks"][bset.name]), "q": OVSamPredictor(folder, config=config)}
                r = evaluate(predictors, [bset]).results[bset.name]
                rows.append({"ir": enc.name, "precision": hint, "set": bset.name, "fidelity": r["q"]["fidelity"],
                             "gt_dice": r["q"]["dice"], "fp_gt_dice": r["fp"]["dice"]})
                print(f"| {enc.name} | {hint} | {bset.name} | {r['q']['fidelity']:.4f} | {r['q']['dice']:.4f} |",
                      flush=True)
    cpu = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
    result = {"cpu": cpu, "openvino": ov.__version__, "python": platform.python_version(), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: benchmark sets, FP masks and the encoders of IR folders")
    p.add_argument("folders", nargs="+", help="IR folders (dfq-sam quantize --out); the first one's decoder is kept")
    p.add_argument("--out", required=True)
    p.add_argument("--sets", nargs="+", default=["nuclei", "mni"])
    r = sub.add_parser("run", help="there: score every packed encoder against the FP masks")
    r.add_argument("--pack", required=True)
    r.add_argument("--json", default=None)
    r.add_argument("--precisions", nargs="+", default=["default", "f32"], choices=("default", "f32"),
                   help="OpenVINO's default inference precision and/or INFERENCE_PRECISION_HINT=f32")
    args = ap.parse_args()
    {"pack": pack, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
