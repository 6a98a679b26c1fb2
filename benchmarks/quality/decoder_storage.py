"""How the shared decoder of a candidate export is stored: float32, FP16-stored float, or INT8 weights (issue 37).

    python benchmarks/quality/decoder_storage.py --json benchmarks/results/R.json

For each storage: size of decoder.bin, FP-fidelity on the synthetic probe (float encoder, at f32 and at this CPU's
default precision: the whole pipeline against the torch FP32 masks) and benchmark_app latency (2 rounds).
"""

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import openvino as ov

    from dfq_sam_plugin import DFQSAMDataset, load_sam
    from dfq_sam_plugin.backends.nncf import compress_weights
    from dfq_sam_plugin.eval.latency import run_benchmark_app
    from dfq_sam_plugin.export.openvino import convert_decoder, convert_encoder, save_export
    from dfq_sam_plugin.export.probe import make_probe
    from dfq_sam_plugin.recipes import load_recipe

    sam = load_sam("litemedsam")
    probe = make_probe(sam, DFQSAMDataset.bundled(sam))
    fp = convert_encoder(sam.model.image_encoder, sam.spec.img_size)
    dec = convert_decoder(sam.model, sam.spec.embed_shape, 1)
    int8w = compress_weights(dec.clone(), {**load_recipe("openvino_int8_cpu_vnni"), "ignored_modules": []})
    tmp = Path(tempfile.mkdtemp())
    rows = {}
    for name, model, fp16 in (("float32", dec, False), ("float, FP16-stored", dec, True),
                              ("INT8 weights", int8w, False)):
        xml = tmp / f"{name.split(',')[0].replace(' ', '_')}_{int(fp16)}.xml"
        ov.save_model(model, xml, compress_to_fp16=fp16)
        folder = save_export(tmp / xml.stem, fp.clone(), ov.Core().read_model(xml), sam.spec,
                             {"real_data_used": False}, {"name": "probe"}, primary="float", probe=probe,
                             candidates={"float_copy": fp.clone()})
        fidelity = json.loads((folder / "manifest.json").read_text())["candidates"]["float"]["export_fidelity"]
        rows[name] = {"mib": os.path.getsize(xml.with_suffix(".bin")) / 2**20, "probe_fidelity": fidelity, "ms": []}
    for _ in range(2):
        for name in rows:
            xml = tmp / f"{name.split(',')[0].replace(' ', '_')}_{int('FP16' in name)}.xml"
            rows[name]["ms"].append(run_benchmark_app(xml, niter=200)[0])
    for name, r in rows.items():
        print(f"{name:20s} {r['mib']:5.1f} MiB  fidelity {r['probe_fidelity']}  ms {r['ms']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
