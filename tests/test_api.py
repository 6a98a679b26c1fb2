"""``dfq_sam_plugin.quantize``: one entry point that dispatches on the recipe's backend to one result type, and
``load_quantized`` that reads either kind back (tiny random SAM ViT, real NNCF / OpenVINO / Brevitas)."""

import numpy as np
import pytest

import dfq_sam_plugin as dfq
from dfq_sam_plugin.recipes import RecipeError, load_recipe


@pytest.fixture(scope="module")
def calib(tiny_sam):
    g = np.random.default_rng(0)
    return dfq.DFQSAMDataset.from_arrays(tiny_sam, g.random((2, 1, 64, 64), np.float32),
                                         g.random((2, 2, 4), np.float32) * 60, provenance={"method": "test"})


def test_one_api_dispatches_on_the_recipe_backend_and_round_trips(tiny_sam, calib, tmp_path):
    """The Brevitas half here; the OpenVINO half (LiteMedSAM, candidates and probe reloaded and saved again) is
    integration_tests/test_examples.py::test_quickstart, which runs README's five lines."""
    b = dfq.quantize(tiny_sam, calib, {**load_recipe("brevitas_w8a8"), "subset_size": 1, "export_onnx": False,
                                       "activation_range": "minmax", "reparam": False})  # the quick settings
    assert isinstance(b, dfq.QuantizationResult) and b.backend == "brevitas"
    assert b.summary()["recipe"] == "brevitas_w8a8" and b.summary()["calibration"]["method"] == "test"
    b.save(tmp_path / "bv")
    again = dfq.load_quantized(tmp_path / "bv", tiny_sam)
    assert type(again) is type(b) and again.summary()["backend"] == "brevitas"


def test_bad_input_is_refused_clearly(tiny_sam, calib, tmp_path):
    with pytest.raises(RecipeError, match="did you mean brevitas_w8a8"):
        dfq.quantize(tiny_sam, calib, "brevitas_w8a9")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dfq.load_quantized(tmp_path / "nothing", tiny_sam)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a dfq-sam OpenVINO export"):
        dfq.load_quantized(tmp_path / "empty", tiny_sam)
