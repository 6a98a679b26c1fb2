"""One torch module for every SAM family: encoder + prompt encoder + mask decoder, batched over images
and box prompts.

segment-anything's ``MaskDecoder.predict_masks`` assumes one image per call (it repeats the image
embedding once per prompt). Synthesis needs B images x K boxes in one pass, so ``decode`` runs the
decoder's own sub-modules with the embedding of image b repeated for its K prompts. ``multimask_output``
is always False (docs/architecture.md#models): only mask token 0 and its hypernetwork MLP are evaluated.
"""

from __future__ import annotations

import torch
from torch import nn


class SamModel(nn.Module):
    def __init__(self, image_encoder: nn.Module, prompt_encoder: nn.Module, mask_decoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), already pre-processed -> embeddings (B, 256, s, s)."""
        return self.image_encoder(images)

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """embeddings (B, C, h, w), boxes (B, K, 4) xyxy in model input pixels ->
        (low-res mask logits (B, K, 4h, 4w), predicted IoU (B, K))."""
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"boxes must be (B, K, 4) with B={embeddings.shape[0]} matching the embeddings; got "
                f"{tuple(boxes.shape)}"
            )
        num_images, num_boxes = boxes.shape[:2]
        pe, md = self.prompt_encoder, self.mask_decoder
        sparse, dense = pe(points=None, boxes=boxes.reshape(num_images * num_boxes, 4), masks=None)
        sparse = sparse.to(embeddings.dtype)
        dense = dense.to(embeddings.dtype)

        output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0).to(sparse.dtype)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse], dim=1)
        src = torch.repeat_interleave(embeddings, num_boxes, dim=0) + dense
        pos_src = pe.get_dense_pe().to(src.dtype).expand(src.shape[0], -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = md.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_token_out = hs[:, 1, :]
        upscaled = md.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = md.output_hypernetworks_mlps[0](mask_token_out)  # (b, c')
        b, c, h, w = upscaled.shape
        masks = torch.bmm(hyper.unsqueeze(1), upscaled.reshape(b, c, h * w)).reshape(b, h, w)
        iou = md.iou_prediction_head(iou_token_out)[:, 0]
        return masks.reshape(num_images, num_boxes, h, w), iou.reshape(num_images, num_boxes)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.encode(images), boxes)


class SamDecoder(nn.Module):
    """Prompt encoder + mask decoder of one image, the graph exported as ``decoder.xml``:
    (image_embeddings (1, C, h, w), boxes (N, 4)) -> (low-res logits (N, 4h, 4w), iou (N,))."""

    def __init__(self, sam: SamModel) -> None:
        super().__init__()
        # the decoder's own modules only: torch.jit.trace (ov.convert_model) scripts every sub-module it holds,
        # and a quantized encoder has thousands (Brevitas W8A8 LiteMedSAM decoder: 45.2 -> 11.7 s, docs/notebook/2026-12-02.md §13)
        self.sam = SamModel(nn.Identity(), sam.prompt_encoder, sam.mask_decoder)

    def forward(self, image_embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks, iou = self.sam.decode(image_embeddings, boxes.unsqueeze(0))
        return masks[0], iou[0]
