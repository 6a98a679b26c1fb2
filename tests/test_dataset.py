import json

import numpy as np
import pytest

from dfq_sam_plugin.data.dataset import CalibrationSetError, DFQSAMDataset


@pytest.fixture(scope="module")
def small_set(tiny_sam):
    g = np.random.default_rng(0)
    return DFQSAMDataset.from_arrays(tiny_sam, g.random((3, 1, 64, 64), np.float32),
                                     g.random((3, 2, 4), np.float32) * 60, provenance={"method": "test"})


def test_is_an_nncf_dataset_of_encoder_inputs(small_set, tiny_sam):
    import nncf

    assert isinstance(small_set, nncf.Dataset) and small_set.get_length() == 3
    items = list(small_set.get_inference_data())
    assert len(items) == 3 and items[0].shape == (1, 3, 64, 64) and items[0].dtype == np.float32
    lo, hi = (t.numpy() for t in tiny_sam.spec.pixel_range())
    assert all((x >= lo - 1e-5).all() and (x <= hi + 1e-5).all() for x in items)
    assert list(small_set.get_inference_data([1]))[0].shape == (1, 3, 64, 64)


def test_torch_and_decoder_views(small_set, tiny_sam):
    batches = list(small_set.torch_batches(batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 64, 64), (1, 3, 64, 64)]
    dec = next(small_set.decoder_inputs(tiny_sam))
    assert dec["image_embeddings"].shape == (1, 256, 4, 4) and dec["boxes"].shape == (2, 4)


def test_save_load_round_trip_with_provenance(small_set, tiny_sam, tmp_path):
    small_set.save(tmp_path / "set")
    assert (tmp_path / "set" / "data" / "dataset_info.json").exists()  # a datasets.Dataset on disk
    loaded = DFQSAMDataset.load(tmp_path / "set", tiny_sam)
    assert len(loaded) == 3 and np.array_equal(loaded.pixels, small_set.pixels)
    prov = json.loads((tmp_path / "set" / "provenance.json").read_text())
    assert prov["real_data_used"] is False and prov["weights_sha256"] is None and prov["model"] == "vit_b"
    assert {"torch", "datasets"} <= set(prov["versions"])


def test_load_errors(small_set, tmp_path, litemedsam):
    with pytest.raises(CalibrationSetError, match="does not exist"):
        DFQSAMDataset.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationSetError, match="not a DFQ-SAM calibration set"):
        DFQSAMDataset.load(tmp_path / "empty")
    small_set.save(tmp_path / "set")
    with pytest.raises(CalibrationSetError, match="made for vit_b"):
        DFQSAMDataset.load(tmp_path / "set", litemedsam)
    (tmp_path / "set" / "provenance.json").write_text("{not json")
    with pytest.raises(CalibrationSetError, match="not valid JSON"):
        DFQSAMDataset.load(tmp_path / "set")


def test_failed_save_leaves_the_previous_set_intact(small_set, tmp_path, monkeypatch):
    folder = small_set.save(tmp_path / "set")
    before = (folder / "provenance.json").read_text()
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        small_set.save(folder)
    assert (folder / "provenance.json").read_text() == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".saving-")]


def test_bad_pixels_shape(tiny_sam):
    with pytest.raises(CalibrationSetError, match="pixels must be"):
        DFQSAMDataset.from_arrays(tiny_sam, np.zeros((2, 2, 64, 64)), np.zeros((2, 1, 4)))


