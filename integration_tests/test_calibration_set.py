"""A LiteMedSAM calibration set made by the CLI on this CPU, loaded with its provenance (fed to the real
nncf.quantize as it is: integration_tests/test_examples.py::test_quantize_with_nncf)."""


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
