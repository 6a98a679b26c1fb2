"""Synthetic set -> quantize_sam -> IR folder -> OVSamPredictor / benchmark_app, with the real libraries."""

import json
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def export_dir(litemedsam_calib, tmp_path_factory):
    out = tmp_path_factory.mktemp("ir") / "int8"
    subprocess.run([sys.executable, "-m", "dfq_sam_plugin.cli", "quantize", "--backend", "nncf", "--model",
                    "litemedsam", "--calib", str(litemedsam_calib), "--recipe", "recipes/openvino_int8_cpu.yaml",
                    "--out", str(out)], check=True, timeout=900)
    return out


def test_ir_holds_fake_quantize_and_provenance(export_dir, litemedsam):
    import openvino as ov

    enc = ov.Core().read_model(export_dir / "encoder.xml")
    assert sum(op.get_type_name() == "FakeQuantize" for op in enc.get_ops()) > 20
    assert enc.get_rt_info(["dfq_sam", "real_data_used"]).astype(str) == "false"
    assert enc.get_rt_info(["dfq_sam", "weights_sha256"]).astype(str) == litemedsam.weights_sha256
    assert enc.get_rt_info(["dfq_sam", "method"]).astype(str) == "dfq-sam"
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["encoder_int8"] and not manifest["decoder_int8"] and manifest["report"]["reparam"]["pairs"] == 20
    assert list(enc.inputs[0].get_partial_shape().to_shape()) == [1, 3, 256, 256]  # static for NPU


def test_ov_predictor_masks_match_fp_shape_and_mostly_agree(export_dir, litemedsam):
    from dfq_sam_plugin.eval import dice, nuclei_set
    from dfq_sam_plugin.runtime import OVSamPredictor, SamBoxPredictor

    item = nuclei_set().images[0]
    boxes = item.boxes[:5]
    ov_masks = OVSamPredictor(export_dir).predict(item.image, boxes)
    fp_masks = SamBoxPredictor(litemedsam).predict(item.image, boxes)
    assert ov_masks.shape == fp_masks.shape == (5, 256, 256) and ov_masks.dtype == bool
    assert np.mean([dice(a, b) for a, b in zip(ov_masks, fp_masks)]) > 0.5  # 2-image calibration: loose


def test_ov_predictor_runs_without_torch(export_dir):
    code = ("import sys, numpy as np; from dfq_sam_plugin.runtime import OVSamPredictor; "
            f"p = OVSamPredictor({str(export_dir)!r}); "
            "m = p.predict(np.random.default_rng(0).integers(0, 255, (100, 120), dtype=np.uint8), [[10, 10, 60, 70]]); "
            "print(m.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 100, 120) False"


def test_benchmark_app_runs_the_ir(export_dir):
    from dfq_sam_plugin.eval.latency import benchmark_export, run_benchmark_app

    median, _, _ = run_benchmark_app(export_dir / "encoder.xml", niter=5)
    assert median and median > 0
    results = benchmark_export(export_dir, niter=2, parts=("decoder",), float_precisions=("default", "f32"))
    assert {r.precision for r in results} == {"default", "f32"}  # the decoder stays float


def test_not_an_export_is_a_clear_error(tmp_path):
    from dfq_sam_plugin.runtime import OVSamPredictor

    with pytest.raises(FileNotFoundError, match="is not a dfq-sam OpenVINO export"):
        OVSamPredictor(tmp_path)
