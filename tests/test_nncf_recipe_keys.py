"""OpenVINO recipe keys that map to NNCF parameters, checked on a tiny Conv+BN net with real OpenVINO and NNCF.

``ignored_modules``: torch module names -> OpenVINO nodes -> nncf.IgnoredScope. ``convert_model`` folds
BatchNorm into the convolution before it and renames that convolution, so a plain name pattern cannot reach
it; the module names still do. ``activation_range``: NNCF's RangeEstimatorParametersSet for activations.
"""

import numpy as np
import pytest
import torch
from torch import nn

from dfq_sam_plugin.recipes import validate


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.c(x))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 8)
        self.act = nn.GELU()
        self.body = ConvBN(8, 8)

    def forward(self, x):
        return self.body(self.act(self.stem(x)))


@pytest.fixture(scope="module")
def tiny_ov():
    import openvino as ov

    torch.manual_seed(0)
    model = Tiny().eval()
    for bn in (model.stem.bn, model.body.bn):  # non-trivial statistics, so the fold changes the weights
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return ov.convert_model(model, example_input=torch.zeros(1, 3, 16, 16), input=[1, 3, 16, 16])


def _quantized(ov_model, types=("Convolution",)) -> list:
    """The ops of ``types`` whose activation input comes from a FakeQuantize."""
    return [op for op in ov_model.get_ops() if op.get_type_name() in types
            and op.input(0).get_source_output().get_node().get_type_name() == "FakeQuantize"]


def _convs_with_quantized_input(ov_model) -> set[str]:
    """Names of the consumers (the folded BatchNorm's Add, named after the module) of quantized convolutions."""
    return {op.output(0).get_target_inputs().pop().get_node().get_friendly_name() for op in _quantized(ov_model)}


def test_module_nodes_reach_the_convolution_batchnorm_was_folded_into(tiny_ov):
    from dfq_sam_plugin.export.openvino import module_nodes

    names = module_nodes(tiny_ov, [r"^stem\."])
    types = {op.get_friendly_name(): op.get_type_name() for op in tiny_ov.get_ops()}
    assert "Convolution" in {types[n] for n in names}, names
    assert not any("body" in n for n in names)
    assert module_nodes(tiny_ov, [r"^nothing$"]) == []


def test_nncf_keeps_ignored_modules_float(tiny_ov):
    import nncf

    from dfq_sam_plugin.backends.nncf import nncf_quantize

    data = nncf.Dataset([np.random.default_rng(i).normal(size=(1, 3, 16, 16)).astype(np.float32)
                         for i in range(4)])
    base = validate({"backend": "openvino", "reparam": False, "subset_size": 4, "overflow_fix": "disable"})
    full = nncf_quantize(tiny_ov.clone(), data, base)
    kept = nncf_quantize(tiny_ov.clone(), data, {**base, "ignored_modules": [r"^stem\."]})
    # the consumer of each quantized convolution is its folded BatchNorm's Add, named after the module
    assert any("stem.bn" in n for n in _convs_with_quantized_input(full))
    quantized = _convs_with_quantized_input(kept)
    assert not any("stem.bn" in n for n in quantized) and any("body.bn" in n for n in quantized)


