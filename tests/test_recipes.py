from pathlib import Path

import pytest

from dfq_sam_plugin.recipes import (
    PACKAGED,
    RecipeError,
    load_recipe,
    packaged_recipes,
    parse_overrides,
    validate,
)

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
    ({"backend": "openvino", "weight_compression": ["neck"]}, "key 'weight_compression' must list"),
    ({"backend": "openvino", "weight_compression": ["decoder"], "quantize_decoder": True}, "not both"),
    ({"backend": "openvino", "target_device": "CPU_SPR", "nncf_backend": "torch"}, "OpenVINO backend only"),
    ({"backend": "openvino", "target_device": "CPU_SPR", "distill_steps": 10}, "OpenVINO backend only"),
])
def test_bad_recipes_name_the_key(raw, match):
    with pytest.raises(RecipeError, match=match):
        validate(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: [unclosed")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text("backend: openvino\nsubset_size: 8\nsubset_size: 16\n")
    with pytest.raises(RecipeError, match="(?s)'subset_size' given twice.*line 3"):
        load_recipe(twice)


def test_a_recipe_is_typed_and_sectioned_and_validated_once():
    from dfq_sam_plugin.recipes import Recipe, as_recipe

    r = load_recipe("openvino_int8_cpu_vnni")
    assert isinstance(r, Recipe) and isinstance(r, dict)  # the flat dict stays: JSON, manifests, old code
    assert r.calibration.subset_size == r["subset_size"] and r.reparam.enabled is r["reparam"]
    assert r.reparam.strength == r["reparam_strength"] and r.weight_compression.parts == r["weight_compression"]
    assert r.distill.steps == r["distill_steps"] and r.export.candidates == r["candidates"]
    with pytest.raises(AttributeError, match="no section 'reconstruct'"):
        getattr(r, "reconstruct")  # noqa: B009  an OpenVINO recipe has no block reconstruction
    assert load_recipe("brevitas_w4a8").reconstruct.iters > 0
    changed = r.replace(subset_size=3)
    assert changed.calibration.subset_size == 3 and r.calibration.subset_size != 3  # a copy, validated
    with pytest.raises(RecipeError, match="subset_size"):
        r.replace(subset_size=0)
    assert as_recipe(r) is r  # validated once: flows pass it through
    r.update(subset_size=-1)  # an in-place edit (old code) is validated again by the next flow
    with pytest.raises(RecipeError, match="subset_size"):
        as_recipe(r)


def test_misspelt_names_and_keys_get_a_did_you_mean():
    with pytest.raises(RecipeError, match="did you mean openvino_int8_cpu_vnni"):
        load_recipe("openvino_int8_cpu_vnn")
    with pytest.raises(RecipeError, match="subset_sise: did you mean subset_size"):
        validate({"backend": "openvino", "subset_sise": 8})


def test_checkout_recipes_are_the_packaged_ones():
    assert [p.stem for p in RECIPES] == packaged_recipes() and len(RECIPES) >= 7
    assert (Path(__file__).parents[1] / "recipes").resolve() == PACKAGED


def test_packaged_recipes_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ here: the names resolve to the package's own files
    assert load_recipe("openvino_int8_cpu")["name"] == "openvino_int8_cpu"
    assert load_recipe("recipes/brevitas_w8a8.yaml")["backend"] == "brevitas"
    with pytest.raises(RecipeError, match="packaged recipes: brevitas_w4a4"):
        load_recipe("recipes/openvino_int4.yaml")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "elsewhere" / "openvino_int8_cpu.yaml")  # a real folder is not a packaged name


def test_command_line_overrides_keep_commas_and_spaces_inside_values():
    regexes = r"['^patch_embed\.', '^layers\.2\.blocks\.[01]\.mlp\.fc1', 'a, b']"
    assert parse_overrides([f"ignored_modules={regexes}", "distill_seed=1 distill_steps=4"]) == {
        "ignored_modules": [r"^patch_embed\.", r"^layers\.2\.blocks\.[01]\.mlp\.fc1", "a, b"],
        "distill_seed": 1, "distill_steps": 4}
    assert parse_overrides("overflow_fix=enable,subset_size=8") == {"overflow_fix": "enable", "subset_size": 8}
    assert parse_overrides(r"{high_precision_modules: ['^layers\.0\.', downsample], subset_size: 4}") == {
        "high_precision_modules": [r"^layers\.0\.", "downsample"], "subset_size": 4}
    assert parse_overrides(["subset_size=4", "subset_size=8"]) == {"subset_size": 8}  # later items win
    recipe = load_recipe("openvino_int8_cpu").replace(**parse_overrides("subset_size=8"))
    assert recipe.calibration.subset_size == 8


@pytest.mark.parametrize("text,match", [
    ("subset_size", "is not KEY=VALUE"), ("=3", "is not KEY=VALUE"), ("[1, 2]", "is not KEY=VALUE"),
    ("{1: 2}", "not a mapping of recipe keys"), ("ignored_modules=[a,", "not valid YAML")])
def test_malformed_overrides_are_refused_with_the_item(text, match):
    with pytest.raises(RecipeError, match=match):
        parse_overrides(text, "--set")
