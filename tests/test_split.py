"""Mixed-precision encoders (runtime.split): the encoder's first layer (@input; LiteMedSAM, SAM ViT) or LiteMedSAM's
convolutional head (@mixed) at f32, the rest at the box's default."""

import numpy as np
import pytest

from dfq_sam_plugin.runtime.candidates import at_precisions
from dfq_sam_plugin.runtime.split import HEADS, SplitEncoder, compile_encoder, split_model

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def test_head_variants_only_where_they_differ_and_the_head_is_known():
    cands = {"float": {"xml": "encoder.xml"}, "int8": {"xml": "encoder.int8.xml"}}
    heads = HEADS["litemedsam"]
    amx = at_precisions(cands, ("default", "input", "mixed"), "bf16", heads)
    assert list(amx) == ["float", "float@input", "float@mixed", "int8", "int8@input", "int8@mixed"]
    assert amx["int8@mixed"] == {**cands["int8"], "head": heads["mixed"]} and "config" not in amx["int8@mixed"]
    assert amx["float@input"]["head"] == heads["input"] != heads["mixed"]
    assert list(at_precisions(cands, ("default", "input", "mixed"), "f32", heads)) == ["float", "int8"]  # f32 box
    for p in ("input", "mixed"):
        with pytest.raises(ValueError, match="head"):
            at_precisions(cands, (p,), "bf16", None)  # a model family without known heads
    with pytest.raises(ValueError, match="'input'"):
        at_precisions(cands, ("input",), "bf16", {"mixed": heads["mixed"]})


@pytest.mark.parametrize("precision,channels", [("input", 32), ("mixed", 128)])
def test_the_split_pair_computes_the_whole_encoder(int8_export, precision, channels):
    import openvino as ov

    core = ov.Core()
    xml = str(int8_export / "encoder.xml")
    head, body = split_model(core.read_model(xml), HEADS["litemedsam"][precision])
    assert len(head.inputs) == 1 and len(body.inputs) == 1 and tuple(body.inputs[0].shape)[1] == channels
    x = np.random.default_rng(0).random((1, 3, 256, 256), np.float32)
    whole = core.compile_model(xml, "CPU", F32)({0: x})[0]
    h = core.compile_model(head, "CPU", F32)({0: x})[0]
    pair = core.compile_model(body, "CPU", F32)({0: h})[0]
    assert np.abs(pair - whole).max() <= 1e-4 * np.abs(whole).max()
    # the product's compiled pair (SplitEncoder: head at f32, body at the given config), on any box
    split = compile_encoder(core, xml, "CPU", F32, {"head": HEADS["litemedsam"][precision]})
    assert isinstance(split, SplitEncoder) and split.precision == "f32 head + f32"
    assert np.abs(split.create_infer_request().infer({0: x})[0] - whole).max() <= 1e-4 * np.abs(whole).max()
    if precision == "mixed":
        return
    with pytest.raises(ValueError, match="no node"):
        split_model(core.read_model(xml), "nowhere")
    # inside a residual block of stage 0 the block's input crosses the cut too: refused, not silently wrong
    with pytest.raises(ValueError, match="cannot be cut"):
        split_model(core.read_model(xml), "__module.layers.0.blocks.0.conv1.bn/aten::batch_norm/BatchNormInference")


