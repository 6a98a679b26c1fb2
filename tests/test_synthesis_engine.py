import numpy as np
import pytest
import torch

from dfq_sam_plugin.synthesis.config import SynthesisConfig
from dfq_sam_plugin.synthesis.engine import Synthesizer

TINY = dict(iterations=3, stages=2, batch_size=2, boxes_per_image=2, evolve_every=1)


def run(sam, **kw):
    cfg = SynthesisConfig(**{**TINY, **kw})
    return Synthesizer(sam, cfg).run_batch([0, 1])


def test_same_seed_same_pixels_other_seed_other_pixels(short_sam):
    a, b, c = run(short_sam, seed=3), run(short_sam, seed=3), run(short_sam, seed=4)
    assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.pixels, c.pixels)


def test_optimisation_lowers_the_loss_and_stays_in_range(short_sam):
    out = run(short_sam, iterations=8, stages=1, lr=0.05)
    total = out.history["total"]
    assert np.mean(total[-3:]) < np.mean(total[:3])
    assert out.pixels.min() >= 0.0 and out.pixels.max() <= 1.0
    assert out.pixels.shape == (2, 1, 64, 64) and out.masks.shape == (2, 2, 64, 64)


@pytest.mark.parametrize("method", ["psaq", "gaussian", "uniform"])
def test_baselines(short_sam, method):
    out = run(short_sam, method=method, stages=1)
    assert np.isfinite(out.pixels).all()
    if method in ("gaussian", "uniform"):
        assert out.history["total"] == []  # no optimisation
    else:
        assert np.all(out.losses["seg"] == 0) and len(out.history["pse"]) == 3


def test_nan_image_is_reinitialised_and_reported(short_sam):
    calls = {"n": 0}

    def poison(_module, _args, output):
        if not output.requires_grad:  # label-evolution forward passes run without grad
            return output
        calls["n"] += 1
        if calls["n"] == 2:  # second training step: image 1 goes NaN
            output = output.clone()
            output[1] = float("nan")
        return output

    handle = short_sam.model.image_encoder.register_forward_hook(poison)
    try:
        out = run(short_sam, stages=1, iterations=4, evolve_every=100)
    finally:
        handle.remove()
    assert out.reinitialised == [1]
    assert np.isfinite(out.pixels).all()


def test_activation_checkpointing_gives_the_same_result(short_sam):
    a = run(short_sam, stages=1, iterations=2)
    b = run(short_sam, stages=1, iterations=2, activation_checkpointing=True)
    np.testing.assert_allclose(a.pixels, b.pixels, atol=1e-5)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        SynthesisConfig(method="magic")
    with pytest.raises(ValueError, match="channels"):
        SynthesisConfig(channels=2)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        SynthesisConfig(iterations=0)


def test_litemedsam_hooks_see_every_tinyvit_attention_block(litemedsam):
    from dfq_sam_plugin.synthesis.hooks import AttentionCapture

    with AttentionCapture(litemedsam.model.image_encoder) as cap, torch.inference_mode():
        litemedsam.model.encode(torch.rand(1, 3, 256, 256))
    assert len(cap.blocks) == 10  # TinyViT layers 1..3: 2 + 6 + 2 blocks
    assert all(u.ndim == 3 for u in cap.outputs)


def test_compiled_loop_matches_eager_and_leaves_the_callers_model_alone(short_sam):
    """torch.compile's tracing of the loop (graphs, guards, the attention hooks) through the aot_eager backend:
    inductor's code generation on a cold cache took 275 s of this test on xeon-amx-2c-m207 (160 s with 3 blocks);
    its kernels are what runs on the GPU, where synthesis compiles by default."""
    eager = run(short_sam, stages=1, iterations=3, amp="off")
    compiled = run(short_sam, stages=1, iterations=3, amp="off", compile="default", compile_backend="aot_eager")
    np.testing.assert_allclose(compiled.pixels, eager.pixels, atol=2e-3)
    assert np.abs(compiled.pixels - eager.pixels).mean() < 1e-4
    for term in ("seg", "pse", "tv", "total"):
        np.testing.assert_allclose(compiled.losses[term], eager.losses[term], rtol=1e-4)
        np.testing.assert_allclose(compiled.history[term], eager.history[term], rtol=1e-4)
    # the attention hooks sit on the synthesizer's own copy of the encoder, never on the caller's
    assert not any(m._forward_pre_hooks for m in short_sam.model.image_encoder.modules())


def test_how_a_run_compiles_does_not_change_what_it_resumes(tiny_sam):
    """Compilation mode and backend change rounding, not what is optimised: a run's key ignores them (and a run
    started before ``compile_backend`` existed keeps resuming)."""
    from dfq_sam_plugin.synthesis.run import run_key

    plain = run_key(tiny_sam, SynthesisConfig(), 4)
    assert run_key(tiny_sam, SynthesisConfig(compile="default", compile_backend="aot_eager"), 4) == plain
    assert "compile_backend" not in plain["config"] and run_key(tiny_sam, SynthesisConfig(seed=1), 4) != plain


def test_compile_refuses_activation_checkpointing_and_unknown_modes():
    with pytest.raises(ValueError, match="activation_checkpointing"):
        SynthesisConfig(compile="default", activation_checkpointing=True)
    with pytest.raises(ValueError, match="compile must be one of"):
        SynthesisConfig(compile="fast")
    with pytest.raises(ValueError, match="compile_backend must be one torch.compile knows"):
        SynthesisConfig(compile="default", compile_backend="fast")
    # auto: compiled on CUDA, eager on CPU and whenever activation checkpointing is asked for
    assert SynthesisConfig().compile_mode("cuda") == "default" and SynthesisConfig().compile_mode("cpu") == "off"
    assert SynthesisConfig(activation_checkpointing=True).compile_mode("cuda") == "off"
