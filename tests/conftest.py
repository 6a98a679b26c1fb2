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


@pytest.fixture(scope="session")
def int8_export(litemedsam, tmp_path_factory):
    """The shipped distilled INT8 LiteMedSAM completed into a verified export (encoder INT8, decoder float)."""
    from dfq_sam_plugin.export.packaged import packaged_export

    return packaged_export(litemedsam, tmp_path_factory.mktemp("packaged") / "int8")


@pytest.fixture(scope="session")
def tiny_sam():
    """A random-weight SAM ViT-B at 64x64 input: exercises every code path of SAM ViT in seconds."""
    from dfq_sam_plugin import load_sam

    return load_sam("vit_b", random_init=True, img_size=64)


def first_blocks(sam, n: int):
    """``sam`` (SAM ViT) with the first ``n`` blocks of its image encoder, for tests whose subject is not the depth
    (n >= 3 keeps a global-attention block beside the windowed ones)."""
    import copy
    from dataclasses import replace

    model = copy.deepcopy(sam.model)
    model.image_encoder.blocks = model.image_encoder.blocks[:n]
    return replace(sam, model=model)


@pytest.fixture(scope="session")
def shorten():
    """``first_blocks`` for test modules (conftest is not importable by name: the root one shares it)."""
    return first_blocks


@pytest.fixture(scope="session")
def short_sam(tiny_sam):
    """tiny_sam with its first three of twelve blocks (windowed and global attention both stay)."""
    return first_blocks(tiny_sam, 3)


@pytest.fixture(scope="session")
def tiny_calib(tiny_sam):
    """Three random 64x64 calibration images with two boxes each, for tiny_sam (Brevitas flows)."""
    import numpy as np

    from dfq_sam_plugin import DFQSAMDataset

    rng = np.random.default_rng(0)
    pixels = rng.random((3, 1, 64, 64), dtype=np.float32)
    boxes = np.tile(np.array([[8, 8, 40, 40], [20, 10, 60, 50]], np.float32), (3, 1, 1))
    return DFQSAMDataset.from_arrays(tiny_sam, pixels, boxes, provenance={"method": "test"})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A state-dict file of a random SAM ViT-B at 1024 (the size `load_sam('vit_b', checkpoint=...)` builds)."""
    import torch

    from dfq_sam_plugin import load_sam

    path = tmp_path_factory.mktemp("ckpt") / "random_vit_b.pth"
    torch.save(load_sam("vit_b", random_init=True).model.state_dict(), path)
    return path
