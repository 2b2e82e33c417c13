"""`datamix build`: exact nested selection, determinism, shards, records, resume, bad images, budgets."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from datamix.builder import build, plan
from datamix.errors import BuildError
from datamix.selection import round_quota
from datamix.mixdir.shards import ShardWriter

DEMO = Path(__file__).parents[1] / "recipes" / "demo.yaml"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    from datamix.demo import write_demo_data

    folder = tmp_path_factory.mktemp("demo") / "raw"
    write_demo_data(folder, seed=1)
    return folder


@pytest.fixture
def demo_env(raw, monkeypatch):
    monkeypatch.setenv("DATAMIX_DATA", str(raw))
    return raw


def recipe(tmp_path: Path, raw: Path, sources: str, *, extra: str = "") -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nseed: 5\nsources:\n{sources}\nshards: {{max_samples: 7, max_bytes: 1MB}}\n"
                    f"max_reject_ratio: 0.5\n{extra}".replace("RAW", str(raw)))
    return path


VQA = """  - name: vqa
    converter: vqav2
    inputs: [RAW/vqav2/v2_OpenEnded_mscoco_train2014_questions.json, RAW/vqav2/v2_mscoco_train2014_annotations.json]
    image_root: RAW/coco
    ratio: {ratio}
"""
CHAT = """  - name: chat
    converter: sharegpt
    inputs: [RAW/sharegpt]
    ratio: {ratio}
