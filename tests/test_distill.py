"""Data-free distillation core (dfq_sam_plugin.distill): a few steps lower the loss on a fixed batch, and a run
stopped and resumed from its checkpoint ends exactly where an uninterrupted one does."""

import copy

import pytest
import torch

from dfq_sam_plugin.distill import DistillConfig, Distiller, loss_figure
from dfq_sam_plugin.recipes import distill_config, load_recipe


def _student(sam):
    student = copy.deepcopy(sam.model.image_encoder)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * p.std() * torch.randn(p.shape, generator=g))
    return student


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 1, 64, 64, generator=g), torch.tensor([[[4.0, 4.0, 40.0, 40.0]]]).repeat(4, 1, 1)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_sam):
    px, bx = _data()
    cfg = DistillConfig(steps=0, batch_size=2, lr_weights=1e-5, warmup=1, random_boxes=2, augment=False)
    d = Distiller(tiny_sam, _student(tiny_sam), px, bx, cfg)
    batch = d.batch(0)
    before = float(d.losses(*batch)["total"])
    for _ in range(4):
        d.optimizer.zero_grad()
        d.losses(*batch)["total"].backward()
        d.optimizer.step()
    assert float(d.losses(*batch)["total"]) < before


def test_resumed_run_ends_where_an_uninterrupted_one_does(short_sam, tmp_path):
    px, bx = _data()
    cfg = dict(batch_size=2, lr_weights=1e-4, warmup=1, random_boxes=2, checkpoint_every=2)
    straight = Distiller(short_sam, _student(short_sam), px, bx, DistillConfig(steps=4, **cfg))
    straight.run(None, progress=False)
    Distiller(short_sam, _student(short_sam), px, bx, DistillConfig(steps=2, **cfg)).run(tmp_path, progress=False)
    resumed = Distiller(short_sam, _student(short_sam), px, bx, DistillConfig(steps=4, **cfg))
    result = resumed.run(tmp_path, progress=False)
    assert result.resumed_from == 2 and result.steps == 4
    for a, b in zip(straight.student.state_dict().values(), resumed.student.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert loss_figure(resumed.history, tmp_path / "loss.png").exists()
    with pytest.raises(ValueError, match="other settings \\(seed\\)"):
        Distiller(short_sam, _student(short_sam), px, bx, DistillConfig(steps=4, **{**cfg, "seed": 3})).run(tmp_path)
    # a checkpoint written before a setting existed resumes where that setting is at its default
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del state["config"]["support"]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert Distiller(short_sam, _student(short_sam), px, bx, DistillConfig(steps=4, **cfg)).load(tmp_path)
    with pytest.raises(ValueError, match="other settings \\(support\\)"):
        Distiller(short_sam, _student(short_sam), px, bx, DistillConfig(steps=4, support=0.5, **cfg)).load(tmp_path)


def test_micro_batches_accumulate_the_whole_batch_gradient(tiny_sam):
    """``micro_batch``: the step's images pass in chunks and their gradients add up to the whole batch's (the
    student is in eval mode and every loss term is a mean over images), so memory is bounded and nothing else
    changes; the default on a CPU is 2 images a pass."""
    px, bx = _data()
    cfg = dict(steps=1, batch_size=4, lr_weights=0.0, lr_quant=0.0, warmup=1, random_boxes=2, grad_clip=0.0)
    whole = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(micro_batch=4, **cfg))
    parts = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(micro_batch=1, **cfg))
    assert Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(**cfg)).chunk == 2
    a, b = whole.train_step(), parts.train_step()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-9)
    grads = [(p.grad, q.grad) for p, q in zip(whole.student.parameters(), parts.student.parameters())
             if p.grad is not None]
    assert grads and all(q is not None for _, q in grads)
    for g, h in grads:  # float summation order differs: relative to each tensor's norm (a wrong share is 2x off)
        assert float((h - g).norm()) <= 1e-4 * float(g.norm()) + 1e-12
    assert whole.cfg.resume_key() == parts.cfg.resume_key()  # a run may resume with another micro batch
    with pytest.raises(ValueError, match="micro_batch"):
        DistillConfig(micro_batch=-1)


