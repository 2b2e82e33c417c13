"""Recipes: the shipped ones load; every kind of mistake is one clear line naming file, source and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamix.errors import RecipeError
from datamix.recipe import load_recipe, parse_size

REPO = Path(__file__).parents[1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "q.json").write_text("{}")
    (tmp_path / "images").mkdir(exist_ok=True)
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    return path


GOOD = """
name: tiny
seed: 3
sources:
  - name: a
    converter: vqav2
    inputs: [q.json]
    image_root: images
    ratio: 0.5
shards: {max_samples: 10, max_bytes: 5MB}
"""


def test_a_good_recipe_resolves_paths_relative_to_its_file(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    source = recipe.sources[0]
    assert (recipe.name, recipe.seed, source.amount.kind, source.amount.value) == ("tiny", 3, "ratio", 0.5)
    assert source.inputs == (tmp_path / "q.json",) and source.image_root == tmp_path / "images"
    assert recipe.shards.max_bytes == 5_000_000 and recipe.max_reject_ratio == 0.01


@pytest.mark.parametrize("change, message", [
    (("ratio: 0.5", "ration: 0.5"), "unknown key 'ration'; did you mean 'ratio'?"),
    (("ratio: 0.5", "ratio: 0.5\n    count: 3"), "give exactly one of ratio, count, repeat (found ratio and count)"),
    (("ratio: 0.5", "ratio: 1.5"), "ratio must be in (0, 1], got 1.5; use repeat to oversample"),
    (("ratio: 0.5", "ratio: 0"), "ratio must be in (0, 1], got 0"),
    (("ratio: 0.5", "count: 2.5"), "count must be a positive integer, got 2.5; for a fraction use ratio"),
    (("ratio: 0.5", "repeat: 0.5"), "repeat must be at least 1"),
    (("converter: vqav2", "converter: vizwiz"), "unknown converter 'vizwiz'; known converters: aokvqa, gqa, llava"),
    (("inputs: [q.json]", "inputs: [missing.json]"), "missing.json: no such file or folder"),
    (("image_root: images", "image_root: nowhere"), "nowhere is not a folder"),
    (("seed: 3", "seed: three"), "'seed' must be int"),
    (("max_bytes: 5MB", "max_bytes: lots"), "max_bytes must be a size like 1GB"),
    (("name: tiny", "name: tiny mix"), "must be letters, digits"),
])
def test_each_mistake_names_the_file_the_source_and_the_fix(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    if "source" in change[0] or change[0].startswith(("ratio", "converter", "inputs", "image_root")):
        assert "source 'a' (#1)" in str(info.value)


def test_all_problems_are_reported_at_once(tmp_path):
    path = write(tmp_path, GOOD.replace("ratio: 0.5", "ratio: 2").replace("converter: vqav2", "converter: nope"))
    with pytest.raises(RecipeError, match="2 problems in the recipe") as info:
        load_recipe(path)
    assert "ratio must be" in str(info.value) and "unknown converter 'nope'" in str(info.value)


def test_duplicate_source_names(tmp_path):
    text = GOOD + GOOD[GOOD.index("  - name: a"):GOOD.index("shards")]
    with pytest.raises(RecipeError, match="duplicate source name"):
        load_recipe(write(tmp_path, text.replace("shards: {max_samples: 10, max_bytes: 5MB}\n", "")))


def test_environment_variables_expand_and_an_unset_one_says_what_to_export(tmp_path, monkeypatch):
    text = GOOD.replace("inputs: [q.json]", "inputs: ['${MY_ROOT}/q.json']")
    monkeypatch.delenv("MY_ROOT", raising=False)
    with pytest.raises(RecipeError, match="environment variable MY_ROOT is not set; export MY_ROOT="):
        load_recipe(write(tmp_path, text))
    monkeypatch.setenv("MY_ROOT", str(tmp_path))
    assert load_recipe(write(tmp_path, text)).sources[0].inputs == (tmp_path / "q.json",)
    defaulted = GOOD.replace("inputs: [q.json]", "inputs: ['${UNSET_VAR_X:-.}/q.json']")
    assert load_recipe(write(tmp_path, defaulted)).sources[0].inputs[0].name == "q.json"


def test_planned_sources_may_name_converters_that_do_not_exist_yet(tmp_path):
    text = GOOD.replace("converter: vqav2", "converter: vizwiz\n    planned: true").replace("[q.json]", "[nope.json]")
    assert load_recipe(write(tmp_path, text)).sources[0].planned


def test_sizes():
    assert parse_size("1GB") == 10**9 and parse_size("2 GiB") == 2 * 2**30 and parse_size(512) == 512
    assert parse_size("1.5MB") == 1_500_000 and parse_size("big") is None


@pytest.mark.parametrize("name", ["demo.yaml", "demo-heldout.yaml", "llava_v1_5_mix665k.yaml",
                                  "llava_v1_5_pretrain.yaml"])
def test_shipped_recipes_are_valid(name, monkeypatch, tmp_path):
    monkeypatch.setenv("DATAMIX_DATA", str(tmp_path))
    recipe = load_recipe(REPO / "recipes" / name, check_files=False)
    assert recipe.sources and len({s.name for s in recipe.sources}) == len(recipe.sources)