"""


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def index(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "index.parquet")


def test_demo_build_writes_shards_and_records_with_manifest_last(demo_env, tmp_path):
    manifest = build(DEMO, tmp_path / "mix")
    out = tmp_path / "mix"
    names = sorted(p.name for p in out.glob("demo-mix-*.tar"))
    assert names == [s["name"] for s in manifest["shards"]] and len(names) >= 2
    assert not list(out.glob("*.tmp")) and not (out / ".work" / "buckets").exists()
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # the manifest is the newest file: written after everything it describes
    newest = max(out.iterdir(), key=lambda p: p.stat().st_mtime_ns if p.is_file() else 0)
    assert newest.name == "manifest.json"
    assert manifest["samples"] == index(out).height == sum(s["samples"] for s in manifest["shards"])
    stats = json.loads((out / "stats.json").read_text())
    assert {s: v["written"] for s, v in stats["sources"].items()} == {
        s: v["written"] for s, v in manifest["sources"].items()}
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["reason"].split(":")[0] for r in rejects}
    assert {"no_answer", "missing_image", "truncated_image"} <= reasons


def test_two_builds_and_two_workers_are_byte_identical(demo_env, tmp_path):
    build(DEMO, tmp_path / "a")
    build(DEMO, tmp_path / "b")
    build(DEMO, tmp_path / "c", workers=2)
    assert files(tmp_path / "a") == files(tmp_path / "b") == files(tmp_path / "c")


def test_ratios_are_exact_nested_and_shuffled_across_sources(raw, tmp_path):
    ids = {}
    for ratio in (0.25, 0.5, 1.0):
        out = tmp_path / f"r{ratio}"
        manifest = build(recipe(tmp_path, raw, VQA.format(ratio=ratio) + CHAT.format(ratio=ratio)), out)
        frame = index(out)
        ids[ratio] = set(frame["id"])
        sources = manifest["sources"]
        assert [c["requested"] for c in sources.values()] == [round_quota(c["available"] * ratio)
                                                             for c in sources.values()]
        for name, counts in sources.items():
            if ratio < 1:  # a broken image is replaced by the next ranked sample: the count stays exact
                assert counts["written"] == counts["requested"]
            else:  # nothing left to replace it with
                assert counts["written"] == counts["requested"] - (counts["rejected"] - conversion_rejects(out, name))
        assert frame["source"][:12].n_unique() == 2  # the order is shuffled, not a block per source
    assert ids[0.25] < ids[0.5] < ids[1.0]


def conversion_rejects(out: Path, source: str) -> int:
    lines = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    return sum(1 for r in lines if r["source"] == source and r["stage"] == "convert")


def test_count_and_repeat_give_unique_ids(raw, tmp_path):
    sources = VQA.replace("ratio: {ratio}", "repeat: 2.5") + CHAT.replace("ratio: {ratio}", "count: 5")
    manifest = build(recipe(tmp_path, raw, sources), tmp_path / "out")
    frame = index(tmp_path / "out")
    vqa = manifest["sources"]["vqa"]
    assert vqa["written"] == int(vqa["available"] * 2.5 + 0.5) or vqa["written"] == 2 * vqa["selected"] + (
        vqa["requested"] - 2 * vqa["available"])
    assert manifest["sources"]["chat"]["written"] == 5
    assert frame["id"].n_unique() == frame.height
    assert frame.filter(pl.col("id").str.ends_with("@2")).height == vqa["requested"] - 2 * vqa["available"]


def test_an_interrupted_build_resumes_to_identical_outputs(raw, tmp_path, monkeypatch):
    path = recipe(tmp_path, raw, VQA.format(ratio=1.0) + CHAT.format(ratio=1.0))
    build(path, tmp_path / "clean")
    original_write, calls = ShardWriter.write, {"n": 0}

    def crash_midway(self, sample):
        calls["n"] += 1
        if calls["n"] == 17:  # in the middle of the third shard (7 samples per shard)
            raise KeyboardInterrupt("killed")
        original_write(self, sample)

    monkeypatch.setattr(ShardWriter, "write", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        build(path, tmp_path / "resumed")
    out = tmp_path / "resumed"
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.glob("t-*.tar")) == ["t-000000.tar", "t-000001.tar"]  # complete ones only
    assert list(out.glob("*.tar.tmp"))  # the partial shard never has its final name
    first = (out / "t-000000.tar").stat()
    monkeypatch.setattr(ShardWriter, "write", original_write)
    build(path, out)
    assert files(out) == files(tmp_path / "clean")
    again = (out / "t-000000.tar").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # reused, not rewritten


def test_a_torn_journal_line_and_a_changed_shard_are_rewritten(raw, tmp_path, monkeypatch):
    path = recipe(tmp_path, raw, VQA.format(ratio=1.0))
    build(path, tmp_path / "clean")
    out = tmp_path / "x"
    original_write, calls = ShardWriter.write, {"n": 0}

    def crash(self, sample):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        original_write(self, sample)

    monkeypatch.setattr(ShardWriter, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        build(path, out)
    monkeypatch.setattr(ShardWriter, "write", original_write)
    with open(out / "t-000001.tar", "r+b") as f:  # damage a completed shard
        f.seek(600)
        f.write(b"X")
    with open(out / ".work" / "journal.jsonl", "a") as f:
        f.write('{"name": "t-0000')
    build(path, out)
    assert files(out) == files(tmp_path / "clean")


def test_dry_run_prints_the_plan_and_writes_nothing(raw, tmp_path):
    path = recipe(tmp_path, raw, VQA.format(ratio=0.5) + CHAT.format(ratio=1.0))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rows = plan(path)
    assert [r["source"] for r in rows] == ["vqa", "chat"]
    assert rows[0]["selected"] == int(rows[0]["available"] * 0.5 + 0.5) and rows[0]["expected_bytes"] > 0
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_planned_sources_stop_the_build_unless_skipped(raw, tmp_path):
    planned = "  - name: vizwiz\n    converter: vizwiz\n    planned: true\n    inputs: [RAW/none.json]\n    count: 9\n"
    path = recipe(tmp_path, raw, CHAT.format(ratio=1.0) + planned)
    with pytest.raises(BuildError, match=r"cannot build yet: vizwiz \(converter 'vizwiz' not written yet\)"):
        build(path, tmp_path / "out")
    manifest = build(path, tmp_path / "out", skip_planned=True)
    assert list(manifest["sources"]) == ["chat"]


def test_count_above_what_is_available_is_refused(raw, tmp_path):
    path = recipe(tmp_path, raw, CHAT.replace("ratio: {ratio}", "count: 100000"))
    with pytest.raises(BuildError, match="count 100,000 but only .* samples are available"):
        build(path, tmp_path / "out")


# ----- every bad image kind, through a real build -----

def image_source(tmp_path: Path) -> tuple[Path, Path]:
    """A LLaVA-format source whose images are each broken (or odd) in a different way."""
    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("RGB", (20, 10), (200, 10, 10)).save(root / "good.jpg")
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    Image.new("RGB", (8, 8), (0, 0, 255)).save(root / "gif.jpg", format="GIF")
    Image.new("RGB", (8, 8), (0, 255, 0)).convert("P").save(root / "palette.png")
    Image.new("I;16", (8, 8), 40000).save(root / "deep.png")
    Image.new("RGB", (8, 8)).save(root / "web.webp")
    data = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "page.jpg").write_text("<html>404</html>")
    Image.new("1", (3000, 3000)).save(root / "bomb.png")
    (tmp_path / "outside.jpg").write_bytes(data)
    os.symlink(tmp_path / "outside.jpg", root / "link.jpg")
    names = ["good.jpg", "cmyk.jpg", "gif.jpg", "palette.png", "deep.png", "web.webp", "truncated.jpg",
             "empty.jpg", "page.jpg", "bomb.png", "missing.jpg", "../outside.jpg", "link.jpg"]
    records = [{"id": f"r{i}", "image": name, "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": name}]}
        for i, name in enumerate(names)]
    (tmp_path / "records.json").write_text(json.dumps(records))
    return root, tmp_path / "records.json"


IMAGES = """  - name: imgs
    converter: llava
    inputs: [{records}]
    image_root: {root}
    ratio: 1.0
