"""Scale reparameterization (RepQ-ViT math, docs/architecture.md#reparameterization): backend-free, used by the NNCF and Brevitas flows."""

from .depthwise import EqualizedDepthwise, find_depthwise, unwrap_depthwise, wrap_depthwise
from .model import PadCompensation, Reparameterization, add_pad_compensation, find_pairs, reparameterize, undo
from .scale import ChannelQuantParams, Fold, apply_fold, channel_params, fold_params, undo_fold

__all__ = ["ChannelQuantParams", "EqualizedDepthwise", "find_depthwise", "unwrap_depthwise", "wrap_depthwise", "add_pad_compensation", "Fold", "PadCompensation", "Reparameterization", "apply_fold", "channel_params",
           "find_pairs", "fold_params", "reparameterize", "undo", "undo_fold"]
