"""Closed-form block compensation (dfq_sam_plugin.distill.compensate): each fitted correction lowers its block's
error on the synthetic inputs it was fitted on, an exact student gets none, the ridge shrinks it, and a compensated
Brevitas student saves and loads (tests/test_brevitas.py, the training-flow test)."""

import copy

import numpy as np
import pytest
import torch
from test_distill import _data, _student

from dfq_sam_plugin.distill.compensate import (
    BlockCompensator,
    CompensateConfig,
    Compensated,
    channel_dim,
    output_channel_dim,
    restore_wrappers,
)


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


def test_reshaping_units_are_corrected_from_their_own_output(short_sam):
    """``reshaping``: the patch embedding and the neck (whose output is the encoder's) get a linear correction of
    their own output (C_out x C_out), each lowers its unit's error, and a saved student loads back with them."""
    teacher = copy.deepcopy(short_sam.model.image_encoder)
    student = _student(short_sam)
    x = _inputs(short_sam)
    cfg = CompensateConfig(mode="linear", ridge=0.01, batch_size=2, reshaping=True)
    result = BlockCompensator(teacher, student, x, cfg).run()
    units = {u["name"]: u for u in result.units}
    for name in ("patch_embed", "neck"):
        assert "skipped" not in units[name] and units[name]["after"] < units[name]["before"], units[name]
    neck = _corrections(student)["neck"]
    assert neck.on_output and neck.weight.shape == (256, 256) and neck.channel_dim == 1
    embed = _corrections(student)["patch_embed"]  # SAM ViT's patch embedding outputs (B, H, W, C)
    assert embed.on_output and embed.channel_dim == -1 and embed.weight.shape == (768, 768)
    assert not _corrections(student)["blocks.0"].on_output
    assert result.output_after < result.output_before

    again = _student(short_sam)
    state = student.state_dict()
    assert set(restore_wrappers(again, state)) == set(_corrections(student))
    again.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again(x[:1]), student(x[:1]))


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


def test_corrections_that_raise_the_output_error_are_dropped_together():
    """Each kept correction lowers its own unit's error; if together they raise the encoder's (a student trained end
    to end, whose later blocks offset earlier errors), the result says none is kept and why."""
    from dfq_sam_plugin.distill.compensate import CompensateResult

    worse = CompensateResult(output_before=0.1, output_after=0.2, parameters=10)
    assert not worse.settle() and (worse.kept, worse.output_after, worse.output_fitted, worse.parameters) == (
        False, 0.1, 0.2, 0)
    better = CompensateResult(output_before=0.2, output_after=0.1, parameters=10)
    assert better.settle() and (better.output_after, better.parameters) == (0.1, 10)


def test_channel_axis_follows_the_block_layout(litemedsam):
    enc = litemedsam.model.image_encoder
    assert channel_dim(enc.layers[0].blocks[0], torch.zeros(1, 64, 8, 8)) == 1  # MBConv: (B, C, H, W)
    assert channel_dim(enc.layers[1].blocks[0], torch.zeros(1, 16, 128)) == -1  # TinyViT block: tokens
    vit_block = torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 8))
    assert channel_dim(vit_block, torch.zeros(1, 4, 4, 8)) == -1  # SAM ViT: (B, H, W, C)
    # outputs of the units that change the shape: tokens, neck maps (B, C, H, H), SAM ViT's patch embedding
    assert [output_channel_dim(s) for s in ((1, 256, 160), (1, 256, 64, 64), (1, 64, 64, 768))] == [-1, 1, -1]
    assert output_channel_dim((1, 8, 8, 8)) is None and output_channel_dim((1, 4, 6, 8)) is None


