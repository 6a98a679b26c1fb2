"""tools/device/ir_skeleton.py: an IR carried without its weights rebuilds with the same graph and every small or
integer constant intact, and a keep-all skeleton reproduces the .bin byte for byte."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "device" / "ir_skeleton.py"


def _module():
    spec = importlib.util.spec_from_file_location("ir_skeleton", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ir(folder: Path) -> Path:
    """x (1, 64, 256) -> MatMul with a 256x256 f32 weight (256 KiB: regenerated) -> + bias (1 KiB: kept) -> Reshape
    by an i64 shape constant (kept)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(1)
    x = ops.parameter([1, 64, 256], np.float32, name="x")
    w = ops.constant(rng.standard_normal((256, 256)).astype(np.float32))
    b = ops.constant(rng.standard_normal(256).astype(np.float32))
    y = ops.reshape(ops.add(ops.matmul(x, w, False, False), b), ops.constant(np.array([1, 128, 128], np.int64)), False)
    path = folder / "encoder.xml"
    ov.save_model(ov.Model([y], [x], "tiny"), path, compress_to_fp16=False)
    return path


def test_strip_and_fill(tmp_path):
    sk = _module()
    xml = _ir(tmp_path)
    original = np.fromfile(xml.with_suffix(".bin"), np.uint8)
    out = tmp_path / "skel"
    subprocess.run([sys.executable, str(SCRIPT), "strip", f"a={xml}", "--out", str(out)], check=True)
    subprocess.run([sys.executable, str(SCRIPT), "strip", f"all={xml}", "--out", str(out), "--keep-all"], check=True)
    assert (out / "a" / "encoder.kept.npz").stat().st_size < original.size // 10
    subprocess.run([sys.executable, str(SCRIPT), "fill", str(out)], check=True)

    assert np.array_equal(np.fromfile(out / "all" / "encoder.bin", np.uint8), original)
    filled = np.fromfile(out / "a" / "encoder.bin", np.uint8)
    assert filled.size == original.size and not np.array_equal(filled, original)
    consts = sk._consts(xml)
    big = [(o, s) for t, o, s in consts if s > sk.KEEP_BYTES]
    assert len(big) == 1 and all(t == "f32" for t, _, s in consts if s > sk.KEEP_BYTES)
    for etype, offset, size in consts:  # every kept constant is byte-identical, the weight is new and small-valued
        same = np.array_equal(filled[offset:offset + size], original[offset:offset + size])
        assert same == (size <= sk.KEEP_BYTES), (etype, size)
    weight = filled[big[0][0]:big[0][0] + big[0][1]].view(np.float32)
    assert np.isfinite(weight).all() and 0.01 < weight.std() < 0.03

    import openvino as ov

    model = ov.Core().compile_model(str(out / "a" / "encoder.xml"), "CPU")
    assert model(np.ones((1, 64, 256), np.float32))[0].shape == (1, 128, 128)
