"""`exclude:` in a build: each tier catches what it should, near misses stay, selection stays exact and nested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decontam_data import CAUGHT, EXCLUDE, KEPT, recipe, rejects, write_world, written_ids
from datamix.builder import build
from datamix.errors import BuildError
from datamix.verify import verify_mix

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_world(root)
    return root


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def built(world, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("built") / "mix"
    return out, build(recipe(world), out, echo=quiet)


def test_each_tier_catches_its_copy_and_near_misses_stay(built):
    mix, manifest = built
    got = {r["id"]: (r["tier"], r["eval_set"], r["eval_item"]) for r in rejects(mix)}
    assert got == CAUGHT
    assert written_ids(mix) == KEPT
    by_id = {r["id"]: r for r in rejects(mix)}
    assert by_id["llava/s7"]["distance"] > 0 and by_id["llava/s7"]["distance"] <= 4
    assert by_id["llava/s5"]["image"] == "other/renamed.jpg"
    assert by_id["llava/s5"]["reason"] == "bytes_match: images e1.jpg"


def test_counts_per_source_tier_and_eval_set_in_manifest_and_stats(built):
    mix, manifest = built
    record = manifest["decontamination"]["decontaminate"]
    assert record["removed"] == {"llava": {"bytes": 1, "ids": 4, "phash": 1, "pixels": 1}}
    assert {name: s["removed"] for name, s in record["eval_sets"].items()} == {
        "pope": {"llava": 2}, "gqa": {"llava": 1}, "textvqa": {"llava": 1}, "images": {"llava": 3}}
    assert record["eval_sets"]["images"]["images_fingerprinted"] == 3
    assert record["eval_sets"]["pope"]["files"][0]["name"] == "coco_pope_random.json"
    assert record["vg_coco_links"] == 1 and "pillow" in manifest["decontamination"]["fingerprint_versions"]
    stats = json.loads((mix / "stats.json").read_text())
    assert stats["decontamination"] == manifest["decontamination"]
    assert stats["sources"]["llava"]["rejected"]["decontaminate"] == {
        "ids_match": 4, "bytes_match": 1, "phash_match": 1, "pixels_match": 1}
    # nothing lost: every converted record is written or in the ledger
    assert manifest["sources"]["llava"]["written"] + manifest["sources"]["llava"]["rejected"] == 10


def test_mix_with_removals_verifies_and_records_its_example_pairs(built):
    mix, manifest = built
    assert verify_mix(mix).ok, verify_mix(mix).problems
    assert "decontamination.json" in manifest["files"]
    pairs = json.loads((mix / "decontamination.json").read_text())["examples"]
    assert {(p["group"], p["tier"], p["sample"]["name"]) for p in pairs} == {
        (s, t, i) for i, (t, s, _) in CAUGHT.items()}
    resized = next(p for p in pairs if p["tier"] == "phash")
    assert resized["match"]["name"] == "images: e3.jpg" and resized["distance"] > 0
    assert resized["sample"]["thumbnail"].startswith("data:image/jpeg;base64,")
    assert resized["match"]["thumbnail"].startswith("data:image/jpeg;base64,")  # the eval image, from its root


def test_count_is_exact_after_removal_and_too_many_is_a_clear_error(world, tmp_path):
    manifest = build(recipe(world, amount="count: 2"), tmp_path / "two", echo=quiet)
    assert manifest["sources"]["llava"]["written"] == 2 and manifest["sources"]["llava"]["available"] == 3
    with pytest.raises(BuildError, match="only 3 samples are available after exclude/dedupe"):
        build(recipe(world, amount="count: 4", name="four.yaml"), tmp_path / "four", echo=quiet)


def test_rungs_stay_nested_and_the_build_is_byte_identical(world, tmp_path, built):
    build(recipe(world, amount="ratio: 0.34"), tmp_path / "a", echo=quiet)
    build(recipe(world, amount="ratio: 0.67", name="m.yaml"), tmp_path / "b", echo=quiet)
    small, middle = written_ids(tmp_path / "a"), written_ids(tmp_path / "b")
    assert len(small) == 1 and len(middle) == 2 and small < middle < KEPT
    build(recipe(world), tmp_path / "again", echo=quiet)
    files = sorted(p.name for p in built[0].iterdir() if p.is_file())
    assert files == sorted(p.name for p in (tmp_path / "again").iterdir() if p.is_file())
    for name in files:
        assert (built[0] / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_a_threshold_below_the_distance_keeps_the_resized_copy(world, tmp_path):
    text = EXCLUDE.replace("phash: 4", "phash: 1")
    build(recipe(world, extra=text), tmp_path / "mix", echo=quiet)
    assert "llava/s7" in written_ids(tmp_path / "mix")
    assert {r["id"] for r in rejects(tmp_path / "mix")} == set(CAUGHT) - {"llava/s7"}


def test_tiers_turned_off_catch_nothing_of_theirs(world, tmp_path):
    text = EXCLUDE.replace("{ids: true, bytes: true, pixels: true, phash: 4}",
                           "{ids: false, bytes: true, pixels: false, phash: false}")
    build(recipe(world, extra=text), tmp_path / "mix", echo=quiet)
    assert {r["id"]: r["tier"] for r in rejects(tmp_path / "mix")} == {"llava/s5": "bytes"}


def test_a_rebuild_reuses_the_fingerprint_cache(world, tmp_path, monkeypatch):
    import datamix.decontam.prints as prints

    out = tmp_path / "mix"
    build(recipe(world), out, echo=quiet)
    assert (out / ".work" / "fingerprints" / "sources" / "llava.parquet").is_file()
    calls = []
    real = prints.fingerprint_job
    monkeypatch.setattr(prints, "fingerprint_job", lambda args: calls.append(args) or real(args))
    build(recipe(world), out, echo=quiet)
    assert calls == []  # nothing re-hashed: sizes and times unchanged
    (world / "train" / "other" / "different.jpg").touch()  # a changed file is hashed again, only it
    build(recipe(world), out, echo=quiet)
    assert [a[1] for a in calls] == ["other/different.jpg"]


def test_a_rung_of_a_decontaminated_mix_says_what_its_parent_removed(built, tmp_path):
    from datamix.subsample import subsample

    out, manifest = built
    subsample(out, [0.5], tmp_path / "ladder")
    rung = next((tmp_path / "ladder").iterdir())
    record = json.loads((rung / "manifest.json").read_text())["decontamination"]
    assert record == {"inherited_from_parent": manifest["decontamination"]}
    assert not verify_mix(rung).problems


def test_an_evaluation_set_that_can_match_nothing_is_warned_about(world, tmp_path):
    """LLaVA's own GQA eval jsonl read as kind llava, without an image_root: `n161313.jpg` carries no id key
    of any pool and nothing can be fingerprinted, so the set could never catch a sample."""
    (tmp_path / "llava_gqa_testdev_balanced.jsonl").write_text(
        '{"question_id": "201307251", "image": "n161313.jpg", "text": "Is it?"}\n')
    extra = (f"exclude:\n  sets:\n    - {{name: gqa-jsonl, kind: llava, path: "
             f"{tmp_path / 'llava_gqa_testdev_balanced.jsonl'}}}\n    - {{name: pope, kind: pope, path: "
             f"ROOT/eval/coco_pope_random.json}}\n")
    lines = []
    build(recipe(world, extra=extra, name="w.yaml"), tmp_path / "mix", echo=lines.append)
    warnings = [str(line) for line in lines if "can match nothing" in str(line)]
    assert warnings == ["      warning: evaluation set 'gqa-jsonl' can match nothing: none of its images has an "
                        "id key and none was fingerprinted; check its kind, or give its image_root"]
