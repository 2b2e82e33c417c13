"""`dedupe:` in a build: the same image under another path or source, near copies, identical conversations;
the first by rank (recipe source order, then the seeded rank) stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decontam_data import conversation, encode, photo, write
from datamix.builder import build
from datamix.recipe import load_recipe
from datamix.selection import rank_order

HELLO = [{"from": "human", "value": "Hello?"}, {"from": "gpt", "value": "Hi."}]


def records(*rows) -> str:
    return json.dumps([{"id": i, "image": img, "conversations": conv} if img else {"id": i, "conversations": conv}
                       for i, img, conv in rows])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dup")
    picture = photo(7)
    write(root / "a" / "coco/train2017/000000000001.jpg", encode(picture, "JPEG", quality=90))
    write(root / "b" / "copy/p.jpg", (root / "a" / "coco/train2017/000000000001.jpg").read_bytes())
    write(root / "b" / "near/p_small.jpg", encode(picture.resize((200, 150)), "JPEG", quality=60))
    write(root / "b" / "other/q.jpg", encode(photo(8), "JPEG", quality=90))
    write(root / "a.json", records(
        ("a1", "coco/train2017/000000000001.jpg", conversation("What is this?")),
        ("a2", "coco/train2017/000000000001.jpg", conversation("What colour is it?")),  # same image, same place
        ("t1", None, HELLO), ("t2", None, HELLO)))  # the same text twice in one source
    write(root / "b.json", records(
        ("b1", "copy/p.jpg", conversation("Describe it.")), ("b2", "near/p_small.jpg", conversation("And this?")),
        ("b3", "other/q.jpg", conversation("What is this?")),  # the same words about another picture: kept
        ("t3", None, HELLO)))
    return root


def dedupe_recipe(root: Path, dedupe: str | None, name: str = "r.yaml") -> Path:
    sources = "".join(f"  - name: {s}\n    converter: llava\n    inputs: [ROOT/{s}.json]\n    image_root: ROOT/{s}\n"
                      f"    ratio: 1.0\n" for s in ("a", "b"))
    section = f"dedupe: {dedupe}\n" if dedupe else ""
    return write(root / name, f"name: d\nseed: 11\nsources:\n{sources}{section}".replace("ROOT", str(root)))


def dropped(mix: Path) -> dict[str, tuple[str, str]]:
    rows = [json.loads(line) for line in (mix / "rejects.jsonl").read_text().splitlines()]
    return {r["id"]: (r["tier"], r["duplicate_of"]) for r in rows if r["stage"] == "dedupe"}


def first_of(ids: list[str]) -> tuple[str, str]:
    """(kept, dropped) of two ids of source a, by the seeded rank."""
    order = rank_order(11, "a", [f"llava/{i}" for i in ids])
    return f"a/{ids[order[0]]}", f"a/{ids[order[1]]}"


def test_exact_copies_under_another_path_and_repeated_conversations_go(world, tmp_path):
    manifest = build(dedupe_recipe(world, "{images: bytes, conversations: true}"), tmp_path / "mix",
                     echo=lambda *a: None)
    kept_text, repeated_text = first_of(["t1", "t2"])
    assert dropped(tmp_path / "mix") == {
        "b/b1": ("bytes", first_of(["a1", "a2"])[0]),  # a1 and a2 (one place) both stay
        repeated_text: ("conversation", kept_text), "b/t3": ("conversation", kept_text)}
    assert manifest["decontamination"]["dedupe"]["removed"] == {"a": {"conversation": 1},
                                                                 "b": {"bytes": 1, "conversation": 1}}
    assert manifest["sources"]["a"]["written"] == 3 and manifest["sources"]["b"]["written"] == 2


def test_near_copies_go_with_phash_and_stay_with_exact_pixels(world, tmp_path):
    build(dedupe_recipe(world, "{images: phash, phash: 4}"), tmp_path / "near", echo=lambda *a: None)
    near = dropped(tmp_path / "near")
    assert set(near) == {"b/b1", "b/b2"} and near["b/b2"][0] == "phash"
    build(dedupe_recipe(world, "{images: pixels}", "p.yaml"), tmp_path / "pixels", echo=lambda *a: None)
    assert set(dropped(tmp_path / "pixels")) == {"b/b1"}


def test_dedupe_section_is_validated(world):
    from datamix.errors import RecipeError

    with pytest.raises(RecipeError) as caught:
        load_recipe(dedupe_recipe(world, "{images: sha1, phash: 99, conversations: maybe, image: x}", "bad.yaml"))
    text = str(caught.value)
    assert "images must be one of bytes, pixels, phash" in text and "phash must be false or a Hamming" in text
    assert "conversations must be true or false" in text and "unknown key 'image'; did you mean 'images'?" in text


def test_decontaminate_applies_a_recipes_dedupe_to_a_finished_mix(world, tmp_path):
    from typer.testing import CliRunner

    from datamix.cli import app
    from datamix.verify import verify_mix

    build(dedupe_recipe(world, None, "plain.yaml"), tmp_path / "mix", echo=lambda *a: None)
    result = CliRunner().invoke(app, ["decontaminate", str(tmp_path / "mix"), "--against",
                                      str(dedupe_recipe(world, "{images: bytes, conversations: true}", "d.yaml")),
                                      "--out", str(tmp_path / "clean")])
    assert result.exit_code == 0, result.output
    got = dropped(tmp_path / "clean")
    assert len(got) == 3 and {"b/b1", "b/t3"} <= set(got) and len(set(got) & {"a/t1", "a/t2"}) == 1
    assert got["b/b1"][0] == "bytes" and got["b/t3"][0] == "conversation"
    assert verify_mix(tmp_path / "clean").ok


def test_a_removed_copy_whose_kept_twin_is_not_selected_says_so(world, tmp_path):
    """Dedupe is decided over every candidate (nesting holds), so at `count: 1` source a may not select the
    sample b1 repeats: the entry says duplicate_of_in_mix false, and the build says how many."""
    path = dedupe_recipe(world, "{images: bytes, conversations: true}")
    path.write_text(path.read_text().replace("ratio: 1.0", "count: 1", 1))
    lines = []
    build(path, tmp_path / "mix", echo=lines.append)
    rows = [json.loads(line) for line in (tmp_path / "mix" / "rejects.jsonl").read_text().splitlines()]
    index_ids = set(__import__("polars").read_parquet(tmp_path / "mix" / "index.parquet")["id"])
    dedupes = [r for r in rows if r["stage"] == "dedupe"]
    assert dedupes and all(r["duplicate_of_in_mix"] == (r["duplicate_of"] in index_ids) for r in dedupes)
    outside = sum(not r["duplicate_of_in_mix"] for r in dedupes)
    assert outside >= 1
    assert any(f"dedupe: {outside:,} removed sample(s) repeat a kept sample that is not in the mix" in str(line)
               for line in lines)


def test_decontaminate_keeps_what_a_build_keeps_and_decides_repeat_copies_together(world, tmp_path):
    """A mix with `repeat: 2` on source a, deduplicated afterwards, holds the same samples as the same recipe
    built with its dedupe: the same first by rank (the build's converter ids), both copies of each kept sample
    (a copy is never a duplicate of itself), and every copy of a removed one, each in the ledger."""
    dedupe = "{images: bytes, conversations: true}"

    def repeated(path: Path) -> Path:
        path.write_text(path.read_text().replace("ratio: 1.0", "repeat: 2", 1))
        return path

    build(repeated(dedupe_recipe(world, None, "plain2.yaml")), tmp_path / "mix", echo=lambda *a: None)
    against = repeated(dedupe_recipe(world, dedupe, "d2.yaml"))
    from datamix.decontam.mix import decontaminate, parse_against

    exclude, spec = parse_against([str(against)], None, [], None)
    decontaminate(tmp_path / "mix", tmp_path / "clean", exclude=exclude, dedupe=spec)
    build(against, tmp_path / "direct", echo=lambda *a: None)
    ids = {name: set(__import__("polars").read_parquet(tmp_path / name / "index.parquet")["id"])
           for name in ("mix", "clean", "direct")}
    assert ids["clean"] == ids["direct"]
    kept_text = first_of(["t1", "t2"])[0]
    assert {kept_text, kept_text + "@1"} <= ids["clean"]  # both copies of the kept text-only sample
    removed = [json.loads(line) for line in (tmp_path / "clean" / "rejects.jsonl").read_text().splitlines()]
    assert {r["id"] for r in removed} == ids["mix"] - ids["clean"]
    assert all(r["copy_of"] == r["id"].rsplit("@", 1)[0] for r in removed if "@" in r["id"])
    record = json.loads((tmp_path / "clean" / "manifest.json").read_text())["decontamination"]["dedupe"]
    assert sum(n for tiers in record["removed"].values() for n in tiers.values()) == len(removed)