def test_distill_recipe_loads_and_maps_to_a_config():
    recipe = load_recipe("openvino_int8_cpu_distill")
    cfg = distill_config(recipe)
    assert cfg.steps == recipe["distill_steps"] > 0 and cfg.lr_weights == pytest.approx(2e-5)
    assert load_recipe("openvino_int8_cpu")["distill_steps"] == 0  # PTQ recipes stay PTQ


def test_feature_loss_reads_the_named_blocks_and_leaves_no_hooks(tiny_sam):
    px, bx = _data()
    cfg = DistillConfig(steps=0, batch_size=2, warmup=1, random_boxes=0, augment=False, feature_weight=1.0,
                        feature_layers=("blocks.0", "blocks.5"))
    d = Distiller(tiny_sam, _student(tiny_sam), px, bx, cfg)
    terms = d.losses(*d.batch(0))
    assert float(terms["feature"]) > 0
    torch.testing.assert_close(terms["total"], terms["embed"] + terms["mask"] + terms["feature"])
    assert not any(m._forward_hooks for m in tiny_sam.model.image_encoder.modules())
    assert not any(m._forward_hooks for m in d.student.modules())
    plain = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(steps=0, batch_size=2, random_boxes=0))
    assert float(plain.losses(*plain.batch(0))["feature"]) == 0.0
    with pytest.raises(AttributeError):
        Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(feature_weight=1.0, feature_layers=("nope",)))
    with pytest.raises(ValueError, match="feature_layers"):
        DistillConfig(feature_weight=1.0)


def test_letterboxed_batches_pad_with_input_space_zeros_and_move_the_boxes(tiny_sam):
    px, bx = _data()
    cfg = dict(steps=0, batch_size=4, random_boxes=2, augment=False)
    plain = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(**cfg)).batch(3)
    boxed = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(letterbox=1.0, **cfg)).batch(3)
    for x, b, x0, b0 in zip(*boxed, *plain):
        rows, cols = (x != 0).any(0).any(1), (x != 0).any(0).any(0)  # content rows / columns
        h, w = int(rows.sum()), int(cols.sum())
        assert min(h, w) < 64 and max(h, w) == 64 and rows[:h].all() and cols[:w].all()
        assert (x0 != 0).all()  # the SAM mean/std input space: zero is the padding only
        scale = torch.tensor([w / 64, h / 64, w / 64, h / 64])
        torch.testing.assert_close(b, b0 * scale)


def test_support_batches_keep_an_ellipse_of_each_image_on_a_black_field(tiny_sam):
    """``support``: the raw image times a soft random ellipse (data.inputs.support_mask), boxes unchanged, drawn
    from (seed, step, slot) so a resumed or DDP run sees the same batch; ``support=0`` leaves the batch alone."""
    px, bx = _data()
    cfg = dict(steps=0, batch_size=4, random_boxes=2, augment=False)
    plain = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(**cfg)).batch(3)
    dark = Distiller(tiny_sam, _student(tiny_sam), px, bx, DistillConfig(support=1.0, **cfg))
    x, b = dark.batch(3)
    black = tiny_sam.spec.normalise(torch.zeros(3, 1, 1))
    for xi, x0 in zip(x, plain[0]):
        on_black = torch.isclose(xi, black.expand_as(xi), atol=1e-5).all(0)
        assert on_black[0, 0] and on_black[-1, -1] and on_black[0, -1] and on_black[-1, 0]  # corners: outside
        torch.testing.assert_close(xi[:, 32, 32], x0[:, 32, 32])  # the middle: inside every ellipse
        assert 0.2 < float(on_black.float().mean()) < 0.95
    torch.testing.assert_close(b, plain[1])
    again = dark.batch(3)
    torch.testing.assert_close(again[0], x)
    with pytest.raises(ValueError, match="support"):
        DistillConfig(support=1.5)


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, sys.argv[2])
from test_distill import _data, _student, DDP_CONFIG
from conftest import first_blocks  # tests/conftest.py: only the tests folder is on this script's path
from dfq_sam_plugin import load_sam
from dfq_sam_plugin.distill import DistillConfig, Distiller
torch.set_num_threads(1)
dist.init_process_group("gloo")
sam = first_blocks(load_sam("vit_b", random_init=True, img_size=64), 3)  # the test's short_sam
d = Distiller(sam, _student(sam), *_data(), DistillConfig(**DDP_CONFIG))
result = d.run(None, progress=False)
if dist.get_rank() == 0:
    torch.save({"state": d.student.state_dict(), "world": result.world_size}, sys.argv[1])
