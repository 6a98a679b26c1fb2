import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dfq_sam_plugin.models.litemedsam import LITEMEDSAM_SPEC
from dfq_sam_plugin.models.preprocess import (
    boxes_from_model,
    boxes_to_model,
    geometry,
    letterbox,
    postprocess_masks,
    preprocess_image,
    resize,
)
from dfq_sam_plugin.models.segment_anything import sam_spec


@pytest.mark.parametrize("src,dst", [((300, 200), (256, 171)), ((64, 64), (256, 256)), ((1024, 1024), (377, 500)),
                                     ((41, 33), (256, 206))])
@pytest.mark.parametrize("antialias", [False, True])
def test_resize_matches_torch(src, dst, antialias):
    x = np.random.default_rng(0).random((2, *src), dtype=np.float32)
    ref = F.interpolate(torch.from_numpy(x)[None], size=dst, mode="bilinear", align_corners=False,
                        antialias=antialias)[0].numpy()
    np.testing.assert_allclose(resize(x, dst, antialias=antialias), ref, atol=2e-4)


def test_litemedsam_grey_uint16_minmax_and_padding():
    img = np.random.default_rng(1).integers(100, 4000, size=(128, 200), dtype=np.uint16)
    x, geo = preprocess_image(img, LITEMEDSAM_SPEC)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    assert geo.resized == (164, 256)
    assert np.allclose(x[0, 0], x[0, 2])  # grey -> 3 equal channels
    assert x[..., 164:, :].max() == 0  # zero pad below
    assert 0.0 <= x.min() and x[..., :164, :].max() <= 1.0 + 1e-6 and x.max() > 0.95


def test_sam_meanstd_rgb_range():
    spec = sam_spec("sam", 1024)
    img = np.random.default_rng(2).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    x, geo = preprocess_image(img, spec)
    lo, hi = spec.pixel_range()
    inside = x[:, :, : geo.resized[0], : geo.resized[1]]
    assert (inside >= lo.numpy() - 1e-4).all() and (inside <= hi.numpy() + 1e-4).all()
    assert geo.resized == (768, 1024)


@pytest.mark.parametrize("shape", [(256, 256), (100, 300), (517, 211)])
def test_box_round_trip(shape):
    geo = geometry(*shape, 256)
    boxes = np.array([[0, 0, shape[1] - 1, shape[0] - 1], [10.5, 20, 60, 90]], dtype=np.float32)
    back = boxes_from_model(boxes_to_model(boxes, geo), geo)
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    model = boxes_to_model(boxes, geo)
    assert model[:, [0, 2]].max() <= geo.resized[1] and model[:, [1, 3]].max() <= geo.resized[0]


def test_postprocess_crops_padding_and_restores_size():
    geo = geometry(100, 200, 256)
    logits = -np.ones((1, 256, 256), dtype=np.float32)
    logits[0, : geo.resized[0] // 2, : geo.resized[1] // 2] = 5.0  # top-left quarter of the content area
    masks = postprocess_masks(logits, geo)
    assert masks.shape == (1, 100, 200) and masks.dtype == bool
    assert masks[0, :45, :95].all() and not masks[0, 55:, :].any() and not masks[0, :, 105:].any()


@pytest.mark.parametrize("height,width", [(189, 233), (233, 197), (100, 256)])
def test_letterbox_puts_the_padding_edge_where_preprocess_image_does(height, width):
    """A square synthetic input letterboxed to an image's aspect has its content exactly where preprocess_image
    puts that image's content, zeros elsewhere, and the content is the input resized (antialiased)."""
    size = LITEMEDSAM_SPEC.img_size
    x = np.random.default_rng(2).random((1, 3, size, size), dtype=np.float32) + 0.1
    geo = geometry(height, width, size)
    out, (ys, xs) = letterbox(x, min(height, width) / max(height, width), tall=height > width)
    rh, rw = geo.resized
    assert (ys * size, xs * size) == (rh, rw)
    assert (out[..., :rh, :rw] > 0).all() and not out[..., rh:, :].any() and not out[..., :, rw:].any()
    ref = F.interpolate(torch.from_numpy(x), size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
    np.testing.assert_allclose(out[..., :rh, :rw], ref.numpy(), atol=2e-4)
    real, _ = preprocess_image(np.random.default_rng(3).random((height, width)), LITEMEDSAM_SPEC)
    assert ((real[0, 0] != 0) == (out[0, 0] != 0)).mean() > 0.999  # the same padded region
    np.testing.assert_array_equal(letterbox(x, 1.0)[0] != 0, x != 0)
    with pytest.raises(ValueError, match="aspect"):
        letterbox(x, 1.5)
