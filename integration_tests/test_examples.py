"""Every script in examples/ runs, on tiny budgets (docs/architecture.md#layers: examples a user copies must work)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str, timeout: int = 900) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=EXAMPLES.parent)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_quantize_with_nncf(tmp_path, litemedsam_calib):
    """A set made by `dfq-sam synthesize` goes to the real nncf.quantize as it is (an nncf.Dataset); the INT8
    encoder it writes runs on the set's own items."""
    out = run_example("quantize_with_nncf.py", "--calib", str(litemedsam_calib), "--subset-size", "2",
                      "--out", str(tmp_path / "enc.xml"))
    assert "real_data_used = False" in out and (tmp_path / "enc.bin").exists()
    import numpy as np
    import openvino as ov

    from dfq_sam_plugin import DFQSAMDataset

    model = ov.Core().read_model(tmp_path / "enc.xml")
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) > 20
    x = next(iter(DFQSAMDataset.load(litemedsam_calib).get_inference_data()))
    embedding = ov.Core().compile_model(model, "CPU")(x)[0]
    assert embedding.shape == (1, 256, 64, 64) and np.isfinite(embedding).all()


def test_quickstart(tmp_path, litemedsam):
    """README's five lines: one API call quantizes for this CPU, the predictor picks a candidate and segments."""
    out = run_example("quickstart.py", "--out", str(tmp_path / "q"), "--recipe",
                      "openvino_int8_cpu_avx2")  # INT8 weights + the float candidate: no calibration pass, fast
    assert "real_data_used = False" in out and "masks (1, 200, 240) bool" in out, out
    assert (tmp_path / "q" / "manifest.json").exists() and (tmp_path / "q" / "probe.npz").exists()
    # the one result type round-trips: load_quantized reads the export back (candidates, probe) and saves it again
    import numpy as np

    import dfq_sam_plugin as dfq
    from dfq_sam_plugin.integrity import verify_export

    back = dfq.load_quantized(tmp_path / "q", litemedsam)
    assert isinstance(back, dfq.QuantizationResult) and back.backend == "openvino" and set(back.candidates) == {"float"}
    assert back.summary()["calibration"]["real_data_used"] is False
    back.save(tmp_path / "q2")
    verify_export(tmp_path / "q2")
    assert np.array_equal(np.load(tmp_path / "q" / "probe.npz")["reference"],
                          np.load(tmp_path / "q2" / "probe.npz")["reference"])


def test_brevitas_recipe(tmp_path):
    out = run_example("brevitas_recipe.py", "--recipe", "recipes/brevitas_w4a4.yaml", "--subset-size", "1",
                      "--calibration-only", "--out", str(tmp_path / "w4a4"))
    assert "FP-fidelity on 8 nuclei" in out and (tmp_path / "w4a4" / "quantized_state_dict.pt").exists()


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory):
    import torch

    from dfq_sam_plugin import load_sam

    path = tmp_path_factory.mktemp("ckpt") / "random_vit_b.pth"
    torch.save(load_sam("vit_b", random_init=True).model.state_dict(), path)
    return path


def test_custom_sam_checkpoint(vit_b_checkpoint):
    # ViT-B at 1024 on a 2-core CPU: load + predict only in CI (the reparameterization part is tested in
    # tests/test_reparam.py on random ViT-B at 256 and 1024)
    out = run_example("custom_sam_checkpoint.py", "--checkpoint", str(vit_b_checkpoint), "--calib-images", "0")
    assert "vit_b@" in out and "foreground pixels" in out


def test_edge_inference(tmp_path, litemedsam):
    from dfq_sam_plugin.backends.nncf import export_float

    folder = export_float(litemedsam, tmp_path / "fp32")
    out = run_example("edge_inference.py", "--ir", str(folder))
    assert "torch imported: False" in out and "foreground pixels" in out
