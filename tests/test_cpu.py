"""CPU classes and the recipe `auto` picks for each (dfq_sam_plugin.cpu), with OpenVINO's real CPU plugin."""

import pytest

from dfq_sam_plugin.cpu import classify, cpu_class
from dfq_sam_plugin.recipes import AUTO, load_recipe, resolve_recipe

SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}
CASCADE_LAKE = {"avx2", "avx512f", "avx512_vnni"}
ALDER_LAKE = {"avx2", "avx_vnni"}
EPYC_ROME = {"avx2", "fma"}
EPYC_GENOA = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"}


@pytest.mark.parametrize("flags,caps,name,int8_dot,bf16,recipe", [
    (SAPPHIRE_RAPIDS, ["FP32", "BF16", "INT8", "BIN"], "amx", True, True, "openvino_int8_cpu_vnni"),
    (CASCADE_LAKE, ["FP32", "INT8", "BIN"], "avx512_vnni", True, False, "openvino_int8_cpu_vnni"),
    (EPYC_GENOA, ["FP32", "BF16", "INT8", "BIN"], "avx512_vnni", True, True, "openvino_int8_cpu_vnni"),
    (ALDER_LAKE, ["FP32", "INT8", "BIN"], "avx_vnni", True, False, "openvino_int8_cpu_vnni"),
    (EPYC_ROME, ["FP32", "INT8", "BIN"], "avx2", False, False, "openvino_int8_cpu_avx2"),
    ({"sse4_2"}, ["FP32"], "unknown", False, False, "openvino_int8_cpu"),
])
def test_classes_and_their_recipes(flags, caps, name, int8_dot, bf16, recipe):
    cls = classify(caps, flags)
    assert (cls.name, cls.int8_dot, cls.bf16_default, cls.recipe) == (name, int8_dot, bf16, recipe)
    assert load_recipe(cls.recipe)["backend"] == "openvino"  # every class's recipe ships and validates
    assert ("no int8" in cls.describe()) != int8_dot


def test_auto_is_this_machines_class():
    cls = cpu_class()
    assert resolve_recipe(AUTO).stem == cls.recipe
    assert load_recipe(AUTO)["name"] == cls.recipe
