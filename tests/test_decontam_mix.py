"""`datamix decontaminate` on a finished mix, and the report's example pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from decontam_data import CAUGHT, KEPT, recipe, rejects, write, write_world, written_ids
from datamix.builder import build
from datamix.cli import app
from datamix.mixdir import load_manifest
from datamix.mixdir.shards import sha256_file
from datamix.verify import verify_mix

runner = CliRunner()


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> tuple[Path, Path]:
    """A mix built with no exclude: section (every sample in it), and its world."""
    root = tmp_path_factory.mktemp("world")
    write_world(root)
    build(recipe(root, extra="", name="plain.yaml"), root / "mix", echo=lambda *a: None)
    return root, root / "mix"


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_decontaminating_a_mix_against_a_recipe_gives_a_verified_clean_mix(parent, tmp_path):
    root, mix = parent
    assert len(written_ids(mix)) == 10
    result = run("decontaminate", mix, "--against", recipe(root, name="exclude.yaml"), "--out", tmp_path / "clean")
    assert result.exit_code == 0, result.output
    assert "3 samples kept, 7 removed" in result.output
    clean = tmp_path / "clean"
    assert written_ids(clean) == KEPT
    assert {r["id"]: (r["tier"], r["eval_set"], r["eval_item"]) for r in rejects(clean)} == CAUGHT
    assert verify_mix(clean).ok, verify_mix(clean).problems
    manifest = load_manifest(clean)
    assert manifest["parent"] == {"name": "clean", "manifest_sha256": sha256_file(mix / "manifest.json"),
                                  "ratio": None, "removed": 7}
    assert manifest["sources"]["llava"]["available"] == 10 and manifest["sources"]["llava"]["written"] == 3
    assert [s["name"] for s in manifest["decontamination"]["against"]] == ["pope", "gqa", "textvqa", "images"]
    assert "by `datamix decontaminate`: 7 samples" in (clean / "README.md").read_text()
    # the same cut as a build with the exclude: section gives
    build(recipe(root, name="exclude.yaml"), tmp_path / "built", echo=lambda *a: None)
    assert written_ids(tmp_path / "built") == written_ids(clean)


def test_evaluation_sets_given_as_kind_and_path(parent, tmp_path):
    root, mix = parent
    result = run("decontaminate", mix, "--against", f"pope:{root / 'eval' / 'coco_pope_random.json'}",
                 "--against", f"list:{root / 'eval' / 'images.txt'}", "--eval-image-root", root / "eval" / "images",
                 "--tiers", "ids,bytes,pixels", "--out", tmp_path / "clean", "--workers", "2")
    assert result.exit_code == 0, result.output
    # no VG links given: VG 5 stays; the phash tier is off: the resized copy stays
    assert {r["id"]: r["tier"] for r in rejects(tmp_path / "clean")} == {
        "llava/s0": "ids", "llava/s5": "bytes", "llava/s6": "pixels"}


def test_the_stats_report_shows_each_removal_beside_its_evaluation_image(parent, tmp_path):
    root, mix = parent
    run("decontaminate", mix, "--against", recipe(root, name="exclude.yaml"), "--out", tmp_path / "clean")
    result = run("stats", tmp_path / "clean", "--report", tmp_path / "report")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Example pairs" in page and "images: e3.jpg" in page and "pope: COCO_val2014_000000391895.jpg" in page
    assert page.count("data:image/jpeg;base64,") >= 2 * 4  # training and evaluation thumbnails side by side
    pairs = json.loads((tmp_path / "clean" / "decontamination.json").read_text())["examples"]
    assert len(pairs) == len(CAUGHT)


@pytest.mark.parametrize("against, message", [
    ("pope", "give a recipe (.yaml) or KIND:PATH"),
    ("nope:x.json", "give a recipe (.yaml) or KIND:PATH"),
    ("pope:missing.json", "missing.json does not exist"),
])
def test_bad_against_values_are_one_line_errors(parent, tmp_path, against, message):
    result = run("decontaminate", parent[1], "--against", against, "--out", tmp_path / "clean")
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "clean" / "manifest.json").exists()


def test_a_bad_evaluation_record_is_counted_and_an_empty_file_stops_with_one_line(parent, tmp_path):
    bad = write(tmp_path / "coco_pope_random.json", '{"question_id": 1, "image": "COCO_val2014_0001.jpg"\n')
    result = run("decontaminate", parent[1], "--against", f"pope:{bad}", "--out", tmp_path / "clean")
    assert result.exit_code == 0, result.output  # a bad line is one unreadable record, counted, not a crash
    record = load_manifest(tmp_path / "clean")["decontamination"]["decontaminate"]["eval_sets"]
    assert record["coco_pope_random"]["records_without_image"] == 1
    empty = write(tmp_path / "empty.json", "")
    result = run("decontaminate", parent[1], "--against", f"textvqa:{empty}", "--out", tmp_path / "clean2")
    assert result.exit_code == 1 and "the file is empty" in result.output
    assert len(result.output.strip().splitlines()) == 1
