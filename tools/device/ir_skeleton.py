"""Carry OpenVINO IRs for speed runs without their weights: `strip` keeps an IR's graph (.xml) and every small or
integer constant (shapes, axes, indices, quantizer ranges, per-channel scales) and drops the large float and int8
weight tensors; `fill` rebuilds a .bin of the same layout with random values in those tensors. Latency does not
depend on weight values (docs/notebook/2026-12-02.md §15: the same OpenVINO kernels run), so a filled IR times like the original while
the transfer shrinks from hundreds of MB (SAM ViT-B: 358 MB float) to a few. Never use a filled IR for accuracy.

    python tools/device/ir_skeleton.py strip fp32=out/fp32/encoder.xml int8=out/int8 --out carried/irs
    python tools/device/ir_skeleton.py fill carried/irs          # there: writes every LABEL/NAME.bin

A LABEL=FOLDER strips every IR in the folder and copies its other files (an `OVSamPredictor` folder: encoder,
decoder, manifest.json), so the filled folder loads as a predictor.

`python tools/device/ir_skeleton.py check A.xml B.xml` prints the largest absolute difference of two IRs' outputs
(a stripped-and-filled IR against its original differs, by design; the check is for the kept constants'
round-trip: `strip` + `fill` with --keep-all reproduces the .bin byte for byte).
"""

from __future__ import annotations

import argparse
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

# element types whose large tensors are weights (regenerated); every other type is kept byte for byte
_FLOAT = {"f32": np.float32, "f16": np.float16, "bf16": None}
_BYTES = {"i8", "u8", "i4", "u4"}
KEEP_BYTES = 65536


def _consts(xml: Path) -> list[tuple[str, int, int]]:
    """(element type, offset, size) of every Const with data in the .bin."""
    out = []
    for layer in ET.parse(xml).getroot().iter("layer"):
        data = layer.find("data")
        if layer.get("type") == "Const" and data is not None and data.get("offset") is not None:
            out.append((data.get("element_type"), int(data.get("offset")), int(data.get("size"))))
    return out


def strip(xml: Path, dest: Path, keep_all: bool = False) -> dict:
    """``dest/NAME.xml`` (the graph), ``NAME.kept.npz`` (the kept constants) and ``NAME.skeleton.json``."""
    blob = np.fromfile(xml.with_suffix(".bin"), dtype=np.uint8)
    kept, fill = {}, {}
    for etype, offset, size in _consts(xml):
        regenerate = not keep_all and size > KEEP_BYTES and (etype in _FLOAT or etype in _BYTES)
        (fill if regenerate else kept)[offset] = (etype, size)
    for offset in kept:  # a segment shared by a kept and a regenerated const stays as it was
        fill.pop(offset, None)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(xml, dest / xml.name)
    offsets = sorted(kept)
    np.savez_compressed(dest / f"{xml.stem}.kept.npz", offsets=np.array(offsets, dtype=np.int64),
                        sizes=np.array([kept[o][1] for o in offsets], dtype=np.int64),
                        data=np.concatenate([blob[o:o + kept[o][1]] for o in offsets]) if offsets
                        else np.zeros(0, np.uint8))
    meta = {"source": str(xml), "bin_bytes": int(blob.size), "regenerated": [[o, *fill[o]] for o in sorted(fill)],
            "kept_bytes": int(sum(kept[o][1] for o in offsets))}
    (dest / f"{xml.stem}.skeleton.json").write_text(json.dumps(meta))
    return meta


def _random(etype: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if etype in _BYTES:
        return rng.integers(0, 256, size, dtype=np.uint8)
    n = size // {"f32": 4, "f16": 2, "bf16": 2}[etype]
    values = (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)
    if etype == "bf16":  # the high half of each f32
        return (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    return values.astype(_FLOAT[etype]).view(np.uint8)


def fill(skeleton: Path, seed: int = 0) -> Path:
    """Write the .bin of the IR that ``NAME.skeleton.json`` describes; returns its path."""
    rng = np.random.default_rng(seed)
    folder, stem = skeleton.parent, skeleton.name.removesuffix(".skeleton.json")
    meta = json.loads(skeleton.read_text())
    blob = np.zeros(meta["bin_bytes"], dtype=np.uint8)
    for offset, etype, size in meta["regenerated"]:
        blob[offset:offset + size] = _random(etype, size, rng)
    kept = np.load(folder / f"{stem}.kept.npz")
    pos = 0
    for offset, size in zip(kept["offsets"], kept["sizes"]):
        blob[offset:offset + size] = kept["data"][pos:pos + size]
        pos += size
    blob.tofile(folder / f"{stem}.bin")
    return folder / f"{stem}.bin"


def check(a: Path, b: Path) -> float:
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    ca, cb = core.compile_model(str(a), "CPU", cfg), core.compile_model(str(b), "CPU", cfg)
    shape = [d.get_length() for d in ca.inputs[0].get_partial_shape()]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return float(np.abs(ca(x)[0] - cb(x)[0]).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("strip", help="LABEL=PATH.xml or LABEL=FOLDER ... -> OUT/LABEL/NAME.{xml,kept.npz,skeleton.json}")
    s.add_argument("irs", nargs="+")
    s.add_argument("--out", required=True)
    s.add_argument("--keep-all", action="store_true", help="keep every constant (round-trip check)")
    f = sub.add_parser("fill", help="write OUT/*/NAME.bin from the skeletons")
    f.add_argument("folder")
    f.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check", help="largest |difference| of two IRs' first outputs on one random input (f32)")
    c.add_argument("a")
    c.add_argument("b")
    args = ap.parse_args()
    if args.cmd == "strip":
        for item in args.irs:
            label, sep, path = item.partition("=")
            src, dest = Path(path), Path(args.out) / label
            if not sep or not label or not src.exists():
                ap.error(f"{item}: give LABEL=PATH.xml or LABEL=FOLDER (an existing one)")
            xmls = sorted(src.glob("*.xml")) if src.is_dir() else [src]
            if src.is_dir():
                for other in src.iterdir():
                    if other.is_file() and other.suffix not in (".xml", ".bin"):
                        dest.mkdir(parents=True, exist_ok=True)
                        shutil.copy(other, dest / other.name)
            for xml in xmls:
                meta = strip(xml, dest, args.keep_all)
                print(f"{label}/{xml.name}: {meta['bin_bytes'] / 1e6:.1f} MB .bin -> "
                      f"{meta['kept_bytes'] / 1e6:.2f} MB kept, {len(meta['regenerated'])} tensors to regenerate")
    elif args.cmd == "fill":
        for sk in sorted(Path(args.folder).glob("*/*.skeleton.json")):
            print(f"filled {fill(sk, args.seed)}")
    else:
        print(check(Path(args.a), Path(args.b)))


if __name__ == "__main__":
    main()
