import copy

import pytest
import torch

from dfq_sam_plugin import load_sam
from dfq_sam_plugin.reparam import PadCompensation, find_pairs, reparameterize, undo
from dfq_sam_plugin.reparam.stats import collect_ranges


def calib(spec, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = [torch.rand(1, 3, spec.img_size, spec.img_size, generator=g) for _ in range(n)]
    if spec.normalisation == "meanstd":
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (spec.pixel_mean, spec.pixel_std))
        raw = [(r * 255 - mean) / std for r in raw]
    return raw


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


# SAM ViT at 512: 32x32 tokens padded to 42x42 windows, the padded-window path of the official 1024 geometry (64
# padded to 70) at a quarter of its cost; 256 pads 16 to 28
@pytest.mark.parametrize("name,kw", [("litemedsam", {}), ("vit_b", {"random_init": True, "img_size": 256}),
                                     ("vit_b", {"random_init": True, "img_size": 512})])
def test_fold_is_exact_and_undoable(name, kw, litemedsam):
    sam = litemedsam if name == "litemedsam" else load_sam(name, **kw)
    enc = copy.deepcopy(sam.model.image_encoder)
    x = calib(sam.spec, 1, seed=5)[0]
    with torch.no_grad():
        ref = enc(x)
        result = reparameterize(enc, calib(sam.spec, n=1 if sam.spec.img_size >= 512 else 2))  # large: slow on CPU
        out = enc(x)
    assert len(result.folds) == (20 if name == "litemedsam" else 24)
    assert rel_err(out, ref) <= 1e-3
    with torch.no_grad():
        undo(enc, result)
        back = enc(x)
    assert rel_err(back, ref) <= 1e-3
    assert not any(isinstance(m, PadCompensation) for m in enc.modules())


def test_every_channel_shares_one_grid_after_the_fold(litemedsam):
    enc = copy.deepcopy(litemedsam.model.image_encoder)
    data = calib(litemedsam.spec)
    result = reparameterize(enc, data)
    pairs = find_pairs(enc)
    ranges = collect_ranges(enc, {p.name: p.norm for p in pairs}, data)
    for p in pairs:
        f = result.folds[p.name]
        lo, hi = -f.tensor_scale * f.tensor_zero_point, f.tensor_scale * (2**8 - 1 - f.tensor_zero_point)
        tol = 0.5 * f.tensor_scale + 1e-6  # zero points are rounded to the grid: half a step
        assert (ranges[p.name].min >= lo - tol).all() and (ranges[p.name].max <= hi + tol).all(), p.name
    assert result.summary()["max_channel_scale_ratio"] > 100  # LiteMedSAM's channels really differ


def test_sam_vit_window_padding_needs_compensation():
    sam = load_sam("vit_b", random_init=True, img_size=256)  # 16x16 tokens, 14x14 windows: padded
    enc = sam.model.image_encoder
    x = calib(sam.spec, 1, seed=3)[0]
    with torch.no_grad():
        ref = enc(x)
        reparameterize(enc, calib(sam.spec))
        assert rel_err(enc(x), ref) <= 1e-3
        for blk in enc.blocks:  # drop the compensation: padded tokens become W'0 + c' != c
            if isinstance(blk.attn, PadCompensation):
                blk.attn = blk.attn.attn
        assert rel_err(enc(x), ref) > 1e-3


def test_twice_and_foreign_encoders_are_refused(litemedsam):
    enc = copy.deepcopy(load_sam("vit_b", random_init=True, img_size=256).model.image_encoder)
    reparameterize(enc, calib(load_sam("vit_b", random_init=True, img_size=256).spec, 1))
    with pytest.raises(ValueError, match="already reparameterized"):
        reparameterize(enc, [torch.zeros(1, 3, 256, 256)])
    with pytest.raises(ValueError, match="no LayerNorm -> Linear pairs"):
        reparameterize(torch.nn.Sequential(torch.nn.Linear(2, 2)), [torch.zeros(1, 2)])


