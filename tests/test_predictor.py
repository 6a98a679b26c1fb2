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


_BLOCK_TOOLCHAIN = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):  # an edge install: none of the toolchain extra is importable
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
"""


def test_edge_install_runs_the_predictor_and_verify_without_the_toolchain(int8_export):
    """What `pip install dfq-sam-plugin` (no [toolchain]) gives an edge box: OVSamPredictor segments and
    `dfq-sam verify` checks an export with torch, NNCF, Brevitas, segment-anything, datasets... unimportable; a
    toolchain command says which extra to install instead of a traceback."""
    from dfq_sam_plugin.cli import TOOLCHAIN

    block = _BLOCK_TOOLCHAIN.format(blocked=sorted(TOOLCHAIN))
    code = block + f"""
import numpy as np
from dfq_sam_plugin.runtime import OVSamPredictor
from dfq_sam_plugin.cli import main
pred = OVSamPredictor({str(int8_export)!r}, policy="int8")
masks = pred.predict(np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8), np.array([[5, 5, 60, 50]]))
print("masks", masks.shape, masks.dtype)
print("verify", main(["verify", "--ir", {str(int8_export)!r}]))
print("evaluate", main(["evaluate", "--sets", "nuclei"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-3:] == ["masks (1, 64, 80) bool", "verify 0", "evaluate 2"], out.stdout[-2000:]
    assert "pip install 'dfq-sam-plugin[toolchain]'" in " ".join(out.stderr.split()), out.stderr[-1000:]


def test_shipped_export_stores_its_float_constants_as_fp16(int8_export):
    """The shipped distilled export stores its float constants as FP16, like the other CPU exports (half their
    bytes): the decoder's, and the INT8 encoder's float ones (MLP fc2 weights, attention biases) too, which
    ``save_model(compress_to_fp16=True)`` leaves f32 in a quantized IR; its INT8 weights stay INT8."""
    import openvino as ov

    from dfq_sam_plugin.export.openvino import read_manifest
    from dfq_sam_plugin.export.packaged import PACKAGED

    def large_constants(xml):
        return {op.get_element_type().get_type_name() for op in ov.Core().read_model(xml).get_ordered_ops()
                if op.get_type_name() == "Constant" and op.get_byte_size() > 16384}

    assert large_constants(int8_export / "decoder.xml") == {"f16"}
    assert large_constants(int8_export / "encoder.xml") == {"f16", "i8"}
    assert "f32" in large_constants(PACKAGED / "litemedsam" / "encoder.xml")  # what the package ships
    assert read_manifest(int8_export)["fp16_storage"] is True


def _slices():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (96, 120), dtype=np.uint8) for _ in range(3)]
    boxes = [np.array([[5, 5, 60, 50]]), np.array([[10, 20, 90, 80], [30, 10, 100, 60], [0, 0, 40, 40]]),
             np.array([[20, 20, 70, 90], [50, 5, 110, 60]])]
    return images, boxes


def test_predict_many_and_predict_volume_match_predict(predictor, int8_export):
    """Both runtimes: the batch API gives predict's masks (OpenVINO: THROUGHPUT-hint requests, encoder and decoder
    overlapped; INT8 kernels may order sums differently there, so agreement, not bit equality), volumes skip
    slices without boxes, and bad input is refused before any inference."""
    from dfq_sam_plugin.eval.metrics import dice
    from dfq_sam_plugin.runtime import OVSamPredictor

    images, boxes = _slices()
    ov = OVSamPredictor(int8_export)
    for runtime in (predictor, ov):
        single = [runtime.predict(im, b) for im, b in zip(images, boxes)]
        many = runtime.predict_many(images, boxes)
        assert [m.shape for m in many] == [s.shape for s in single]
        agreement = np.mean([dice(m, s) for ms, ss in zip(many, single) for m, s in zip(ms, ss)])
        assert agreement == 1.0 if runtime is predictor else agreement > 0.97, agreement
        volume = runtime.predict_volume(np.stack([images[0], images[2], images[1]]), {0: boxes[0], 2: boxes[1]})
        assert [v.shape for v in volume] == [(1, 96, 120), (0, 96, 120), (3, 96, 120)]
        assert np.array_equal(volume[0], many[0]) or runtime is ov
    with pytest.raises(ValueError, match="image 1: boxes is empty"):
        ov.predict_many(images[:2], [boxes[0], np.zeros((0, 4))])
    with pytest.raises(ValueError, match="2 images but 1 box arrays"):
        predictor.predict_many(images[:2], boxes[:1])
    with pytest.raises(ValueError, match=r"slices \[5\] outside"):
        predictor.predict_volume(np.stack(images[:1]), {5: boxes[0]})
