from pathlib import Path

import pytest

from dfq_sam_plugin.recipes import RecipeError, load_recipe, validate

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe["name"] == path.stem


@pytest.mark.parametrize("raw,match", [
    ({"backend": "openvino", "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
    ({"backend": "openvino", "target_device": "TPU"}, "key 'target_device' must be one of"),
    ({"backend": "openvino", "activation_bits": 4}, "key 'activation_bits' must be one of \\[8\\]"),
    ({"backend": "brevitas", "weight_bits": 1}, "key 'weight_bits' must be between 2 and 8"),
    ({"backend": "openvino", "subset_size": "many"}, "key 'subset_size' must be int"),
    ({"backend": "openvino", "reparam": 1}, "key 'reparam' must be bool"),
    ({"backend": "openvino", "smooth_quant_alpha": 3}, "key .smooth_quant_alpha. must be in"),
    ({"backend": "openvino", "reparam_strength": 2}, "key .reparam_strength. must be in"),
    ({"backend": "tflite"}, "key 'backend' must be one of"),
])
def test_bad_recipes_name_the_key(raw, match):
    with pytest.raises(RecipeError, match=match):
        validate(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: [unclosed")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