def _input_range(ov_model) -> float:
    """input_high of the FakeQuantize on the model input (the first convolution's activation quantizer)."""
    fq = next(op for op in ov_model.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    return float(fq.input_value(2).get_node().get_data().max())


def test_activation_range_maps_to_nncf_range_estimators(tiny_ov):
    import nncf

    from dfq_sam_plugin.backends.nncf import nncf_quantize

    # four images of growing amplitude: min/max over all of them is 4, the mean of per-image maxima 2.5 (NNCF's
    # default for a per-tensor activation quantizer)
    samples = [np.full((1, 3, 16, 16), a, np.float32) * np.sign(np.random.default_rng(a).normal(size=(1, 3, 16, 16)))
               .astype(np.float32) for a in (1, 2, 3, 4)]
    base = validate({"backend": "openvino", "reparam": False, "subset_size": 4, "overflow_fix": "disable",
                     "preset": "performance"})
    mean = _input_range(nncf_quantize(tiny_ov.clone(), nncf.Dataset(samples), base))
    full = _input_range(nncf_quantize(tiny_ov.clone(), nncf.Dataset(samples), {**base, "activation_range": "minmax"}))
    assert full == pytest.approx(4, rel=0.02) and mean == pytest.approx(2.5, rel=0.02)


def test_ignored_modules_that_match_nothing_is_a_clear_error(tiny_ov):
    import nncf

    from dfq_sam_plugin.backends.nncf import nncf_quantize

    data = nncf.Dataset([np.zeros((1, 3, 16, 16), np.float32)])
    recipe = validate({"backend": "openvino", "reparam": False, "ignored_modules": [r"^neck\."]})
    with pytest.raises(ValueError, match="'ignored_modules'.*matches no node"):
        nncf_quantize(tiny_ov.clone(), data, recipe)


def test_quantize_sam_keeps_the_stem_float_and_still_quantizes_the_decoder(short_sam):
    """The CPU recipe's ``ignored_modules`` (patch embedding, stage 0) on SAM ViT: the patch-embedding conv has no
    quantized input, the blocks do, and the decoder (whose modules the encoder patterns do not name) quantizes."""
    from dfq_sam_plugin import DFQSAMDataset
    from dfq_sam_plugin.backends.nncf import quantize_sam
    from dfq_sam_plugin.recipes import load_recipe

    rng = np.random.default_rng(0)
    calib = DFQSAMDataset.from_arrays(short_sam, rng.random((2, 1, 64, 64), dtype=np.float32),
                                      np.tile(np.array([[8, 8, 40, 40]], np.float32), (2, 1, 1)),
                                      provenance={"method": "test"})
    recipe = {**load_recipe("openvino_int8_cpu"), "reparam": False, "quantize_decoder": True,
              "candidates": []}  # not about candidates: no float encoder, no probe
    q = quantize_sam(short_sam, calib, recipe)
    quantized = {op.get_friendly_name() for op in _quantized(q.encoder, ("Convolution", "MatMul"))}
    convs = [op for op in q.encoder.get_ops() if op.get_type_name() == "Convolution"]
    assert any("patch_embed" in op.get_friendly_name() for op in convs)
    assert not any("patch_embed" in n for n in quantized) and any("blocks.0" in n for n in quantized)
    assert q.report["decoder_fake_quantize"] > 0


def test_torch_backend_refuses_sam_vit_before_any_work(short_sam):
    """NNCF's torch backend cannot export SAM ViT (its traced relative-position arithmetic gets NNCF's hooks):
    refused up front with what to use instead, not after the PTQ with a tracing error."""
    from dfq_sam_plugin import DFQSAMDataset
    from dfq_sam_plugin.backends.nncf import quantize_sam
    from dfq_sam_plugin.recipes import load_recipe

    calib = DFQSAMDataset.from_arrays(short_sam, np.zeros((1, 1, 64, 64), np.float32),
                                      np.array([[[8, 8, 40, 40]]], np.float32), provenance={"method": "test"})
    for keys in ({"nncf_backend": "torch"}, {"distill_steps": 2}):
        with pytest.raises(NotImplementedError, match="nncf_backend: openvino without distillation"):
            quantize_sam(short_sam, calib, load_recipe("openvino_int8_cpu").replace(**keys))


def test_accuracy_control_runs_on_synthetic_fidelity(short_sam, tiny_calib):
    """``accuracy_control``: nncf.quantize_with_accuracy_control with the data-free metric (no real image
    anywhere): the recipe's max_drop is met without reverting (a loose 0.5), and the INT8 encoder's synthetic
    fidelity is kept."""
    from dfq_sam_plugin.backends.nncf import quantize_sam
    from dfq_sam_plugin.recipes import load_recipe

    recipe = {**load_recipe("openvino_int8_cpu"), "reparam": False, "accuracy_control": True, "ignored_modules": [],
              "max_drop": 0.5, "validation_images": 1, "ranking_subset_size": 1,
              "candidates": []}  # not about candidates
    q = quantize_sam(short_sam, tiny_calib, recipe)
    assert q.report["encoder_fake_quantize"] > 10
    assert 0.5 <= q.report["synthetic_fidelity"] < 1.0


def test_torch_ignored_names_keep_spread_modules_separate(litemedsam):
    """ignored_modules for NNCF's torch backend: a contiguous region (the stem) is ignored whole, BatchNorm and
    GELU between its convolutions included; a pattern matching modules spread over the network (every block's
    local_conv) ignores those modules only — not the whole span from the first to the last (a bug that once
    left 6 FakeQuantize in a 'quantized' encoder)."""
    import torch

    from dfq_sam_plugin.backends.nncf import torch_ignored_names

    encoder = litemedsam.model.image_encoder.eval()
    x = torch.zeros(1, 3, 256, 256)
    stem = torch_ignored_names(encoder, x, [r"^patch_embed\.", r"^layers\.0\."])
    assert any("gelu" in n for n in stem) and any("batch_norm" in n for n in stem)
    assert not any("qkv" in n or "local_conv" in n for n in stem)
    spread = torch_ignored_names(encoder, x, ["local_conv"])
    assert len([n for n in spread if "conv2d" in n]) == 10  # one depthwise conv per TinyViT attention block
    assert all("local_conv" in n for n in spread), spread


def test_weight_compression_keeps_activations_float(short_sam, tmp_path):
    """``weight_compression: [encoder, decoder]`` (the AVX2 recipe): INT8 weights through nncf.compress_weights,
    no FakeQuantize anywhere, no calibration statistics; the export says so and runs, close to the float IRs."""
    from dfq_sam_plugin import DFQSAMDataset
    from dfq_sam_plugin.backends.nncf import export_float, quantize_sam
    from dfq_sam_plugin.eval.metrics import dice
    from dfq_sam_plugin.export.openvino import integer_weight_constants, read_manifest
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.runtime import OVSamPredictor

    rng = np.random.default_rng(0)
    calib = DFQSAMDataset.from_arrays(short_sam, rng.random((2, 1, 64, 64), dtype=np.float32),
                                      np.tile(np.array([[8, 8, 40, 40]], np.float32), (2, 1, 1)),
                                      provenance={"method": "test"})
    q = quantize_sam(short_sam, calib, load_recipe("openvino_int8_cpu_avx2").replace(candidates=[]))  # no float one
    assert q.report["encoder_fake_quantize"] == q.report["decoder_fake_quantize"] == 0 and "reparam" not in q.report
    assert integer_weight_constants(q.encoder) > 0 and integer_weight_constants(q.decoder) > 0
    folder = q.save(tmp_path / "w8")
    manifest = read_manifest(folder)
    assert manifest["encoder_int8_weights"] and manifest["decoder_int8_weights"] and not manifest["encoder_int8"]
    assert (folder / "encoder.bin").stat().st_size < 0.5 * (export_float(short_sam, tmp_path / "fp") /
                                                            "encoder.bin").stat().st_size
    image, boxes = rng.integers(0, 255, (64, 64), dtype=np.uint8), np.array([[8, 8, 40, 40], [20, 10, 60, 50]])
    a = OVSamPredictor(folder).predict(image, boxes)
    b = OVSamPredictor(tmp_path / "fp", config={"INFERENCE_PRECISION_HINT": "f32"}).predict(image, boxes)
    assert np.mean([dice(x, y) for x, y in zip(a, b)]) > 0.9
    assert load_recipe("openvino_int8_cpu_avx2")["weight_compression"] == ["encoder", "decoder"]


def test_int4_weight_compression_and_its_recipe_keys():
    """``weight_compression_mode: int4_sym`` / ``int4_asym``: 4-bit weight constants in groups of
    ``weight_compression_group_size`` input channels (NNCF keeps the last layer at INT8), outputs close to float.
    Bad modes and group sizes are refused on load."""
    import openvino as ov

    from dfq_sam_plugin.backends.nncf import compress_weights
    from dfq_sam_plugin.export.openvino import integer_weight_constants
    from dfq_sam_plugin.recipes import RecipeError, load_recipe

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 32)).eval()
    x = torch.randn(4, 64)
    recipe = {**load_recipe("openvino_int8_cpu_avx2"), "weight_compression": ["encoder"], "ignored_modules": []}
    for mode in ("int4_sym", "int4_asym"):
        fp = ov.convert_model(mlp, example_input=x)
        w4 = compress_weights(fp, validate({**recipe, "weight_compression_mode": mode,
                                            "weight_compression_group_size": 32}))
        assert integer_weight_constants(w4, ("u4", "i4")) >= 2 and integer_weight_constants(w4) >= 1, mode  # last: INT8
        out = ov.Core().compile_model(w4, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x.numpy())[0]
        ref = mlp(x).detach().numpy()
        assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max(), mode
    for key, bad in (("weight_compression_mode", "int3"), ("weight_compression_group_size", 0)):
        with pytest.raises(RecipeError, match=key):
            validate({**recipe, key: bad})


