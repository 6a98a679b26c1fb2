import subprocess
import sys

import numpy as np
import pytest

from dfq_sam_plugin.eval import evaluate
from dfq_sam_plugin.runtime import SamBoxPredictor


@pytest.fixture(scope="module")
def predictor(litemedsam):
    return SamBoxPredictor(litemedsam)


@pytest.mark.parametrize("image", [
    np.random.default_rng(0).integers(0, 255, (90, 130), dtype=np.uint8),
    np.random.default_rng(0).integers(0, 60000, (300, 200), dtype=np.uint16),
    np.random.default_rng(0).random((64, 64, 3)).astype(np.float32),
])
def test_predict_shapes(predictor, image):
    boxes = np.array([[5, 5, 40, 50], [10, 20, 60, 60]])
    masks = predictor.predict(image, boxes)
    assert masks.shape == (2, *image.shape[:2]) and masks.dtype == bool


@pytest.mark.parametrize("image,boxes,match", [
    (np.zeros((50, 50)), np.zeros((0, 4)), "empty"),
    (np.zeros((50, 50)), np.array([[60, 60, 80, 80]]), "outside"),
    (np.zeros((50, 50)), np.array([[10, 10, 5, 20]]), "x1 >= x0"),
    (np.zeros((50, 50)), np.array([[1, 2, 3]]), r"\(N, 4\)"),
    (np.zeros((50, 50)), np.array([[1, 2, np.nan, 4]]), "NaN"),
    (np.full((50, 50), np.nan), np.array([[1, 2, 10, 10]]), "NaN"),
    (np.zeros((2, 50, 50, 3)), np.array([[1, 2, 10, 10]]), "HxW"),
    (np.zeros((50, 50, 4)), np.array([[1, 2, 10, 10]]), "HxW"),
])
def test_bad_inputs_raise_value_error(predictor, image, boxes, match):
    with pytest.raises(ValueError, match=match):
        predictor.predict(image, boxes)


def test_fp_litemedsam_nuclei_dice(predictor, nuclei):
    report = evaluate({"fp": predictor}, [nuclei])
    r = report.results["nuclei"]["fp"]
    assert r["prompts"] == 136
    assert r["dice"] >= 0.74, r  # measured 0.7587 (MedSAM tight boxes, 4 tiles)


def test_runtime_import_does_not_import_torch():
    code = "import sys, dfq_sam_plugin.runtime, dfq_sam_plugin.models.preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