dist.destroy_process_group()
"""
DDP_CONFIG = dict(steps=3, batch_size=4, lr_weights=1e-4, warmup=1, random_boxes=2, mixup=0.5, letterbox=0.5)


def test_ddp_gloo_two_processes_train_like_one(short_sam, tmp_path):
    """torchrun, 2 CPU processes (gloo), the same global batch: each rank gets half of the batch a one-process
    run sees (augmentation, mixup partners and random boxes drawn for the whole batch), so the two end alike."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script, out = tmp_path / "ddp.py", tmp_path / "ddp.pt"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(out), str(Path(__file__).parent)], check=True, env=env, timeout=600,
                   capture_output=True)
    ddp = torch.load(out, weights_only=False)
    assert ddp["world"] == 2
    start = _student(short_sam)
    single = Distiller(short_sam, copy.deepcopy(start), *_data(), DistillConfig(**DDP_CONFIG))
    single.run(None, progress=False)
    moved = sum(float((a - b).norm()) for a, b in zip(single.student.state_dict().values(),
                                                      start.state_dict().values()))
    apart = sum(float((a - b).norm()) for a, b in zip(single.student.state_dict().values(), ddp["state"].values()))
    assert moved > 0 and apart < 1e-3 * moved, (apart, moved)


def test_augmented_copies_are_deterministic_new_and_in_range():
    """Reconstruction's extra inputs: copy-major, same seed same images, another seed other images, pixels in
    [0, 1], none equal to its source image."""
    from dfq_sam_plugin.distill.augment import augmented_copies

    px = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = augmented_copies(px, 2, seed=5), augmented_copies(px, 2, seed=5)
    assert a.shape == (6, 1, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, augmented_copies(px, 2, seed=6))
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert all(not torch.allclose(a[c * 3 + i], px[i]) for c in range(2) for i in range(3))
    assert augmented_copies(px, 0).shape == (0, 1, 32, 32)
    with pytest.raises(ValueError):
        augmented_copies(px, -1)


def test_validation_split_is_never_trained_on_and_keeps_the_best_student(tiny_sam, tmp_path):
    px, bx = _data()
    cfg = DistillConfig(steps=2, batch_size=2, warmup=1, random_boxes=1, augment=False, validation=0.5,
                        validate_every=1, lr_weights=1e-4)
    d = Distiller(tiny_sam, _student(tiny_sam), px, bx, cfg)
    held = set(d.val_idx.tolist())
    assert len(held) == 2 and held.isdisjoint(d.train_idx.tolist())
    assert all(held.isdisjoint(d.order(step).tolist()) for step in range(300))
    result = d.run(tmp_path, progress=False)
    assert d.history["val_step"] == [0, 1, 2] and result.best_step in d.history["val_step"]
    best = d.history["val"][d.history["val_step"].index(result.best_step)]
    assert best == min(d.history["val"]) and d.validate() == pytest.approx(best, rel=1e-5)  # the best one kept
    assert result.summary()["validation"]["best"] == best
    stop = Distiller(tiny_sam, d.student, px, bx, DistillConfig(**{**cfg.to_dict(), "steps": 40, "lr_weights": 0.0,
                                                                   "lr_quant": 0.0, "patience": 1}))
    res = stop.run(None, progress=False)  # nothing learns: no score beats the first, so it stops at the next
    assert res.stopped_early and res.steps == 1 and res.best_step == 0
    with pytest.raises(ValueError, match="validation split"):
        DistillConfig(patience=2)


