"""Latency and throughput of an export folder's IRs through OpenVINO's own ``benchmark_app``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..export.openvino import read_manifest


@dataclass
class BenchmarkResult:
    ir: str
    part: str  # encoder | decoder
    hint: str  # latency | throughput
    precision: str  # default | f32 (INFERENCE_PRECISION_HINT)
    median_ms: float | None
    throughput_fps: float | None
    device: str
    command: str

    def to_dict(self) -> dict:
        return asdict(self)


def _benchmark_app() -> str:
    found = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(found).exists():
        raise FileNotFoundError("benchmark_app not found: it ships with the openvino wheel (pip install openvino)")
    return found


def run_benchmark_app(xml: Path, device: str = "CPU", hint: str = "latency", niter: int | None = 20,
                      seconds: int | None = None, precision: str = "default") -> tuple[float | None, float | None, str]:
    cmd = [_benchmark_app(), "-m", str(xml), "-d", device, "-hint", hint]
    cmd += ["-niter", str(niter)] if niter else ["-t", str(seconds or 10)]
    if precision != "default":
        cmd += ["-infer_precision", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"benchmark_app failed on {xml} (exit {proc.returncode}): " + " | ".join(tail))
    median = re.search(r"Median:\s+([\d.]+)\s*ms", proc.stdout)
    fps = re.search(r"Throughput:\s+([\d.]+)\s*FPS", proc.stdout)
    return (float(median.group(1)) if median else None, float(fps.group(1)) if fps else None, " ".join(cmd[1:]))


def benchmark_export(folder: str | Path, device: str = "CPU", hints: tuple[str, ...] = ("latency",),
                     niter: int | None = 20, seconds: int | None = None, parts: tuple[str, ...] = ("encoder", "decoder"),
                     float_precisions: tuple[str, ...] | None = None) -> list[BenchmarkResult]:
    """Encoder and decoder of one export; float IRs also with ``INFERENCE_PRECISION_HINT=f32`` (on AMX CPUs
    OpenVINO otherwise runs "FP32" IRs in bf16). ``float_precisions`` defaults to both where the CPU has a
    bf16 default (OpenVINO's capabilities list BF16: AMX / avx512_bf16), else ``("default",)`` (the default *is* f32 there)."""
    if float_precisions is None:
        from ..cpu import cpu_class

        float_precisions = ("default", "f32") if cpu_class().bf16_default else ("default",)
    from ..export.openvino import candidates_of

    folder = Path(folder)
    manifest = read_manifest(folder)
    results = []
    for part in parts:
        if part == "encoder":  # every encoder candidate the export carries; INT8 ones at the default precision
            many = len(candidates_of(manifest)) > 1
            runs = [(f"encoder:{name}" if many else "encoder", c["xml"], c["kind"] == "int8")
                    for name, c in candidates_of(manifest).items()]
        else:
            runs = [(part, f"{part}.xml", bool(manifest.get(f"{part}_int8")))]
        for label, xml, int8 in runs:
            precisions = ["default"] if int8 else list(float_precisions)
            for hint in hints:
                for precision in precisions:
                    median, fps, cmd = run_benchmark_app(folder / xml, device, hint, niter, seconds, precision)
                    results.append(BenchmarkResult(str(folder), label, hint, precision, median, fps, device, cmd))
    return results
