"""Shared by tests/ and integration_tests/: the privacy audit (a script run under ``sys.addaudithook``)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

AUDIT_PRELUDE = """
import json, os, sys
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        mode = args[1] if isinstance(args[1], str) else ""
        creates = bool(flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR)) or any(c in mode for c in "wxa+")
        opened.append([os.path.abspath(os.fsdecode(args[0])), creates])
sys.addaudithook(hook)
OUT = sys.argv[1]
"""
AUDIT_EPILOGUE = """
json.dump({"opened": opened, "weights": WEIGHTS}, open(sys.argv[2], "w"))
"""


def run_audited(script: str, out: Path, workdir: Path, inputs: tuple[Path, ...] = ()) -> list[tuple[str, bool]]:
    """Run ``script`` (it sees ``OUT``, the output folder, and must set ``WEIGHTS``, the weights file it loads) in
    a fresh interpreter under an audit hook, and assert that it opened nothing but code (the interpreter's prefixes
    and this package, its assets included: the bundled calibration set), the weights, its declared ``inputs`` (a
    synthetic calibration set, a recipe file), system tables and its output folder; returns what it opened.

    Three library side effects are named rather than hidden: Python's tempfile probe (dill calls
    tempfile.gettempdir() on import, which creates and deletes one empty file), OpenVINO's telemetry
    client id/counters under ~/intel (written when nncf is imported; never image data; opt out with
    `opt_in_out --opt_out`), and NNCF's torch backend compiling its quantization kernels into torch's
    extension cache (~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR: compiled code)."""
    import dfq_sam_plugin

    workdir.mkdir(parents=True, exist_ok=True)
    log, mpl = workdir / "opened.json", workdir / "mplconfig"
    env = {**os.environ, "MPLCONFIGDIR": str(mpl), "HF_DATASETS_CACHE": str(workdir / "hf")}
    done = subprocess.run([sys.executable, "-c", AUDIT_PRELUDE + script + AUDIT_EPILOGUE, str(out), str(log)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(log.read_text())
    package = Path(dfq_sam_plugin.__file__).parent.resolve()
    code = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}] + [package]
    code.append(package.parent / "dfq_sam_plugin.egg-info")  # editable install's own metadata
    # pseudo-files, the time-zone table and the fonts matplotlib draws figures with
    system = [Path("/dev"), Path("/proc"), Path("/sys"), Path("/usr/share/zoneinfo"), Path("/usr/share/fonts")]
    weights = Path(record["weights"]).resolve()
    allowed_inputs = [Path(p).resolve() for p in inputs]
    telemetry = Path.home() / "intel"
    kernels = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    probe_dir = Path(tempfile.gettempdir()).resolve()
    reads_outside, writes_outside = [], []
    for path, creates in record["opened"]:
        if Path(path).name.startswith("__editable__."):  # an editable install's import-hook pseudo path
            continue
        rp = Path(path).resolve()
        if rp in (weights, log.resolve()) or rp.is_relative_to(Path(out).resolve()) or rp.is_relative_to(
                mpl.resolve()):
            continue
        if any(rp.is_relative_to(a) for a in system) or rp.is_relative_to(kernels.resolve()):
            continue
        if creates:
            if not (rp.is_relative_to(telemetry) or rp.parent == probe_dir):
                writes_outside.append(path)
        elif not (any(rp.is_relative_to(a) for a in code + allowed_inputs) or rp.is_relative_to(telemetry)):
            reads_outside.append(path)
    assert weights in [Path(p).resolve() for p, _ in record["opened"]], "the weights must be read"
    assert not reads_outside, f"files read outside code/weights/inputs/output: {reads_outside[:10]}"
    assert not writes_outside, f"files written outside the output folder: {writes_outside[:10]}"
    return record["opened"]


@pytest.fixture(scope="session")
def audited():
    """``run_audited`` for fixtures of any scope (they pass their own work folder)."""
    return run_audited


@pytest.fixture
def privacy_audit(tmp_path):
    """``audit(script, out)``: ``run_audited`` with this test's temporary folder."""
    return lambda script, out, inputs=(): run_audited(script, out, tmp_path, inputs)