def test_a_refresh_raises_the_disagreement_it_optimises_and_touches_only_its_images(tiny_sam, tmp_path):
    px, bx = _data()
    cfg = DistillConfig(steps=3, batch_size=2, warmup=1, random_boxes=1, augment=False, validation=0.25,
                        refresh_every=2, refresh_fraction=0.5, refresh_iters=3, refresh_lr=0.03)
    d = Distiller(tiny_sam, _student(tiny_sam), px.clone(), bx, cfg)
    before_pool = d.pixels.clone()
    grads_before = [p.grad for p in d.student.parameters()]
    before, after = d.refresh(2)
    assert after > before  # the refreshed images are harder for this student
    changed = {i for i in range(len(px)) if not torch.equal(d.pixels[i], before_pool[i])}
    assert len(changed) == 2 and changed <= set(d.train_idx.tolist())  # half the training split, never validation
    assert float(d.pixels.min()) >= 0 and float(d.pixels.max()) <= 1
    assert [p.grad for p in d.student.parameters()] == grads_before  # gradients reached the pixels only
    assert d.history["refresh_step"] == [2]
    d.save(tmp_path)  # a checkpoint carries the refreshed pool
    resumed = Distiller(tiny_sam, d.student, px.clone(), bx, cfg)
    resumed.load(tmp_path)
    torch.testing.assert_close(resumed.pixels, d.pixels)


def test_curriculum_draws_easy_images_first_and_hard_ones_last(tiny_sam, tmp_path):
    from dfq_sam_plugin.distill.engine import CURRICULUM_SALT

    px, bx = _data()
    cfg = DistillConfig(steps=100, batch_size=2, warmup=1, random_boxes=1, augment=False, validation=0.25,
                        curriculum=2.0, curriculum_every=1)
    d = Distiller(tiny_sam, _student(tiny_sam), px, bx, cfg)
    plain = Distiller(tiny_sam, d.student, px, bx, DistillConfig(**{**cfg.to_dict(), "curriculum": 0.0}))
    assert all(torch.equal(d.order(s), plain.order(s)) for s in range(5))  # unscored: the uniform draws
    scores = d.score_difficulty()  # the student's disagreement on the unaugmented training images, fixed boxes
    torch.testing.assert_close(scores, d.disagreement(*d._fixed_inputs(d.train_idx, CURRICULUM_SALT))[0])
    assert len(scores) == len(d.train_idx) == 3 and bool((scores > 0).all()) and d.history["curriculum_step"] == [0]
    d.difficulty = torch.tensor([1e-3, 1e-2, 1e-1])  # train_idx[0] easiest, train_idx[2] hardest
    easy, hard = int(d.train_idx[0]), int(d.train_idx[2])
    early = torch.cat([d.order(s) for s in range(10)]).tolist()
    late = torch.cat([d.order(s) for s in range(90, 100)]).tolist()
    assert early.count(easy) > 3 * early.count(hard) and late.count(hard) > 3 * late.count(easy)
    drawn = set(torch.cat([d.order(s) for s in range(100)]).tolist())
    assert drawn.isdisjoint(d.val_idx.tolist())  # the validation split is never drawn
    d.save(tmp_path)  # checkpoints carry the scores (the CLI flow's test sees a run score its pool)
    resumed = Distiller(tiny_sam, _student(tiny_sam), px, bx, cfg)
    assert resumed.load(tmp_path) and torch.equal(resumed.difficulty, d.difficulty)
    with pytest.raises(ValueError, match="curriculum"):
        DistillConfig(curriculum=-1.0)


