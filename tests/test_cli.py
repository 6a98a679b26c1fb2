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
