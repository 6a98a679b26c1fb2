"""Make an export's encoder the distilled encoder the package ships (``dfq_sam_plugin/assets/distilled/<model>/``).

    python tools/package_distilled.py /tmp/dist/fc2_750 \
        --measured benchmarks/results/2026-12-06_xeon-amx-2c-m207_distill_fc2float_ir.json \
        --row "distilled, fc2 float, 750 steps"

The export (``benchmarks/training/distill_gpu.py export`` of a student distilled on a GPU) must be verified intact and
data-free (``calibration.real_data_used`` false, with distillation facts). Its encoder IR is copied; the manifest keeps
the export's spec, calibration provenance, recipe and report, with ``files`` narrowed to the encoder (what
``export.packaged.packaged_export`` checks) and, with ``--measured``, the row's FP-fidelity as measured (a
`benchmarks/quality/generalisation.py` JSON). The old asset is replaced only once the new one is complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", help="an export folder (encoder.xml/.bin, decoder, manifest.json)")
    ap.add_argument("--measured", default=None, help="a generalisation.py JSON that scored this export")
    ap.add_argument("--row", default=None, help="the JSON's row name for this export")
    args = ap.parse_args()

    from dfq_sam_plugin.export.openvino import read_manifest
    from dfq_sam_plugin.export.packaged import PACKAGED, SHIPPED_FILES
    from dfq_sam_plugin.integrity import check_data_free, digests, verify_export

    folder = Path(args.export)
    verify_export(folder)
    manifest = read_manifest(folder)
    check_data_free(folder, manifest)
    if "distillation" not in manifest["calibration"]:
        raise SystemExit(f"{folder}: its manifest records no distillation: not a distilled export")
    keep = ("format", "spec", "decoder_boxes", "encoder_int8", "decoder_int8", "calibration", "recipe", "report")
    shipped = {k: manifest[k] for k in keep if k in manifest}
    if args.measured:
        result = json.loads(Path(args.measured).read_text())
        row = result["rows"][args.row]
        shipped["report"] = {**shipped.get("report", {}), "measured": {
            "note": f"{result.get('cpu', 'CPU')}, IR pinned to f32 vs the FP32 IR pinned to f32 "
                    f"({Path(args.measured).name}, row {args.row!r})",
            **{s: {"fidelity": round(row["fidelity"][s], 4), "gt_dice_delta_pt": round(row["gt_dice_delta_pt"][s], 2)}
               for s in row["fidelity"]}}}
    target = PACKAGED / manifest["calibration"]["model"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / "new"
        staged.mkdir()
        for name in SHIPPED_FILES:
            shutil.copy2(folder / name, staged / name)
        shipped["files"] = digests(staged, SHIPPED_FILES)
        (staged / "manifest.json").write_text(json.dumps(shipped, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    print(f"shipped {folder} as {target} ({shipped['files']['encoder.bin']['bytes'] / 2**20:.1f} MiB encoder.bin)")


if __name__ == "__main__":
    main()