def test_attention_map_loss_compares_where_the_energy_sits(tiny_sam):
    from dfq_sam_plugin.distill.losses import attention_map_loss

    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 16, 8, generator=g)
    assert float(attention_map_loss(f, f)) == 0.0 and float(attention_map_loss(3 * f, f)) < 1e-6  # scale-blind
    assert float(attention_map_loss(f + 0.5 * torch.randn(f.shape, generator=g), f)) > 1e-3
    conv = torch.randn(2, 8, 4, 4, generator=g)  # channels-first convolution output
    assert float(attention_map_loss(conv.permute(0, 2, 3, 1), conv.permute(0, 2, 3, 1))) == 0.0
    px, bx = _data()
    cfg = DistillConfig(steps=0, batch_size=2, random_boxes=0, augment=False, feature_weight=1.0,
                        feature_layers=("blocks.2",), feature_mode="attention")
    d = Distiller(tiny_sam, _student(tiny_sam), px, bx, cfg)
    assert float(d.losses(*d.batch(0))["feature"]) > 0
    with pytest.raises(ValueError, match="feature_mode"):
        DistillConfig(feature_mode="kl")


def test_decoder_aware_reconstruction_term_is_zero_for_an_unquantized_student(tiny_sam):
    """The decoder-aware block loss (mask KL through the FP rest of the encoder and the FP decoder) is zero (to
    float rounding) when the student equals the teacher, positive and differentiable into the unit when it does not, and the
    reconstruction of a unit with it lowers that term."""
    from dfq_sam_plugin.distill.reconstruct import BlockReconstructor, ReconstructConfig, capture

    inputs = tiny_sam.spec.normalise(_data()[0][:2].expand(-1, 3, -1, -1))
    decoder = lambda emb, boxes: tiny_sam.model.decode(emb, boxes)[0]  # noqa: E731
    cfg = ReconstructConfig(iters=4, batch_size=2, lr_weights=1e-4, drop=0.0, decoder_weight=1.0, decoder_boxes=2)
    teacher = copy.deepcopy(tiny_sam.model.image_encoder)
    with pytest.raises(ValueError, match="needs the FP decoder"):
        BlockReconstructor(teacher, copy.deepcopy(teacher), inputs, cfg)
    same = BlockReconstructor(teacher, copy.deepcopy(teacher), inputs, cfg, decoder=decoder)
    idx, boxes = torch.arange(2), same._eval_boxes[:2]
    with torch.no_grad():
        for name in ("patch_embed", "blocks.5", "neck"):
            x, _ = capture(same.student, name, inputs[:2], 2)
            zero = float(same.decoder_loss(name, idx, same.student.get_submodule(name)(x), boxes))
            assert zero < 1e-8  # float rounding of a re-run forward

    student = _student(tiny_sam).requires_grad_(True)  # earlier tests may leave the fixture's parameters frozen
    rec = BlockReconstructor(teacher, student, inputs, cfg, decoder=decoder,
                             is_quantizer=lambda m: isinstance(m, torch.nn.LayerNorm))
    unit = rec.student.get_submodule("blocks.5")
    x, _ = capture(rec.student, "blocks.5", inputs[:2], 2)
    loss = rec.decoder_loss("blocks.5", idx, unit(x), boxes)
    assert float(loss) > 1e-7  # 1e-6 here: two orders above the rounding of an unchanged student
    loss.backward()
    assert unit.mlp.lin1.weight.grad is not None and unit.mlp.lin1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())  # the float rest of the encoder does not learn
    unit.zero_grad(set_to_none=True)
    entry = rec.reconstruct("blocks.5")
    assert entry["decoder_after"] < entry["decoder_before"] and not entry.get("reverted")
