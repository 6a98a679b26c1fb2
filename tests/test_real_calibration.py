"""The real-data oracles of issue 34 read only images the benchmark does not evaluate, and say they are real."""

import inspect
import os
import sys
from pathlib import Path

from dfq_sam_plugin.eval.datasets import mni_set
from dfq_sam_plugin.eval.real_calibration import MNI_FRACTIONS, multimodal_calibration_set

_recording: list[str] | None = None


def _hook(event, args):
    if _recording is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _recording.append(Path(os.fsdecode(args[0])).name)


sys.addaudithook(_hook)  # audit hooks cannot be removed: this one records only inside the test


def test_multimodal_oracle_reads_only_unevaluated_images(tiny_sam):
    global _recording
    _recording = []
    try:
        ds = multimodal_calibration_set(tiny_sam)
    finally:
        opened, _recording = _recording, None
    assert ds.pixels.shape == (27, 1, 64, 64) and 0 <= ds.pixels.min() and ds.pixels.max() <= 1
    assert ds.provenance["real_data_used"] is True and ds.provenance["method"] == "real:mni152+stardist"
    assert {"img3d.tif", "histo.jpg", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"} <= set(opened)
    assert not {"img2d.tif", "mask2d.tif"} & set(opened)  # the nuclei benchmark's image and labels
    evaluated = inspect.signature(mni_set).parameters["fractions"].default
    assert not set(MNI_FRACTIONS) & set(evaluated)  # other slices than the MNI benchmark's
