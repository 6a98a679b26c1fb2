"""Encoder candidates in one export, chosen on the box: the pure selection policy, and a real two-candidate
OpenVINO export that loads, measures, picks, caches and refuses a damaged candidate."""

import json

import numpy as np
import pytest

from dfq_sam_plugin.runtime.selection import Measured, choose

# RESULTS-measured classes: (name, encoder ms, real FP-fidelity at the CPU's default precision, MiB)
AMX_2CORE = [Measured("int8", 163.7, 0.947, 10.6), Measured("float", 136.5, 0.968, 13.2)]  # §17, issue #37
VNNI_EPYC = [Measured("int8", 100 / 1.246, 0.943, 10.6), Measured("float", 100.0, 0.967, 13.2)]  # §15 (bf16)
AVX2_EPYC = [Measured("int8_weights", 100 / 1.04, 0.970, 10.6), Measured("float", 100.0, 1.0, 13.2)]  # §11 (f32)


@pytest.mark.parametrize("measured,expected", [(AMX_2CORE, "float"), (VNNI_EPYC, "int8"), (AVX2_EPYC, "float")])
def test_fastest_faithful_picks_what_results_measured(measured, expected):
    choice = choose(measured)
    assert choice.name == expected, choice.reason
    assert "within 0.03" in choice.reason


def test_policies_and_tie_rules():
    m = [Measured("a", 100.0, 0.99, 20.0), Measured("b", 97.0, 0.98, 10.0), Measured("c", 60.0, 0.90, 15.0)]
    assert choose(m).name == "a"  # b is within tolerance but only 3 % faster: noise does not trade fidelity
    assert choose(m, noise=0.0).name == "b"
    assert choose(m, tolerance=0.1).name == "c"
    assert choose(m, "fastest").name == "c"
    assert choose(m, "smallest").name == "b"
    assert choose(m, "most_faithful").name == "a"
    assert choose(m, "c").reason.startswith("named by the user")
    with pytest.raises(ValueError, match="policy must be one of"):
        choose(m, "quickest")
    with pytest.raises(ValueError, match="no candidate"):
        choose([])


@pytest.fixture(scope="module")
def two_candidates(short_sam, tmp_path_factory):
    """A tiny three-block SAM ViT export with the float encoder (primary) and an INT8-weight one, plus its probe."""
    from dfq_sam_plugin.backends.nncf import compress_weights
    from dfq_sam_plugin.data.dataset import DFQSAMDataset
    from dfq_sam_plugin.export.openvino import convert_decoder, convert_encoder, save_export
    from dfq_sam_plugin.export.probe import make_probe
    from dfq_sam_plugin.recipes import load_recipe

    g = np.random.default_rng(0)
    calib = DFQSAMDataset.from_arrays(short_sam, g.random((3, 1, 64, 64), np.float32),
                                      g.random((3, 2, 4), np.float32) * 60, provenance={"method": "test"})
    fp = convert_encoder(short_sam.model.image_encoder, 64)
    weights = compress_weights(fp.clone(), {**load_recipe("openvino_int8_cpu_avx2"), "ignored_modules": []})
    decoder = convert_decoder(short_sam.model, short_sam.spec.embed_shape, 2)
    folder = tmp_path_factory.mktemp("cand") / "export"
    probe = make_probe(short_sam, calib, images=2, boxes_per_image=3)
    save_export(folder, fp, decoder, short_sam.spec, {"real_data_used": False, "method": "test"}, {"name": "t"},
                candidates={"int8_weights": weights}, probe=probe, fp16_storage=True)
    return folder


def test_export_records_candidates_probe_and_export_time_fidelity(two_candidates):
    manifest = json.loads((two_candidates / "manifest.json").read_text())
    assert manifest["primary"] == "float" and set(manifest["candidates"]) == {"float", "int8_weights"}
    assert manifest["candidates"]["int8_weights"]["xml"] == "encoder.int8_weights.xml"
    assert {"probe.npz", "encoder.int8_weights.bin", "decoder.bin"} <= set(manifest["files"])
    for c in manifest["candidates"].values():
        assert 0 <= c["export_fidelity"]["f32"] <= 1 and c["mib"] > 0
    # the float encoder agrees with the torch FP masks it was probed against (FP16 storage only)
    assert manifest["candidates"]["float"]["export_fidelity"]["f32"] > 0.95
    import openvino as ov

    from dfq_sam_plugin.runtime.candidates import measuring_box

    assert all(c["fidelity_measured_on"] == measuring_box(ov.Core()) for c in manifest["candidates"].values())