def test_array_set_from_shards_and_concat(tiny_sam, tmp_path, monkeypatch):
    from dfq_sam_plugin.data.arrays import ArraySet
    from dfq_sam_plugin.data.shards import ShardStore

    key = {"model": "vit_b", "weights_sha256": "abc", "num_images": 3, "config": {"method": "dfqsam", "seed": 4}}
    store = ShardStore(tmp_path)
    store.start(key)
    with pytest.raises(ValueError, match="no finished"):
        ArraySet.from_shards(tmp_path, tiny_sam.spec)
    rng = np.random.default_rng(0)
    for idx in ([2], [0, 1]):
        store.write(f"r0-{idx[0]:06d}", {"indices": np.array(idx), "pixels": rng.random((len(idx), 1, 64, 64)),
                                         "boxes": rng.random((len(idx), 3, 4))})
    # a run killed between writing a shard's temp file and renaming it: the temp file is never read as a
    # shard (CI once resumed from a half-written one), and a restart removes it
    import dfq_sam_plugin.data.shards as shards_module

    monkeypatch.setattr(shards_module.os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        store.write("r0-000003", {"indices": np.array([3]), "pixels": rng.random((1, 1, 64, 64)),
                                  "boxes": rng.random((1, 3, 4))})
    monkeypatch.undo()
    assert len(store.files()) == 2 and store.done() == {0, 1, 2}
    store.start(key)
    assert sorted(p.name for p in store.dir.iterdir()) == ["run.json", "shard-r0-000000.npz", "shard-r0-000002.npz"]
    shards = ArraySet.from_shards(tmp_path, tiny_sam.spec)
    assert len(shards) == 3 and shards.provenance["real_data_used"] is False
    small = store.files()[0].stat().st_size // 2  # every shard over the cap: the 2-image one in two pieces
    pieces = store.copy_split(tmp_path / "copy", max_bytes=small)
    assert sorted(p.name for p in pieces) == ["shard-r0-000000-p0.npz", "shard-r0-000000-p1.npz",
                                              "shard-r0-000002.npz"]
    copied = ArraySet.from_shards(tmp_path / "copy", tiny_sam.spec)
    np.testing.assert_array_equal(copied.pixels, shards.pixels)
    assert copied.provenance == shards.provenance
    assert shards.provenance["seed"] == 4 and shards.spec == tiny_sam.spec
    other = ArraySet(rng.random((2, 1, 64, 64)), rng.random((2, 5, 4)), {**shards.provenance, "seed": 5})
    joined = ArraySet.concat([shards, other])
    assert len(joined) == 5 and joined.boxes.shape == (5, 3, 4) and joined.provenance["real_data_used"] is False
    np.testing.assert_array_equal(joined.pixels[3:], other.pixels)
    with pytest.raises(ValueError, match="different models"):
        ArraySet.concat([shards, ArraySet(other.pixels, other.boxes, {**other.provenance, "weights_sha256": "z"})])
    with pytest.raises(ValueError, match="real_data_used"):
        ArraySet.concat([ArraySet(other.pixels, other.boxes, {**other.provenance, "real_data_used": True}), shards])


def test_calibration_inputs_with_letterboxed_copies(tiny_sam):
    from dfq_sam_plugin.data.arrays import ArraySet
    from dfq_sam_plugin.data.inputs import calibration_pairs, letterbox_plan

    plan = letterbox_plan(16, 0.5)
    assert len(plan) == 8 and letterbox_plan(16, 0.5) == plan and len(letterbox_plan(16, 1.0)) == 16
    assert all(0.55 <= a <= 0.95 for a, _ in plan.values()) and {t for _, t in plan.values()} == {True, False}
    assert letterbox_plan(5, 0.0) == {}
    with pytest.raises(ValueError):
        letterbox_plan(4, 1.5)
    rng = np.random.default_rng(0)
    px = rng.random((4, 1, 64, 64)).astype(np.float32)
    boxes = np.tile(np.array([[8.0, 8.0, 60.0, 40.0]], np.float32), (4, 1, 1))
    pairs = list(calibration_pairs(px, boxes, tiny_sam.spec, limit=3, letterbox=1.0))
    assert len(pairs) == 6  # three images, each followed by its letterboxed copy
    for (x, b), (xl, bl) in zip(pairs[::2], pairs[1::2]):
        assert x.shape == xl.shape == (1, 3, 64, 64) and (xl == 0).any() and not (x == 0).all()
        assert (bl <= b).all() and (bl[0, [0, 2]] == b[0, [0, 2]]).all() != (bl[0, [1, 3]] == b[0, [1, 3]]).all()
    ds = ArraySet(px, boxes, {"spec": tiny_sam.spec.to_dict()})
    plain = [t.numpy() for t in ds.torch_batches(1)]
    np.testing.assert_array_equal(np.concatenate(plain), np.concatenate([x for x, _ in calibration_pairs(
        px, None, tiny_sam.spec)]))
    assert sum(len(t) for t in ds.torch_batches(3, letterbox=0.5)) == 6


def test_calibration_copies_on_a_black_background(tiny_sam):
    """``calibration_support``: the planned share of images is followed by a copy whose pixels are the image's inside
    a soft ellipse and black (raw 0) outside it, same boxes; deterministic; the recipe key reaches NNCF's inputs."""
    from dfq_sam_plugin.backends.nncf import calibration_inputs
    from dfq_sam_plugin.data.arrays import ArraySet
    from dfq_sam_plugin.data.inputs import calibration_pairs, on_black, support_mask, to_encoder_input
    from dfq_sam_plugin.recipes import load_recipe

    rng = np.random.default_rng(0)
    px = (0.2 + 0.8 * rng.random((4, 1, 64, 64))).astype(np.float32)
    boxes = np.tile(np.array([[8.0, 8.0, 60.0, 40.0]], np.float32), (4, 1, 1))
    pairs = list(calibration_pairs(px, boxes, tiny_sam.spec, support=0.5))
    assert len(pairs) == 6
    m = support_mask(64, 1)
    assert np.array_equal(m, support_mask(64, 1)) and not np.array_equal(m, support_mask(64, 2))
    assert 0.15 < (m > 0.5).mean() < 0.65 and m.min() == 0 and m.max() == 1  # an object, a black field around it
    x_dark, b_dark = pairs[2]  # image 1's copy (images 1 and 3 are planned at 0.5)
    np.testing.assert_array_equal(x_dark, to_encoder_input(on_black(px[1], 1), tiny_sam.spec))
    np.testing.assert_array_equal(b_dark, boxes[1])
    black = to_encoder_input(np.zeros((1, 64, 64), np.float32), tiny_sam.spec)
    assert np.array_equal(x_dark[..., m == 0], black[..., m == 0]) and not np.array_equal(pairs[1][0], x_dark)
    ds = ArraySet(px, boxes, {"spec": tiny_sam.spec.to_dict()})
    recipe = {**load_recipe("openvino_int8_cpu_vnni"), "subset_size": 4, "calibration_letterbox": 0.0}
    assert len(calibration_inputs(ds, {**recipe, "calibration_support": 1.0})) == 8
    assert len(calibration_inputs(ds, recipe)) == 4
    with pytest.raises(ValueError, match="support"):
        list(calibration_pairs(px, None, tiny_sam.spec, support=2.0))
