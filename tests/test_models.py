
import pytest
import torch

from dfq_sam_plugin import load_sam
from dfq_sam_plugin.models import CheckpointError
from dfq_sam_plugin.models.litemedsam import bundled_checkpoint


def test_bundled_litemedsam_is_verified_and_shaped(litemedsam):
    _, expected = bundled_checkpoint()
    assert litemedsam.weights_sha256 == expected
    assert litemedsam.spec.img_size == 256 and litemedsam.spec.embed_shape == (256, 64, 64)
    with torch.inference_mode():
        emb = litemedsam.model.encode(torch.rand(1, 3, 256, 256))
        logits, iou = litemedsam.model.decode(emb, torch.tensor([[[40.0, 40, 120, 140]]]))
    assert emb.shape == (1, 256, 64, 64) and logits.shape == (1, 1, 256, 256) and iou.shape == (1, 1)


def test_batched_decode_matches_segment_anything_decoder(litemedsam):
    m = litemedsam.model
    boxes = torch.tensor([[10.0, 20, 100, 90], [50, 50, 200, 220], [0, 0, 255, 255]])
    with torch.inference_mode():
        emb = m.encode(torch.rand(2, 3, 256, 256))
        ours, ours_iou = m.decode(emb, boxes.expand(2, -1, -1))
        for b in range(2):
            sparse, dense = m.prompt_encoder(points=None, boxes=boxes, masks=None)
            ref, ref_iou = m.mask_decoder(image_embeddings=emb[b : b + 1], image_pe=m.prompt_encoder.get_dense_pe(),
                                          sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                          multimask_output=False)
            torch.testing.assert_close(ours[b], ref[:, 0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(ours_iou[b], ref_iou[:, 0], atol=1e-5, rtol=1e-5)


def test_vit_b_checkpoint_round_trip(tmp_path):
    src = load_sam("vit_b", random_init=True)
    path = tmp_path / "sam_vit_b.pth"
    torch.save(src.model.state_dict(), path)
    loaded = load_sam("vit_b", checkpoint=path)
    assert loaded.spec.img_size == 1024 and loaded.spec.normalisation == "meanstd"
    assert loaded.weights_sha256 and loaded.checkpoint == str(path)
    for (k, a), b in zip(src.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_vit_l_state_dict_as_vit_b_is_refused_clearly(tmp_path):
    path = tmp_path / "sam_vit_l.pth"
    torch.save(load_sam("vit_l", random_init=True, img_size=256).model.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_sam("vit_b", checkpoint=path)
    msg = str(err.value)
    assert "is not a vit_b checkpoint" in msg and "unexpected keys" in msg and "shape mismatches" in msg
    assert "image_encoder.blocks.12" in msg  # vit_l has 24 blocks, vit_b 12


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_sam("vit_b", checkpoint=tmp_path / "nope.pth")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "corrupt.pth"
    torch.save({"w": torch.zeros(3)}, path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_sam("litemedsam", checkpoint=path)


class _Custom:
    pass


def test_pickle_that_needs_code_is_refused(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"model": _Custom()}, path)
    with pytest.raises(CheckpointError, match="needs code to unpickle"):
        load_sam("litemedsam", checkpoint=path)


def test_non_state_dict_checkpoint(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_sam("litemedsam", checkpoint=path)


def test_unknown_model_and_missing_sam_checkpoint():
    with pytest.raises(ValueError, match="unknown model"):
        load_sam("vit_z")
    with pytest.raises(ValueError, match="weights are not bundled"):
        load_sam("vit_b")


def test_litemedsam_style_checkpoint_path(tmp_path, litemedsam):
    path = tmp_path / "finetuned.pth"
    torch.save({"model": litemedsam.model.state_dict()}, path)  # medsam-lite-train nests under "model"
    loaded = load_sam("litemedsam", checkpoint=path)
    assert loaded.checkpoint == str(path) and loaded.weights_sha256 != litemedsam.weights_sha256


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 42\n", "is a text file"),
    (b"\x00\x01\x02\x03binary junk", "not a torch checkpoint"),
])
def test_empty_text_and_foreign_checkpoints_say_what_the_file_is(tmp_path, content, match):
    from dfq_sam_plugin import load_sam

    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_sam("litemedsam", checkpoint=path)


def test_truncated_checkpoint_is_a_checkpoint_error(tmp_path, litemedsam):
    import torch

    from dfq_sam_plugin import load_sam

    path = tmp_path / "weights.pth"
    torch.save(litemedsam.model.state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_sam("litemedsam", checkpoint=path)


def test_the_torch_free_model_list_names_every_loadable_sam():
    """models.spec.MODEL_NAMES (what the CLI parser and the edge runtime list without importing torch) is the set
    load_sam loads: LiteMedSAM and every SAM ViT config."""
    from dfq_sam_plugin.models.segment_anything import VIT_CONFIGS
    from dfq_sam_plugin.models.spec import MODEL_NAMES

    assert MODEL_NAMES == ("litemedsam", *VIT_CONFIGS)