def test_the_exporting_cpu_starts_the_predictor_without_measuring(two_candidates, tmp_path):
    """The export measured the candidates as the predictor does (default config, timed): a predictor opened on the
    same CPU finds that in the cache and measures nothing; the default precision's fidelity is the export's."""
    import shutil

    from dfq_sam_plugin.runtime import OVSamPredictor

    folder = tmp_path / "fresh"
    shutil.copytree(two_candidates, folder, ignore=shutil.ignore_patterns("selection_cache.json"))
    (folder / "selection_cache.json").write_text((two_candidates / "selection_cache.json").read_text())
    [entry] = json.loads((folder / "selection_cache.json").read_text())["entries"]
    assert entry["key"]["config"] == {} and all(m["ms"] > 0 for m in entry["measured"].values())
    pred = OVSamPredictor(folder)
    assert pred.measured == entry["measured"] and not hasattr(pred, "cache_path")  # read, not measured
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, m in pred.measured.items():
        assert manifest["candidates"][name]["export_fidelity"][m["precision"]] == round(m["fidelity"], 5)


def test_resaving_a_loaded_export_reuses_its_fidelity_only_where_it_still_holds(two_candidates, short_sam, tmp_path):
    """Byte-identical candidates measured on this CPU keep the loaded manifest's figures (a sentinel shows it);
    a figure recorded on another CPU is measured again."""
    from dfq_sam_plugin.backends.nncf import QuantizedSam

    q = QuantizedSam.load(two_candidates, short_sam)
    q.loaded_from["candidates"]["float"]["export_fidelity"] = {"f32": 0.123}
    q.loaded_from["candidates"]["int8_weights"]["fidelity_measured_on"] = {"cpu": "another", "openvino": "x"}
    manifest = json.loads((q.save(tmp_path / "again") / "manifest.json").read_text())
    original = json.loads((two_candidates / "manifest.json").read_text())
    assert manifest["candidates"]["float"]["export_fidelity"] == {"f32": 0.123}
    assert manifest["candidates"]["int8_weights"]["export_fidelity"] == original["candidates"]["int8_weights"][
        "export_fidelity"]
    assert manifest["candidates"]["int8_weights"]["fidelity_measured_on"] != {"cpu": "another", "openvino": "x"}


def test_predictor_measures_picks_caches_and_equals_the_named_candidate(two_candidates):
    from dfq_sam_plugin.runtime import OVSamPredictor

    pred = OVSamPredictor(two_candidates)
    assert pred.candidate in ("float", "int8_weights")
    assert set(pred.measured) == {"float", "int8_weights"} and (two_candidates / "selection_cache.json").exists()
    cached = OVSamPredictor(two_candidates)
    assert cached.measured == pred.measured  # read back, not measured again (timings would differ)
    again = OVSamPredictor(two_candidates, cache=False)
    assert again.measured["float"]["ms"] != pred.measured["float"]["ms"]
    assert OVSamPredictor(two_candidates, policy="most_faithful").candidate == max(
        pred.measured, key=lambda k: pred.measured[k]["fidelity"])
    named = OVSamPredictor(two_candidates, policy="int8_weights")
    assert named.candidate == "int8_weights" and named.choice.reason == "named by the user"
    with pytest.raises(ValueError, match="policy must be one of"):
        OVSamPredictor(two_candidates, policy="int4")


def test_a_candidate_whose_hash_fails_is_left_out_or_refused(two_candidates, tmp_path):
    import shutil

    from dfq_sam_plugin.integrity import ExportIntegrityError
    from dfq_sam_plugin.runtime import OVSamPredictor

    broken = tmp_path / "broken"
    shutil.copytree(two_candidates, broken)
    data = bytearray((broken / "encoder.int8_weights.bin").read_bytes())
    data[100] ^= 0xFF
    (broken / "encoder.int8_weights.bin").write_bytes(bytes(data))
    pred = OVSamPredictor(broken)
    assert pred.candidate == "float" and "int8_weights" in pred.rejected
    assert "sha256 differs" in pred.rejected["int8_weights"][0]
    with pytest.raises(ExportIntegrityError, match="encoder.int8_weights.bin"):
        OVSamPredictor(broken, policy="int8_weights")
    (broken / "decoder.bin").write_bytes(b"x")  # a shared file: the whole export is refused
    with pytest.raises(ExportIntegrityError, match="decoder.bin"):
        OVSamPredictor(broken)


