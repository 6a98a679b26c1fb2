"""eval.generalisation: the encoder-output errors and ratio issue 34's benchmarks report, and the FP32 reference."""

import numpy as np
import torch

from dfq_sam_plugin.eval.generalisation import fp32_reference, generalisation, relative_errors


def test_relative_errors_and_ratio():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 3, 4, 4)).astype(np.float32) for _ in range(3)]
    assert np.allclose(relative_errors(lambda x: x, lambda x: x, xs), 0)
    assert np.allclose(relative_errors(lambda x: 1.1 * x, lambda x: x, xs), 0.01)
    g = generalisation(lambda x: 1.1 * x, lambda x: x, xs[:1], {"a": xs[1:], "b": [2 * xs[0]]})
    assert np.isclose(g.synthetic, 0.01) and np.isclose(g.real["a"], 0.01) and np.isclose(g.ratio, 1.0)
    # a student exact on the synthetic inputs and off on the real ones: the ratio says so
    g = generalisation(lambda x: x if x is xs[0] else 1.2 * x, lambda x: x, xs[:1], {"real": xs[1:]})
    assert g.synthetic == 0 and g.ratio > 1e9


def test_fp32_reference_runs_the_encoder_once_per_input():
    calls = []

    class Encoder(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            return 2 * x

    x = np.ones((1, 3, 2, 2), np.float32)
    reference = fp32_reference(Encoder())
    assert np.array_equal(reference(x), 2 * x) and np.array_equal(reference(x), 2 * x)
    assert len(calls) == 1
    reference(x.copy())  # another array, equal values: its own entry
    assert len(calls) == 2