def test_openvino_flow_inserts_corrections_into_the_int8_ir(short_sam, tmp_path):
    """``compensate: linear`` in an OpenVINO recipe: the INT8 encoder IR from nncf.quantize gets float correction
    nodes after the blocks (SAM ViT: block 0's input found past the position-embedding add) and, with
    ``compensate_reshaping``, after the patch embedding and the neck (from their own output), each fitted one
    lowers its block's error, the IR's output error on the fit inputs falls, and the export saves, loads and runs."""
    from dfq_sam_plugin import DFQSAMDataset, cli
    from dfq_sam_plugin.backends.nncf import QuantizedSam, quantize_sam
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.runtime import OVSamPredictor

    rng = np.random.default_rng(0)
    calib = DFQSAMDataset.from_arrays(short_sam, rng.random((3, 1, 64, 64), dtype=np.float32),
                                      np.tile(np.array([[8, 8, 40, 40]], np.float32), (3, 1, 1)),
                                      provenance={"method": "test"})
    recipe = load_recipe("openvino_int8_cpu").replace(candidates=[], ignored_modules=[], compensate="linear",
                                                      compensate_ridge=0.01, compensate_reshaping=True)
    q = quantize_sam(short_sam, calib, recipe)
    report = q.report["compensate"]
    units = {u["name"]: u for u in report["units"]}
    fitted = [n for n, u in units.items() if "before" in u and not u.get("reverted")]
    # compensate_reshaping: the patch embedding and the neck (the IR's output) from their own output
    assert {"patch_embed", "blocks.0", "neck"} <= set(fitted) and all(units[n]["after"] < units[n]["before"]
                                                                       for n in fitted)
    assert report["kept"] and report["output_after"] < report["output_before"] and not report["real_data_used"]
    nodes = {op.get_friendly_name() for op in q.encoder.get_ops()}
    assert {f"dfq_compensate/{n}" for n in fitted} <= nodes
    with cli.console.capture() as said:  # what `dfq-sam quantize` prints of it
        cli._print_compensation(q.report)
    assert f"block compensation (linear): {len(fitted)} blocks" in said.get()

    loaded = QuantizedSam.load(q.save(tmp_path / "comp"), short_sam)
    assert {f"dfq_compensate/{n}" for n in fitted} <= {op.get_friendly_name() for op in loaded.encoder.get_ops()}
    masks = OVSamPredictor(tmp_path / "comp").predict(rng.random((64, 64), dtype=np.float32),
                                                      np.array([[8, 8, 40, 40]], np.float32))
    assert masks.shape[-2:] == (64, 64)


def test_compensating_an_ir_without_torch_names_says_why(short_sam):
    import openvino as ov
    import openvino.opset13 as ops

    from dfq_sam_plugin.backends.ov_compensate import compensate_ir

    x = ops.parameter([1, 3, 64, 64], ov.Type.f32)
    model = ov.Model([ops.relu(x)], [x])
    with pytest.raises(ValueError, match="no node of the IR was converted from encoder unit"):
        compensate_ir(model, short_sam.model.image_encoder, torch.zeros(1, 3, 64, 64))


def test_running_from_an_earlier_output_gives_the_whole_prefix_values_and_leaves_the_graph_as_it_was():
    """``_run_from`` (each unit's sub-model starts at the previous unit's kept output): the same values as running
    the prefix from the input; where a port also reads a tensor upstream of the cut (a skip from the input), it falls
    back to the prefix; the graph computes what it did before either call."""
    import openvino as ov
    import openvino.opset13 as ops

    from dfq_sam_plugin.backends.ov_compensate import _run, _run_from

    rng = np.random.default_rng(0)
    x = ops.parameter([1, 4, 3], np.float32)
    cut = ops.add(ops.relu(x), ops.constant(rng.random((1, 4, 3), dtype=np.float32))).output(0)
    after = ops.multiply(ops.sigmoid(cut), ops.constant(rng.random((1, 4, 3), dtype=np.float32))).output(0)
    skip = ops.add(after, x).output(0)  # reads the input past the cut
    model = ov.Model([ops.result(skip)], [x])
    core, inputs = ov.Core(), torch.from_numpy(rng.standard_normal((3, 4, 3), dtype=np.float32))  # 3 "images"
    expect_output = _run(core, model, [skip], inputs)[0]
    (cut_values,) = _run(core, model, [cut], inputs)
    prefix = _run(core, model, [cut, after], inputs)
    started = _run_from(core, model, cut, cut_values, [cut, after], inputs)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(prefix, started))
    assert torch.equal(started[0], cut_values)  # the cut itself is not recomputed
    fallback = _run_from(core, model, cut, cut_values, [skip], inputs)[0]
    assert torch.allclose(fallback, expect_output, atol=1e-6)
    assert torch.allclose(_run(core, model, [skip], inputs)[0], expect_output, atol=1e-6)  # graph restored
    assert len(cut.get_target_inputs()) == 1 and model.get_parameters()[0].get_output_size() == 1