def test_set_image_then_predict_equals_the_one_shot_path_and_returns_iou(two_candidates, short_sam):
    from dfq_sam_plugin.runtime import OVSamPredictor, SamBoxPredictor

    image = np.random.default_rng(3).integers(0, 255, (80, 100), dtype=np.uint8)
    boxes = np.array([[5, 5, 40, 50], [10, 20, 90, 70], [0, 0, 99, 79]])
    for pred in (OVSamPredictor(two_candidates, policy="float"), SamBoxPredictor(short_sam)):
        one_shot = pred.predict(image, boxes)
        with pytest.raises(RuntimeError, match="set_image"):
            pred.predict(boxes)
        pred.set_image(image)
        masks, iou = pred.predict(boxes)
        assert np.array_equal(masks, one_shot)
        assert iou.shape == (3,) and iou.dtype == np.float32 and np.isfinite(iou).all()
        masks2, _ = pred.predict(boxes[:1])  # another prompt, same image, no re-encoding
        assert np.array_equal(masks2[0], one_shot[0])
        with pytest.raises(ValueError, match="multimask_output"):
            pred.predict(boxes, multimask_output=True)


def test_pinned_precision_variants_are_named_configured_and_dropped_where_they_add_nothing():
    from dfq_sam_plugin.runtime.candidates import at_precisions

    cands = {"float": {"xml": "encoder.xml", "bin": "encoder.bin"}, "int8": {"xml": "e8.xml", "bin": "e8.bin"}}
    amx = at_precisions(cands, ("default", "f32"), "bf16")
    assert list(amx) == ["float", "float@f32", "int8", "int8@f32"]
    assert amx["int8@f32"] == {**cands["int8"], "config": {"INFERENCE_PRECISION_HINT": "f32"}}
    assert "config" not in amx["int8"]
    assert at_precisions(cands, ("default", "f32"), "f32") == cands  # f32 is this box's default: same models
    assert list(at_precisions(cands, ("f32",), "bf16")) == ["float@f32", "int8@f32"]
    assert list(at_precisions(cands, ("f32",), "f32")) == ["float", "int8"]
    with pytest.raises(ValueError, match="precisions must be some of"):
        at_precisions(cands, ("fp64",), "f32")


def test_predictor_weighs_pinned_precisions_and_runs_the_pinned_variant_it_picks(two_candidates):
    """With precisions default + f32 the box measures each candidate at both (where its default is not f32), in a
    cache entry of their own; a pinned variant runs encoder and decoder at f32, exactly as a predictor pinned as a
    whole does."""
    import openvino as ov

    from dfq_sam_plugin.runtime import OVSamPredictor
    from dfq_sam_plugin.runtime.candidates import at_precisions, default_precision

    default = default_precision(ov.Core())
    assert default in ("f32", "bf16", "f16")
    plain = OVSamPredictor(two_candidates)
    wide = OVSamPredictor(two_candidates, precisions=("default", "f32"))
    expected = at_precisions({"float": {}, "int8_weights": {}}, ("default", "f32"), default)
    assert set(wide.measured) == set(expected)
    for name, m in wide.measured.items():
        assert m["precision"] == ("f32" if name.endswith("@f32") else default)
    # the decoder it runs is the one measured with its choice: at the choice's pin (compiled once for both)
    assert wide.decoder.get_property("INFERENCE_PRECISION_HINT").get_type_name() == wide.measured[wide.candidate][
        "precision"]
    assert OVSamPredictor(two_candidates).measured == plain.measured  # the default-only entry is still there
    entries = json.loads((two_candidates / "selection_cache.json").read_text())["entries"]
    assert sum("pinned" in e["key"] for e in entries) == (default != "f32")

    image = np.random.default_rng(5).integers(0, 255, (64, 64), dtype=np.uint8)
    boxes = np.array([[4, 4, 40, 50], [10, 12, 60, 60]])
    pinned = OVSamPredictor(two_candidates, policy="int8_weights@f32")
    # pinned as a whole, f32 is the default: the pinned name is the plain candidate
    whole = OVSamPredictor(two_candidates, policy="int8_weights@f32", config={"INFERENCE_PRECISION_HINT": "f32"})
    assert whole.candidate == "int8_weights"
    assert pinned.candidate == ("int8_weights@f32" if default != "f32" else "int8_weights")
    for model in (pinned.encoder, pinned.decoder):
        assert model.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    assert np.array_equal(pinned.predict(image, boxes), whole.predict(image, boxes))