def test_partial_strength_is_exact_and_leaves_part_of_the_spread(litemedsam):
    enc_full = copy.deepcopy(litemedsam.model.image_encoder)
    enc_half = copy.deepcopy(litemedsam.model.image_encoder)
    data, x = calib(litemedsam.spec), calib(litemedsam.spec, 1, seed=7)[0]
    with torch.no_grad():
        ref = litemedsam.model.image_encoder(x)
        full = reparameterize(enc_full, data)
        half = reparameterize(enc_half, data, strength=0.5)
        assert rel_err(enc_half(x), ref) <= 1e-3
    ratio = full.summary()["max_channel_scale_ratio"]
    assert half.summary()["max_channel_scale_ratio"] == pytest.approx(ratio**0.5, rel=1e-6)
    with pytest.raises(ValueError, match="strength must be in"):
        reparameterize(copy.deepcopy(litemedsam.model.image_encoder), data, strength=1.5)


def test_window_padding_compensation_adds_no_padding_shaped_constant():
    """The compensation is a (C,) add: the OpenVINO IR of a reparameterized ViT-B holds no more float
    constants than the encoder has parameters (an earlier mask * value fill folded into a (windows*ws*ws, C)
    constant per windowed block: +4.8 M floats at 256 input, +30 M at 1024)."""
    import numpy as np

    from dfq_sam_plugin.export.openvino import convert_encoder

    sam = load_sam("vit_b", random_init=True, img_size=256)
    enc = sam.model.image_encoder
    reparameterize(enc, calib(sam.spec, 1))
    assert sum(isinstance(m, PadCompensation) for m in enc.modules()) == 8  # the 8 windowed blocks
    floats = sum(int(np.prod(list(op.get_output_shape(0)) or [1])) for op in
                 convert_encoder(sam.model.image_encoder, sam.spec.img_size).get_ordered_ops()
                 if op.get_type_name() == "Constant" and op.get_element_type().is_real())
    params = sum(t.numel() for t in [*enc.parameters(), *enc.buffers()])
    assert floats <= params + 100_000, (floats, params)


def test_depthwise_equalization_is_exact_undoable_and_evens_the_channels(litemedsam):
    from dfq_sam_plugin.reparam import EqualizedDepthwise, find_depthwise

    enc = copy.deepcopy(litemedsam.model.image_encoder)
    data, x = calib(litemedsam.spec), calib(litemedsam.spec, 1, seed=9)[0]
    names = sorted(find_depthwise(enc))
    assert len(names) == 15 and names[0] == "layers.0.blocks.0.conv2.c"  # MBConv, PatchMerging, local_conv
    before = collect_ranges(enc, {}, data, inputs={n: m for n, m in find_depthwise(enc).items()})
    with torch.no_grad():
        ref = enc(x)
        result = reparameterize(enc, data, depthwise=True)
        assert rel_err(enc(x), ref) <= 1e-3
    assert result.summary()["depthwise_equalized"] == 15
    wrappers = {n: m for n, m in enc.named_modules() if isinstance(m, EqualizedDepthwise)}
    seen = collect_ranges(enc, {}, data, inputs={n: m.conv for n, m in wrappers.items()})
    for name in names:  # what the conv (and its input quantizer) sees: every channel has the mean width
        width_before = before[name].max.clamp_min(0) - before[name].min.clamp_max(0)
        width = seen[f"{name}"].max.clamp_min(0) - seen[f"{name}"].min.clamp_max(0)
        assert width_before.max() / width_before.min() > (20 if name == names[0] else 1.5), name
        assert torch.allclose(width, width.mean().expand_as(width), rtol=1e-3), name
    with torch.no_grad():
        undo(enc, result)
        assert rel_err(enc(x), ref) <= 1e-3
    assert not any(isinstance(m, EqualizedDepthwise) for m in enc.modules())
