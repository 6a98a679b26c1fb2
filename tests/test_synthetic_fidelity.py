import numpy as np
import pytest
import torch

from dfq_sam_plugin.eval.synthetic_fidelity import SyntheticFidelity, random_boxes


def test_random_boxes_lie_inside_and_span_small_to_large():
    boxes = random_boxes(np.random.default_rng(0), 500, 256)
    sides = boxes[:, 2:] - boxes[:, :2]
    assert boxes.dtype == np.float32 and (boxes >= 0).all() and (boxes <= 255).all()
    assert sides.min() >= 256 / 32 - 1e-3 and sides.max() <= 256 / 2 + 1e-3
    assert np.median(sides) < 40  # log-uniform: mostly small boxes, as nuclei are


def test_float_encoder_scores_one_and_a_perturbed_one_less(litemedsam):
    from dfq_sam_plugin.data.dataset import DFQSAMDataset

    ds = DFQSAMDataset.bundled(litemedsam)
    metric = SyntheticFidelity(litemedsam, ds, limit=2, boxes_per_image=8)

    def fp(x):
        with torch.inference_mode():
            return litemedsam.model.encode(torch.from_numpy(x)).numpy()

    def noisy(x):
        e = fp(x)
        return e + 0.5 * e.std() * np.random.default_rng(1).standard_normal(e.shape).astype(np.float32)

    mean, per_image = metric(lambda x: [fp(x)], [0, 1])  # an ov.CompiledModel returns outputs by index
    assert mean == 1.0 and per_image == [1.0, 1.0]
    assert metric.score(noisy, 0) < 0.99
    assert len(metric.dataset().get_length() and list(metric.dataset().get_data())) == 2
    with pytest.raises(ValueError, match="at least one"):
        SyntheticFidelity(litemedsam, ds, boxes_per_image=0)
