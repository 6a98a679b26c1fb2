"""The distilled INT8 LiteMedSAM encoder shipped in the package (made on a GPU from synthetic images only).

Data-free distillation takes minutes on a GPU and hours on a 2-core CPU, so the package carries its result the
way it carries the bundled calibration set: ``assets/distilled/<model>/`` holds the encoder IR and the manifest
of the export it came from (recipe, calibration-set provenance, distillation facts, ``real_data_used: false``).
``packaged_export`` completes it into a normal export folder (the float decoder converted from the model in
hand) after checking that the model's weights are the ones the encoder was distilled from.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..integrity import ExportIntegrityError, digests
from ..models.spec import SamBundle

PACKAGED = Path(__file__).resolve().parent.parent / "assets" / "distilled"
SHIPPED_FILES = ("encoder.xml", "encoder.bin")  # what an asset folder holds beside its manifest, hashed there


def packaged_manifest(model: str = "litemedsam") -> dict | None:
    path = PACKAGED / model / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def packaged_export(sam: SamBundle, out: str | Path, fp16_storage: bool = True) -> Path:
    """Write ``out`` (encoder.xml/.bin, decoder.xml/.bin, manifest.json) from the shipped distilled encoder.

    ``fp16_storage``: float constants stored as FP16, as the other CPU exports store theirs: the decoder's (21.9 ->
    10.9 MiB) and the INT8 encoder's float ones (``export.openvino.with_fp16_constants``; 15.1 -> 9.6 MiB);
    FP-fidelity unchanged within its noise (docs/RESULTS.md)."""
    import openvino as ov

    from .openvino import convert_decoder, save_export

    manifest = packaged_manifest(sam.name)
    if manifest is None:
        raise FileNotFoundError(f"no distilled encoder is shipped for {sam.name!r} (looked in {PACKAGED})")
    made_from = manifest["calibration"].get("weights_sha256")
    if made_from != sam.weights_sha256:
        raise ValueError(f"the shipped distilled encoder was made from {sam.name} weights {str(made_from)[:12]}, "
                         f"not these ({str(sam.weights_sha256)[:12]}): distil your own with "
                         f"`dfq-sam quantize --recipe openvino_int8_cpu_distill --device cuda`")
    shipped = digests(PACKAGED / sam.name, SHIPPED_FILES)
    if shipped != manifest.get("files"):
        raise ExportIntegrityError(f"the shipped distilled encoder in {PACKAGED / sam.name} does not match its "
                                   f"manifest's sha256: reinstall dfq-sam-plugin")
    encoder = ov.Core().read_model(PACKAGED / sam.name / "encoder.xml")
    decoder = convert_decoder(sam.model, sam.spec.embed_shape, int(manifest["decoder_boxes"]))
    report = {**manifest.get("report", {}), "packaged": True}
    return save_export(out, encoder, decoder, sam.spec, manifest["calibration"], manifest["recipe"], report,
                       fp16_storage=fp16_storage)