def test_bypassing_a_quantizer_keeps_the_affine_map_folded_into_it():
    """OpenVINO folds a Multiply / Add next to a quantizer into its ranges (the neck's LayerNorm affine: per-channel
    input ranges, one output range). Taking such a quantizer out must keep that map, and only drop the rounding;
    a quantizer with equal ranges becomes its input."""
    import openvino as ov
    from openvino import opset13 as ops

    from dfq_sam_plugin.export.openvino import bypass_activation_quantizers

    rng = np.random.default_rng(0)
    lo_in = -rng.uniform(1, 3, (1, 3, 1, 1)).astype(np.float32)
    hi_in = rng.uniform(1, 3, (1, 3, 1, 1)).astype(np.float32)
    x = ops.parameter([1, 3, 4, 4], np.float32, name="x")
    folded = ops.fake_quantize(x, lo_in, hi_in, np.float32(-1.2), np.float32(1.0), 256, name="folded")
    plain = ops.fake_quantize(folded, np.float32(-1.5), np.float32(1.5), np.float32(-1.5), np.float32(1.5), 256,
                              name="plain")
    model = ov.Model([ops.relu(plain)], [x])
    assert bypass_activation_quantizers(model, r"folded|plain") == 2
    assert not [op for op in model.get_ops() if op.get_type_name() == "FakeQuantize"]
    data = rng.uniform(-1, 1, (1, 3, 4, 4)).astype(np.float32)
    scale = (1.0 + 1.2) / (hi_in - lo_in)
    expected = np.maximum(data * scale + (-1.2 - lo_in * scale), 0)
    out = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(data)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_dequantized_weights_compute_the_exact_int8_math():
    """``dequantize_weights`` folds integer weights and their decompression into f32 constants, so OpenVINO runs a
    quantized layer as its fake-quantized float math: the int32-exact INT8 result of a VNNI / AMX CPU, on any CPU.
    The weights here are chosen so that u8 x s8 pair sums pass int16 (saturating on an AVX2 CPU)."""
    import openvino as ov
    from openvino import opset13 as ops

    from dfq_sam_plugin.cpu import cpu_class
    from dfq_sam_plugin.export.openvino import dequantize_weights

    rng = np.random.default_rng(1)
    q = rng.integers(100, 128, (16, 64)).astype(np.int8) * rng.choice([-1, 1], (16, 1)).astype(np.int8)
    scale = rng.uniform(0.01, 0.02, (16, 1)).astype(np.float32)
    x = ops.parameter([2, 64], np.float32, name="x")
    act = ops.fake_quantize(x, np.float32(0), np.float32(4), np.float32(0), np.float32(4), 256)
    weights = ops.reshape(ops.multiply(ops.convert(ops.constant(q), np.float32), ops.constant(scale)), [16, 64], False)
    model = ov.Model([ops.matmul(act, weights, False, True)], [x])
    data = rng.uniform(3.5, 4.5, (2, 64)).astype(np.float32)  # most inputs at the top of the range: u8 255
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    native = ov.Core().compile_model(model, "CPU", f32)(data)[0]
    assert dequantize_weights(model) == 1
    assert not [op for op in model.get_ops() if op.get_type_name() == "Constant"
                and op.get_output_element_type(0).is_integral() and op.get_output_size() and op.get_byte_size() > 64]
    levels = np.round(np.clip(data, 0, 4) / 4 * 255) * 4 / 255
    expected = levels @ (q.astype(np.float32) * scale).T
    exact = ov.Core().compile_model(model, "CPU", f32)(data)[0]
    np.testing.assert_allclose(exact, expected, rtol=1e-5, atol=1e-4)
    if not cpu_class().int8_dot:  # AVX2: the native INT8 layer saturated, the folded one did not
        assert np.abs(native - expected).max() > 100 * np.abs(exact - expected).max()


