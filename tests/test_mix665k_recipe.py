"""The shipped 665K recipe: all ten sources have converters, and the recipe builds end to end.

The demo data holds every source in its official format and LLaVA's image layout, under its own file
names; the test points the recipe's inputs at them and scales every count down in the published
proportions (665,298 -> about 150), so the whole recipe, options and image roots included, runs here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datamix.builder import build, plan
from datamix.converters import CONVERTERS
from datamix.mixdir import load_manifest
from datamix.verify import verify_mix

RECIPE = Path(__file__).parents[1] / "recipes" / "llava_v1_5_mix665k.yaml"
PUBLISHED = {"llava_instruct": 157712, "sharegpt": 40688, "vqav2": 82783, "gqa": 72140, "okvqa": 8998,
             "ocrvqa": 80000, "aokvqa": 66160, "textcaps": 21953, "refcoco": 48447, "vg": 86417}
DEMO_INPUTS = {  # the recipe's official file names -> where `datamix demo-data` writes the same format
    "LLaVA-Instruct-150K/llava_instruct_150k.json": "llava/llava_instruct_demo.json",
    "ShareGPT/ShareGPT_V3_unfiltered_cleaned_split.json": "sharegpt/sharegpt_demo.json",
    "VQAv2/": "vqav2/",
    "GQA/questions1.2/": "gqa/",
    "OKVQA/": "okvqa/",
    "TextCaps/": "textcaps/",
}
TOTAL = 150


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    from datamix.demo import write_demo_data

    folder = tmp_path_factory.mktemp("demo665") / "raw"
    write_demo_data(folder, seed=2)
    return folder


def test_every_source_of_the_recipe_has_a_converter_and_the_published_count():
    recipe = yaml.safe_load(RECIPE.read_text())
    sources = {s["name"]: s for s in recipe["sources"]}
    assert {name: s["count"] for name, s in sources.items()} == PUBLISHED
    assert sum(PUBLISHED.values()) == 665_298
    assert all(s["converter"] in CONVERTERS and "planned" not in s for s in sources.values())


def scaled_recipe(raw: Path, folder: Path) -> Path:
    text = RECIPE.read_text()
    for official, demo in DEMO_INPUTS.items():
        text = text.replace("${DATAMIX_DATA}/" + official, "${DATAMIX_DATA}/" + demo)
    recipe = yaml.safe_load(text.replace("${DATAMIX_DATA}", str(raw)))
    for source in recipe["sources"]:
        source["count"] = max(1, round(source["count"] * TOTAL / 665_298))
    recipe["shards"] = {"max_samples": 64, "max_bytes": "50MB"}
    recipe["max_reject_ratio"] = 0.6  # the demo data is full of the broken records real downloads have
    path = folder / "mix665k_demo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.mark.slow
def test_the_665k_recipe_builds_at_demo_scale_in_the_published_proportions(raw, tmp_path):
    path = scaled_recipe(raw, tmp_path)
    rows = {r["source"]: r for r in plan(path)}
    assert set(rows) == set(PUBLISHED)
    assert all(r["available"] >= r["selected"] for r in rows.values()), rows
    manifest = build(path, tmp_path / "mix", echo=lambda *_: None)
    written = {name: counts["written"] for name, counts in manifest["sources"].items()}
    expected = {name: max(1, round(n * TOTAL / 665_298)) for name, n in PUBLISHED.items()}
    assert written == expected
    assert manifest["samples"] == sum(expected.values())
    assert verify_mix(tmp_path / "mix").ok
    assert load_manifest(tmp_path / "mix")["recipe"]["name"] == "llava-v1.5-mix665k"
