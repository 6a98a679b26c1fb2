import numpy as np
import pytest

from dfq_sam_plugin.eval.metrics import bootstrap_ci, dice, iou, nsd


def square(y0, x0, size, shape=(40, 40)):
    m = np.zeros(shape, bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def test_dice_iou_by_hand():
    a, b = square(0, 0, 10), square(0, 5, 10)  # overlap 10x5 = 50, areas 100 each
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(50 / 150)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    assert dice(a, square(20, 20, 10)) == 0.0


def test_empty_masks():
    empty = np.zeros((5, 5), bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0 and nsd(empty, empty) == 1.0
    assert dice(square(0, 0, 2, (5, 5)), empty) == 0.0 and nsd(square(0, 0, 2, (5, 5)), empty) == 0.0


def test_nsd_tolerance():
    a = square(5, 5, 20)
    assert nsd(a, a) == 1.0
    assert nsd(a, square(5, 7, 20), tolerance=2) == 1.0  # every border pixel within 2 px
    assert nsd(a, square(5, 12, 20), tolerance=2) < 0.7
    assert nsd(a, square(5, 12, 20), tolerance=7) == 1.0


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_prompts():
    rng = np.random.default_rng(1)
    few, many = rng.uniform(0.9, 1.0, 41), rng.uniform(0.9, 1.0, 1000)
    lo, hi = bootstrap_ci(few)
    assert lo < few.mean() < hi
    lo2, hi2 = bootstrap_ci(many)
    assert hi2 - lo2 < (hi - lo) / 2  # ~1/sqrt(n): 41 -> 1000 prompts is ~5x narrower
    assert bootstrap_ci(np.full(10, 0.97)) == pytest.approx((0.97, 0.97))
    assert bootstrap_ci(few) == bootstrap_ci(few)  # seeded
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]))