def test_emulated_bf16_computes_what_torch_bf16_computes_and_keeps_int8_layers_exact():
    """``emulate_bf16`` rounds float tensors and float weights to bf16 and computes each operation in f32, as a bf16
    CPU does at OpenVINO's default precision. Rounding after every operation (``fusions=False``), a float MLP matches
    torch's bf16 arithmetic (up to accumulation order) far more closely than f32 does; with ``fusions`` the bias and
    the GELU are a post-op of their Linear (bias f32, one rounding after the GELU). An INT8 layer (FakeQuantize ->
    MatMul) stays on its exact grid: only its result is rounded. Integer weights must be folded first."""
    import openvino as ov
    import pytest
    import torch
    from openvino import opset13 as ops

    from dfq_sam_plugin.export.openvino import dequantize_weights, emulate_bf16, round_to_bf16

    rng = np.random.default_rng(2)
    values = rng.normal(0, 3, 10000).astype(np.float32)
    np.testing.assert_array_equal(round_to_bf16(values), torch.from_numpy(values).bfloat16().float().numpy())

    w1, w2 = rng.normal(0, 0.3, (64, 48)).astype(np.float32), rng.normal(0, 0.3, (48, 32)).astype(np.float32)
    b = rng.normal(0, 0.1, 48).astype(np.float32)
    q = rng.integers(-127, 128, (32, 16)).astype(np.int8)
    scale = np.float32(0.01)
    data = rng.normal(0, 1, (8, 64)).astype(np.float32)
    levels = rng.integers(0, 256, (8, 32)) * np.float32(8 / 255) - 4  # on the grid: bf16 rounding moves them < 1/2 step
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}

    def build():
        x, y = ops.parameter([8, 64], np.float32, name="x"), ops.parameter([8, 32], np.float32, name="y")
        hidden = ops.gelu(ops.add(ops.matmul(x, ops.constant(w1), False, False), ops.constant(b)), "erf")
        mlp = ops.matmul(hidden, ops.constant(w2), False, False)
        act = ops.fake_quantize(y, np.float32(-4), np.float32(4), np.float32(-4), np.float32(4), 256)
        weights = ops.multiply(ops.convert(ops.constant(q), np.float32), ops.constant(scale))
        return ov.Model([mlp, ops.matmul(act, weights, False, False)], [x, y])

    def run(model):
        return ov.Core().compile_model(model, "CPU", f32)([data, levels]).values()

    exact_mlp, _ = run(build())
    with pytest.raises(ValueError, match="integer weights"):
        emulate_bf16(build())
    per_op, fused = build(), build()
    for model, fusions in ((per_op, False), (fused, True)):
        assert dequantize_weights(model) == 1
        assert emulate_bf16(model, fusions=fusions) > 0
    (per_op_mlp, per_op_int8), (fused_mlp, fused_int8) = run(per_op), run(fused)

    bf = torch.bfloat16
    t = torch.nn.functional.gelu(torch.from_numpy(data).to(bf) @ torch.from_numpy(w1).to(bf) + torch.from_numpy(b).to(bf))
    t_mlp = (t @ torch.from_numpy(w2).to(bf)).float().numpy()
    assert np.abs(per_op_mlp - t_mlp).mean() < 0.2 * np.abs(exact_mlp - t_mlp).mean()
    h = torch.nn.functional.gelu(torch.from_numpy(round_to_bf16(data) @ round_to_bf16(w1) + b)).numpy()
    np.testing.assert_allclose(fused_mlp, round_to_bf16(round_to_bf16(h) @ round_to_bf16(w2)), rtol=2**-7, atol=1e-5)
    assert np.abs(fused_mlp - per_op_mlp).max() > 0
    expected = levels @ (q.astype(np.float32) * scale)  # exact weights and grid: only the result is rounded
    for out in (per_op_int8, fused_int8):
        np.testing.assert_allclose(out, round_to_bf16(expected), rtol=2**-7, atol=1e-6)
        assert not np.allclose(out, expected, rtol=1e-5, atol=1e-6)