def test_data_aware_int4_weights_fit_the_calibration_inputs():
    """``weight_compression_algorithms`` run NNCF's data-aware INT4 steps on calibration inputs: GPTQ's weights give
    a smaller output error on those inputs than rounding alone; ``weight_compression_ratio`` < 1 leaves some layers
    at INT8; both keys are refused with the INT8 mode, and the algorithms without inputs."""
    import openvino as ov

    from dfq_sam_plugin.backends.nncf import compress_weights
    from dfq_sam_plugin.export.openvino import integer_weight_constants
    from dfq_sam_plugin.recipes import RecipeError, load_recipe

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 32)).eval()
    x = torch.randn(16, 64) * torch.linspace(0.1, 3, 64)  # uneven input channels: where data-aware fitting pays
    inputs = [x[i:i + 4].numpy() for i in range(0, 16, 4)]
    base = {**load_recipe("openvino_int8_cpu_avx2"), "weight_compression": ["encoder"], "ignored_modules": [],
            "weight_compression_mode": "int4_asym", "weight_compression_group_size": 32}
    ref = mlp(x).detach().numpy()

    def error(recipe, data=None):
        w4 = compress_weights(ov.convert_model(mlp, example_input=x[:4]), validate(recipe), data)
        out = np.concatenate([ov.Core().compile_model(w4, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(i)[0]
                              for i in inputs])
        return float(np.mean((out - ref) ** 2)), w4

    rounded, _ = error(base)
    fitted, _ = error({**base, "weight_compression_algorithms": ["gptq"]}, inputs)
    assert fitted < rounded
    _, mixed = error({**base, "weight_compression_ratio": 0.5})
    _, all4 = error(base)
    assert integer_weight_constants(mixed, ("u4", "i4")) < integer_weight_constants(all4, ("u4", "i4"))
    with pytest.raises(ValueError, match="calibration inputs"):
        error({**base, "weight_compression_algorithms": ["scale_estimation"]})
    for key, bad in (("weight_compression_algorithms", ["adaround"]), ("weight_compression_ratio", 0)):
        with pytest.raises(RecipeError, match=key):
            validate({**base, key: bad})
    with pytest.raises(RecipeError, match="int4 modes only"):
        validate({**base, "weight_compression_mode": "int8_asym", "weight_compression_ratio": 0.5})


def test_int8_fc2_float_candidate_is_the_int8_encoder_with_float_mlp_outputs(short_sam, tmp_path, caplog):
    """``candidates: [int8_fc2_float]`` derives from the recipe's INT8 encoder without a second PTQ: exactly one
    activation FakeQuantize less per MLP (the GELU output feeding its second Linear), every weight quantizer kept;
    it exports beside the INT8 primary and runs. An encoder without activation quantizers gets no such candidate."""
    import logging

    from dfq_sam_plugin import DFQSAMDataset
    from dfq_sam_plugin.backends.nncf import quantize_sam
    from dfq_sam_plugin.export.openvino import count_ops, read_manifest
    from dfq_sam_plugin.recipes import load_recipe
    from dfq_sam_plugin.runtime import OVSamPredictor

    rng = np.random.default_rng(0)
    calib = DFQSAMDataset.from_arrays(short_sam, rng.random((2, 1, 64, 64), dtype=np.float32),
                                      np.tile(np.array([[8, 8, 40, 40]], np.float32), (2, 1, 1)),
                                      provenance={"method": "test"})
    recipe = {**load_recipe("openvino_int8_cpu"), "reparam": False, "ignored_modules": [],
              "candidates": ["int8_fc2_float"]}
    q = quantize_sam(short_sam, calib, recipe)
    derived = q.candidates["int8_fc2_float"]

    def quantized_inputs(model, kind):  # MatMul nodes of ``kind`` whose data input comes from a FakeQuantize
        return [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul"
                and kind in op.get_friendly_name()
                and op.input_value(0).get_node().get_type_name() == "FakeQuantize"]

    blocks = len(short_sam.model.image_encoder.blocks)
    assert len(quantized_inputs(q.encoder, "mlp.lin2")) == blocks and not quantized_inputs(derived, "mlp.lin2")
    assert quantized_inputs(derived, "mlp.lin1") == quantized_inputs(q.encoder, "mlp.lin1")
    assert count_ops(q.encoder, "FakeQuantize") - count_ops(derived, "FakeQuantize") == blocks
    folder = q.save(tmp_path / "fc2")
    assert set(read_manifest(folder)["candidates"]) == {"int8", "int8_fc2_float"}
    masks = OVSamPredictor(folder, policy="int8_fc2_float").predict(rng.integers(0, 255, (64, 64), dtype=np.uint8),
                                                                   np.array([[8, 8, 40, 40]]))
    assert masks.shape == (1, 64, 64)

    with caplog.at_level(logging.WARNING, logger="dfq_sam_plugin"):
        weights_only = quantize_sam(short_sam, calib, load_recipe("openvino_int8_cpu_avx2").replace(
            candidates=["int8_fc2_float"]))
    assert weights_only.candidates == {} and weights_only.probe is None
    assert "int8_fc2_float left out" in caplog.text
