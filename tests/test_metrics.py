import numpy as np
import pytest

from dfq_sam_plugin.eval.metrics import dice, iou, nsd


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
