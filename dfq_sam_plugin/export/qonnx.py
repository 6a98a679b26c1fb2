"""QONNX: Brevitas' own ONNX dialect for arbitrary bit-widths (FINN / FPGA flows), and a reader that computes it.

A QONNX graph is standard ONNX plus ``Quant`` nodes (domain ``qonnx.custom_op.general``) that fake-quantize a
tensor at any bit-width, so W4A4 and W6A6 students export as they are (QCDQ, the OpenVINO path, carries 8-bit
activations only). The reference reader runs the graph with ``onnx.reference.ReferenceEvaluator`` and the ``Quant``
op written from the QONNX specification (docs/qonnx-ops/quant_op.md in the QONNX repository); it needs no package
beyond ``onnx`` (the ``qonnx`` package, FINN's reader, is not on every index) and is a check, not a fast runtime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QONNX_DOMAIN = "qonnx.custom_op.general"

_ROUNDING = {"ROUND": np.round,  # half to even, as the specification's numpy reference
             "ROUND_TO_ZERO": np.trunc, "CEIL": np.ceil, "FLOOR": np.floor}


def quant(x: np.ndarray, scale, zero_point, bit_width, signed: int = 1, narrow: int = 0,
          rounding_mode: str = "ROUND") -> np.ndarray:
    """QONNX ``Quant``: ``(clip(round(x / scale + zero_point), lo, hi) - zero_point) * scale``, with the integer
    range of ``bit_width`` bits, signed or not, ``narrow`` dropping its most negative (signed) or largest
    (unsigned) value."""
    bits = float(np.asarray(bit_width))
    if signed:
        lo, hi = -(2.0 ** (bits - 1)) + narrow, 2.0 ** (bits - 1) - 1
    else:
        lo, hi = 0.0, 2.0 ** bits - 1 - narrow
    try:
        rounding = _ROUNDING[rounding_mode.upper()]
    except KeyError:
        raise ValueError(f"QONNX Quant rounding_mode {rounding_mode!r} is not supported "
                         f"(known: {', '.join(_ROUNDING)})") from None
    q = np.clip(rounding(x / scale + zero_point), lo, hi)
    return ((q - zero_point) * scale).astype(x.dtype)


def _quant_op():
    from onnx.reference.op_run import OpRun

    class Quant(OpRun):
        op_domain = QONNX_DOMAIN

        def _run(self, x, scale, zero_point, bit_width, signed=None, narrow=None, rounding_mode=None):
            mode = rounding_mode.decode() if isinstance(rounding_mode, bytes) else rounding_mode
            return (quant(x, scale, zero_point, bit_width, 1 if signed is None else signed, narrow or 0,
                          mode or "ROUND"),)

    return Quant


class QONNXModel:
    """A QONNX file read back and computed in numpy: ``QONNXModel(path)(x)`` returns the graph's first output.
    Refuses a graph with QONNX ops other than ``Quant`` (``BipolarQuant``, ``Trunc``: a student of ours exports
    none)."""

    def __init__(self, path: str | Path):
        import onnx
        from onnx import numpy_helper
        from onnx.reference import ReferenceEvaluator

        self.path = Path(path)
        model = onnx.load(str(self.path))
        custom = {n.op_type for n in model.graph.node if n.domain == QONNX_DOMAIN}
        if custom - {"Quant"}:
            raise NotImplementedError(f"{self.path}: QONNX ops {sorted(custom - {'Quant'})} are not supported "
                                      "by this reader (Quant only)")
        quants = [n for n in model.graph.node if n.op_type == "Quant"]
        self.quant_nodes = len(quants)
        wanted = {n.input[3] for n in quants}  # the bit-width inputs: only these constants are read
        consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.name in wanted}
        consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                       if n.op_type == "Constant" and n.output[0] in wanted and n.attribute
                       and n.attribute[0].type == onnx.AttributeProto.TENSOR})
        counts: dict[int, int] = {}
        for n in quants:
            if n.input[3] in consts:
                bits = int(consts[n.input[3]])
                counts[bits] = counts.get(bits, 0) + 1
        self._bit_widths = dict(sorted(counts.items()))
        self.input_name = model.graph.input[0].name
        self._session = ReferenceEvaluator(model, new_ops=[_quant_op()])

    def bit_widths(self) -> dict[int, int]:
        """How many ``Quant`` nodes of each bit-width the graph holds (bit-widths given as constants)."""
        return dict(self._bit_widths)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self.input_name: np.asarray(x, np.float32)})[0]
