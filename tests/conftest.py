import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning, module="timm")


@pytest.fixture(scope="session")
def litemedsam():
    from dfq_sam_plugin import load_sam

    return load_sam("litemedsam")


@pytest.fixture(scope="session")
def nuclei():
    from dfq_sam_plugin.eval import nuclei_set

    return nuclei_set()
