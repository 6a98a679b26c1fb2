import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning, module="timm")


@pytest.fixture(scope="session")
def litemedsam():
    from dfq_sam_plugin import load_sam

    return load_sam("litemedsam")


@pytest.fixture(scope="session")
def litemedsam_calib(tmp_path_factory):
    """The must-show CLI run on this CPU, shortened to one stage: 2 LiteMedSAM images, 3 iterations."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("calib") / "litemedsam"
    subprocess.run([sys.executable, "-m", "dfq_sam_plugin.cli", "synthesize", "--model", "litemedsam",
                    "--num-images", "2", "--iterations", "3", "--stages", "1", "--batch-size", "2",
                    "--device", "cpu", "--quiet", "--out", str(out)], check=True, timeout=900)
    return out
