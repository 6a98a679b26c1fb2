"""Official SAM (ViT-B/L/H) from a user's checkpoint.

Built from ``segment_anything.modeling`` classes with the same hyper-parameters as
``segment_anything.build_sam`` (which we cannot call: it unpickles with ``weights_only=False`` and fixes the
input at 1024). ``img_size`` other than 1024 is allowed for random-weight models (tests, profiling).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from .checkpoint import file_sha256, load_into, read_state_dict
from .sam_model import SamModel
from .spec import SamBundle, SamSpec

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)

VIT_CONFIGS = {
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def sam_spec(family: str, img_size: int) -> SamSpec:
    return SamSpec(family=family, img_size=img_size, embed_dim=256, embed_size=img_size // 16,
                   normalisation="meanstd", pixel_mean=SAM_PIXEL_MEAN, pixel_std=SAM_PIXEL_STD)


def _prompt_and_decoder(img_size: int):
    from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    embed = img_size // 16
    prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(embed, embed),
                                   input_image_size=(img_size, img_size), mask_in_chans=16)
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
    )
    return prompt_encoder, mask_decoder


def build_sam_vit(name: str, img_size: int = 1024) -> SamModel:
    from segment_anything.modeling import ImageEncoderViT

    cfg = VIT_CONFIGS[name]
    encoder = ImageEncoderViT(
        depth=cfg["depth"], embed_dim=cfg["embed_dim"], img_size=img_size, mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=cfg["num_heads"], patch_size=16,
        qkv_bias=True, use_rel_pos=True, global_attn_indexes=cfg["global_attn_indexes"], window_size=14,
        out_chans=256,
    )
    return SamModel(encoder, *_prompt_and_decoder(img_size))


def load_segment_anything(name: str, checkpoint: str | Path | None, random_init: bool = False,
                          img_size: int = 1024) -> SamBundle:
    model = build_sam_vit(name, img_size)
    sha = None
    if not random_init:
        if checkpoint is None:
            raise ValueError(
                f"{name} weights are not bundled: pass checkpoint='/path/to/sam_{name}.pth' (the official "
                f"segment-anything release), or random_init=True for a random-weight model"
            )
        load_into(model, read_state_dict(checkpoint), name, checkpoint)
        sha = file_sha256(checkpoint)
    model.eval()
    return SamBundle(name, model, sam_spec("sam", img_size), weights_sha256=sha,
                     checkpoint=str(checkpoint) if checkpoint else None)
