"""A LiteMedSAM calibration set made by the CLI on this CPU, loaded and fed to the real nncf.quantize."""

import numpy as np


def test_cli_set_loads_with_provenance_and_figures(litemedsam_calib, litemedsam):
    from dfq_sam_plugin import DFQSAMDataset

    ds = DFQSAMDataset.load(litemedsam_calib, litemedsam)
    items = list(ds.get_inference_data())
    assert len(items) == 2 and all(x.shape == (1, 3, 256, 256) for x in items)
    assert all(0.0 <= x.min() and x.max() <= 1.0 for x in items)  # LiteMedSAM's [0, 1] input range
    p = ds.provenance
    assert p["real_data_used"] is False and p["method"] == "dfq-sam" and p["model"] == "litemedsam"
    assert p["weights_sha256"] == litemedsam.weights_sha256 and p["config"]["iterations"] == 3
    assert set(p["final_losses"]) == {"seg", "pse", "tv", "total"}
    assert (litemedsam_calib / "samples.png").stat().st_size > 0 and (litemedsam_calib / "losses.png").exists()


def test_nncf_quantize_takes_the_set_as_is(litemedsam_calib, litemedsam):
    import nncf
    import openvino as ov
    import torch

    from dfq_sam_plugin import DFQSAMDataset

    ds = DFQSAMDataset.load(litemedsam_calib)
    ov_encoder = ov.convert_model(litemedsam.model.image_encoder, example_input=torch.zeros(1, 3, 256, 256),
                                  input=[1, 3, 256, 256])
    quantized = nncf.quantize(ov_encoder, ds, subset_size=len(ds), model_type=nncf.ModelType.TRANSFORMER,
                              fast_bias_correction=True)
    fq = [op for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(fq) > 20
    out = ov.Core().compile_model(quantized, "CPU")(next(iter(ds)))[0]
    assert out.shape == (1, 256, 64, 64) and np.isfinite(out).all()