@pytest.mark.parametrize("precision", ["input", "mixed"])
def test_predictor_runs_the_head_variants_sync_and_async(int8_export, precision):
    import openvino as ov

    from dfq_sam_plugin.eval.metrics import dice
    from dfq_sam_plugin.export.openvino import candidates_of, read_manifest
    from dfq_sam_plugin.runtime import OVSamPredictor
    from dfq_sam_plugin.runtime.candidates import default_precision

    name = next(iter(candidates_of(read_manifest(int8_export))))
    mixed = OVSamPredictor(int8_export, policy=f"{name}@{precision}")
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (200, 240), dtype=np.uint8) for _ in range(3)]
    boxes = [np.array([[20, 30, 120, 150], [60, 40, 200, 190]]) for _ in images]
    if default_precision(ov.Core()) == "f32":  # nothing to mix on an f32 box: the candidate itself ...
        assert mixed.candidate == name and not isinstance(mixed.encoder, SplitEncoder)
        if precision == "mixed":
            return
        # ... but predict_many's two-stage pipeline of a split encoder still runs here: given the head the way a
        # bf16 box gives it, f32 head + f32 body compute the whole encoder, so its masks are predict's
        one = [mixed.predict(im, b) for im, b in zip(images[:2], boxes)]
        mixed._candidate_entry = {**mixed._candidate_entry, "head": HEADS["litemedsam"][precision]}
        many = mixed.predict_many(images[:2], boxes[:2])
        assert isinstance(mixed._throughput_models()[0], SplitEncoder)
        assert np.mean([dice(m, s) for ms, ss in zip(many, one) for m, s in zip(ms, ss)]) > 0.97
        return
    plain = OVSamPredictor(int8_export, policy=name)
    assert mixed.candidate == f"{name}@{precision}" and isinstance(mixed.encoder, SplitEncoder)
    assert mixed.encoder.precision.startswith("f32 head + ")
    one = [mixed.predict(im, b) for im, b in zip(images, boxes)]
    # THROUGHPUT-hint requests may order INT8 sums differently (test_predictor): agreement, not bit equality
    many = mixed.predict_many(images, boxes)
    assert [m.shape for m in many] == [m.shape for m in one]
    assert np.mean([dice(m, s) for ms, ss in zip(many, one) for m, s in zip(ms, ss)]) > 0.97
    other = [plain.predict(im, b) for im, b in zip(images, boxes)]
    assert np.mean([dice(m, s) for ms, ss in zip(other, one) for m, s in zip(ms, ss)]) > 0.9  # only the head differs


def test_sam_vit_has_an_input_head_that_splits_every_candidate(tiny_sam, shorten, tmp_path):
    """SAM ViT's ``@input`` cut (after the patch embedding) exists in its float and its INT8 IR, and each split pair
    computes the whole encoder; it has no ``@mixed`` head."""
    import openvino as ov

    from dfq_sam_plugin import DFQSAMDataset
    from dfq_sam_plugin.backends.nncf import quantize_sam
    from dfq_sam_plugin.export.openvino import candidates_of, read_manifest
    from dfq_sam_plugin.recipes import load_recipe

    sam = shorten(tiny_sam, 3)
    g = np.random.default_rng(0)
    calib = DFQSAMDataset.from_arrays(sam, g.random((2, 1, 64, 64), np.float32),
                                      np.array([[[8, 8, 40, 40]]] * 2, np.float32))
    quantize_sam(sam, calib, {**load_recipe("openvino_int8_cpu_vnni"), "subset_size": 2}).save(tmp_path / "vit")
    assert set(HEADS[sam.spec.family]) == {"input"}
    core, x = ov.Core(), g.random((1, 3, 64, 64), np.float32)
    candidates = candidates_of(read_manifest(tmp_path / "vit"))
    assert {"float", "int8"} <= set(candidates)
    for name, c in candidates.items():
        xml = str(tmp_path / "vit" / c["xml"])
        head, body = split_model(core.read_model(xml), HEADS["sam"]["input"])
        whole = core.compile_model(xml, "CPU", F32)({0: x})[0]
        pair = core.compile_model(body, "CPU", F32)({0: core.compile_model(head, "CPU", F32)({0: x})[0]})[0]
        if name == "float":
            assert np.abs(pair - whole).max() <= 1e-4 * np.abs(whole).max()
        else:  # a random-weight INT8 ViT is chaotic: fused differently, a few activations round to the next level
            assert ((pair - whole) ** 2).sum() <= 1e-3 * (whole ** 2).sum()