"""


def test_every_bad_image_kind_is_rejected_with_its_reason_and_odd_formats_are_reencoded(tmp_path):
    root, records = image_source(tmp_path)
    path = recipe(tmp_path, tmp_path, IMAGES.format(records=records, root=root),
                  extra="max_image_pixels: 1000000\n").read_text().replace("max_reject_ratio: 0.5",
                                                                           "max_reject_ratio: 0.9")
    (tmp_path / "r.yaml").write_text(path)
    build(tmp_path / "r.yaml", tmp_path / "out")
    rejects = {json.loads(line)["id"]: json.loads(line)["reason"].split(":")[0]
               for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()}
    assert rejects == {"imgs/r6": "truncated_image", "imgs/r7": "empty_image", "imgs/r8": "undecodable_image",
                       "imgs/r9": "decompression_bomb", "imgs/r10": "missing_image",
                       "r11": "bad_image_path",  # `../` is refused by the schema already, at conversion
                       "imgs/r12": "path_outside_root"}  # a symlink out of the root, refused before reading
    members = {}
    for shard in sorted((tmp_path / "out").glob("t-*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            for name in names:
                if name.endswith(".json"):
                    row = json.loads(tar.extractfile(name).read())
                    members[row["conversations"][1]["value"]] = (row["image_members"], row["meta"].get("reencoded"))
    assert members["good.jpg"] == (["jpg"], None)
    assert members["gif.jpg"] == (["jpg"], ["gif->jpg"])
    assert members["cmyk.jpg"] == (["jpg"], ["cmyk->jpg"])
    assert members["palette.png"] == (["png"], ["palette->png"])
    assert members["deep.png"][0] == ["png"] and members["deep.png"][1][0].endswith("->png")
    assert members["web.webp"] == (["webp"], None)


def test_a_source_over_its_error_budget_fails_with_reasons_tallied(tmp_path):
    root, records = image_source(tmp_path)
    path = recipe(tmp_path, tmp_path, IMAGES.format(records=records, root=root)).read_text()
    (tmp_path / "r.yaml").write_text(path.replace("max_reject_ratio: 0.5", "max_reject_ratio: 0.1"))
    with pytest.raises(BuildError) as info:
        build(tmp_path / "r.yaml", tmp_path / "out")
    message = str(info.value)
    assert "source 'imgs': 5 of 12 checked samples have unusable images" in message  # the bomb passes 89M px
    assert "path_outside_root 1" in message and "truncated_image 1" in message and "missing_image 1" in message
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_source_may_be_an_already_converted_parquet_file_and_is_validated(raw, tmp_path):
    from datamix.convert import run_conversion
    from datamix.schema import Sample
    from datamix.table import read_samples, write_samples

    run_conversion("sharegpt", [raw / "sharegpt"], tmp_path / "chat.parquet")
    rows = list(read_samples(tmp_path / "chat.parquet"))
    broken = Sample(id="sharegpt/bad", source="sharegpt", task="text", images=[],
                    conversations=[{"from": "gpt", "value": "starts with the model"}])
    write_samples(tmp_path / "mixed.parquet", rows + [broken])
    source = f"  - name: chat\n    parquet: {tmp_path / 'mixed.parquet'}\n    ratio: 1.0\n"
    manifest = build(recipe(tmp_path, raw, source), tmp_path / "out")
    assert manifest["sources"]["chat"]["written"] == len(rows)
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text()
    assert '"id": "sharegpt/bad"' in rejects and "bad_role_order" in rejects and '"stage": "validate"' in rejects


def test_the_index_holds_every_sample_with_its_image_hashes(demo_env, tmp_path):
    import hashlib

    build(DEMO, tmp_path / "mix")
    frame = index(tmp_path / "mix")
    with tarfile.open(tmp_path / "mix" / frame["shard"][0]) as tar:
        key = frame["key"][0]
        row = json.loads(tar.extractfile(f"{key}.json").read())
        image = tar.extractfile(f"{key}.{row['image_members'][0]}").read()
    first = frame.row(0, named=True)
    assert first["conversations"] == row["conversations"] and json.loads(first["meta"]) == row["meta"]
    assert first["image_sha256"] == [hashlib.sha256(image).hexdigest()] and first["image_bytes"] == [len(image)]
    assert first["turns"] == sum(t["from"] == "human" for t in row["conversations"])
