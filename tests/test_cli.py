import subprocess
import sys

from dfq_sam_plugin.cli import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "dfq_sam_plugin.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("evaluate", "demo"):
        assert cmd in out.stdout


def test_missing_checkpoint_is_one_line_error(capsys, tmp_path):
    code = main(["evaluate", "--model", "vit_b", "--checkpoint", str(tmp_path / "missing.pth")])
    assert code == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_benchmark_volume_reports_slices_per_second(capsys, int8_export):
    """`dfq-sam benchmark --volume`: torch FP32 first (the reference), then an OpenVINO export, every 40th
    axial slice of the MNI T1; the JSON rows carry the speed and the mask quality."""
    import json

    assert main(["benchmark", "--volume", "axial", "--stride", "40", "--torch", "--ir", str(int8_export),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["runtime"] for r in rows] == ["torch fp32", "openvino int8"]
    assert rows[0]["slices"] == rows[1]["slices"] >= 3 and rows[0]["fidelity"] == 1.0
    assert all(r["slices_per_s"] > 0 for r in rows) and rows[1]["fidelity"] > 0.8, rows
    assert main(["benchmark", "--volume", "axial"]) == 2
    assert "--volume needs runtimes" in capsys.readouterr().err
