"""Closed-form block compensation (dfq_sam_plugin.distill.compensate): each fitted correction lowers its block's
error on the synthetic inputs it was fitted on, an exact student gets none, the ridge shrinks it, and a compensated
Brevitas student saves and loads (tests/test_brevitas.py, the training-flow test)."""

import copy

import pytest
import torch
from test_distill import _data, _student

from dfq_sam_plugin.distill.compensate import BlockCompensator, CompensateConfig, Compensated, channel_dim


@pytest.fixture(scope="module")
def short_sam(tiny_sam):
    """tiny_sam with its first three of twelve blocks (windowed and global attention both stay)."""
    from dataclasses import replace

    model = copy.deepcopy(tiny_sam.model)
    model.image_encoder.blocks = model.image_encoder.blocks[:3]
    return replace(tiny_sam, model=model)


def _inputs(sam):
    return sam.spec.normalise(_data()[0].expand(-1, 3, -1, -1))


def _corrections(encoder):
    return {name: m for name, m in encoder.named_modules() if isinstance(m, Compensated)}


@pytest.mark.parametrize("mode", ["linear", "channel"])
def test_each_correction_lowers_its_block_error_and_the_output_error(short_sam, mode):
    teacher = copy.deepcopy(short_sam.model.image_encoder)
    student = _student(short_sam)
    result = BlockCompensator(teacher, student, _inputs(short_sam), CompensateConfig(mode=mode, ridge=0.01,
                                                                                    batch_size=2)).run()
    units = {u["name"]: u for u in result.units}
    assert "skipped" in units["patch_embed"] and "skipped" in units["neck"]  # shape-changing units get none
    fitted = [u for u in result.units if "before" in u and not u.get("reverted")]
    assert len(fitted) == 3 and all(u["after"] < u["before"] for u in fitted)
    assert result.output_after < result.output_before  # the neck (not compensated) keeps its own error
    assert set(_corrections(student)) == {u["name"] for u in fitted}
    c = short_sam.model.image_encoder.blocks[0].norm1.normalized_shape[0]
    assert result.parameters == (2 * c if mode == "channel" else c * c + c) * len(fitted)


def test_an_exact_student_gets_no_correction_and_the_ridge_shrinks_it(short_sam):
    teacher = copy.deepcopy(short_sam.model.image_encoder)
    exact = copy.deepcopy(teacher)
    result = BlockCompensator(teacher, exact, _inputs(short_sam), CompensateConfig(batch_size=2)).run()
    assert not _corrections(exact) and result.output_after == result.output_before == 0.0

    sizes = {}
    for ridge in (0.01, 1e4):
        student = _student(short_sam)
        cfg = CompensateConfig(ridge=ridge, batch_size=2, units=r"^blocks\.1$")
        BlockCompensator(teacher, student, _inputs(short_sam), cfg).run()
        sizes[ridge] = sum(float(m.weight.norm()) for m in _corrections(student).values())
    assert 0 < sizes[1e4] < 0.01 * sizes[0.01]
    with pytest.raises(ValueError, match="compensation mode"):
        CompensateConfig(mode="full")


def test_channel_axis_follows_the_block_layout(litemedsam):
    enc = litemedsam.model.image_encoder
    assert channel_dim(enc.layers[0].blocks[0], torch.zeros(1, 64, 8, 8)) == 1  # MBConv: (B, C, H, W)
    assert channel_dim(enc.layers[1].blocks[0], torch.zeros(1, 16, 128)) == -1  # TinyViT block: tokens
    vit_block = torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 8))
    assert channel_dim(vit_block, torch.zeros(1, 4, 4, 8)) == -1  # SAM ViT: (B, H, W, C)
