"""The recipe's exclude: section: parsed into specs, paths relative to the recipe, every problem one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from decontam_data import write
from datamix.decontam.prints import file_fingerprints
from datamix.builder.workers import Mapper
from datamix.decontam.spec import REFCOCO_EVAL_SPLITS, Tiers
from datamix.errors import RecipeError
from datamix.recipe import load_recipe

HEAD = "name: r\nseed: 1\nsources:\n  - {name: chat, converter: sharegpt, inputs: [chat.json], ratio: 1.0}\n"


def recipe_file(tmp_path: Path, section: str) -> Path:
    write(tmp_path / "chat.json", "[]")
    write(tmp_path / "eval" / "coco_pope_random.json", "")
    write(tmp_path / "eval" / "refs(unc).p", b"")
    (tmp_path / "eval" / "images").mkdir(exist_ok=True)
    return write(tmp_path / "r.yaml", HEAD + section)


def test_exclude_section_is_read_with_paths_relative_to_the_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("EVAL", str(tmp_path / "eval"))
    recipe = load_recipe(recipe_file(tmp_path, """exclude:
  tiers: {phash: 8, bytes: false}
  sets:
    - {name: pope, kind: pope, path: "${EVAL}/coco_pope_random.json", image_root: eval/images}
    - {name: refcoco, kind: refcoco, path: "eval/refs(unc).p", splits: [val]}
    - {name: refcoco-all, kind: refcoco, path: "eval/refs(unc).p"}
"""))
    assert recipe.exclude.tiers == Tiers(ids=True, bytes=False, pixels=True, phash=8)
    pope, refcoco, default = recipe.exclude.sets
    assert pope.path == tmp_path / "eval" / "coco_pope_random.json" and pope.image_root == tmp_path / "eval/images"
    assert refcoco.splits == ("val",) and default.splits == REFCOCO_EVAL_SPLITS
    data = recipe.to_dict()["exclude"]
    assert data["sets"][0]["path"] == "eval/coco_pope_random.json" and data["sets"][0]["image_root"] == "eval/images"
    assert data["tiers"] == {"ids": True, "bytes": False, "pixels": True, "phash": 8}


def test_phash_false_turns_the_tier_off(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path, "exclude:\n  tiers: {phash: false}\n  sets:\n"
                                               "    - {name: p, kind: pope, path: eval/coco_pope_random.json}\n"))
    assert recipe.exclude.tiers.phash is None and recipe.exclude.tiers.names() == ["ids", "bytes", "pixels"]


def test_every_problem_of_the_exclude_section_is_one_line(tmp_path):
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe_file(tmp_path, """exclude:
  tier: {}
  links: [nowhere/image_data.json]
  tiers: {ids: yes please, phash: 99}
  sets:
    - {name: pope, kind: popes, path: eval/coco_pope_random.json}
    - {name: pope, kind: pope, path: eval/missing.json, image_root: eval/nothing, splits: [val]}
    - {name: ../up, kind: refcoco, path: "eval/refs(unc).p", splits: [train2]}
    - just a string
"""))
    lines = str(caught.value).splitlines()[1:]
    text = "\n".join(lines)
    for expected in ["unknown key 'tier'; did you mean 'tiers'?", "nowhere/image_data.json is not a file",
                     "ids must be true or false", "phash must be false or a Hamming distance from 0 to 32",
                     "unknown kind 'popes'; did you mean 'pope'?", "duplicate evaluation set name",
                     "missing.json does not exist", "image_root", "splits is for kind refcoco",
                     "name must be letters", "splits must be a list of train, val, test, testA, testB, testC",
                     "exclude set #4: expected a mapping"]:
        assert expected in text, expected
    assert all(line.startswith(f"  {tmp_path / 'r.yaml'}: ") for line in lines)


def test_an_exclude_without_sets_or_tiers_is_refused(tmp_path):
    with pytest.raises(RecipeError, match="sets must be a non-empty list"):
        load_recipe(recipe_file(tmp_path, "exclude: {sets: []}\n"))
    with pytest.raises(RecipeError, match="every tier is off"):
        load_recipe(recipe_file(tmp_path, "exclude:\n  tiers: {ids: false, bytes: false, pixels: false, "
                                          "phash: false}\n  sets: [{name: p, kind: pope, "
                                          "path: eval/coco_pope_random.json}]\n"))


def test_evaluation_images_outside_their_root_are_never_read(tmp_path):
    write(tmp_path / "secret.jpg", b"\xff\xd8\xff not for us")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    found = file_fingerprints(tmp_path / "root", ["../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg"],
                              10**6, Mapper(None))
    assert all(v.startswith("path_outside_root") for v in found.values()), found
