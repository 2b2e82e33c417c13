"""One writer and one reader of a mix folder: a rung is the same kind of folder as a build, and
Hugging Face `datasets` opens either by its folder name through the dataset card (README.md).

The awkward mixes are the ones feature inference fails on: a first shard of mostly text-only samples
(no image member), and jpg, png and webp members (plus `0.jpg`, `1.png` for a two-image sample).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from datamix.builder import build
from datamix.mixdir import CARD, RECORDED_FILES, load_manifest
from datamix.subsample import subsample
from datamix.verify import verify_mix

from test_build import recipe

SOURCE = """  - name: {name}
    converter: llava
    inputs: [{records}]
    image_root: {root}
    ratio: 1.0
"""


def conversation(question: str, answer: str, images: int) -> list[dict]:
    return [{"from": "human", "value": "<image>\n" * images + question}, {"from": "gpt", "value": answer}]


def write_source(folder: Path, name: str, images: list[list[str]], formats: dict[str, str]) -> str:
    """LLaVA records, one per entry of `images` (a list of file names, empty for text-only), files generated."""
    root = folder / "images"
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i, names in enumerate(images):
        for j, file in enumerate(names):
            Image.new("RGB", (20 + i, 16 + j), (30 * i % 255, 60, 200)).save(root / file, formats[file.rsplit(".")[-1]])
        record = {"id": f"{name}{i}", "conversations": conversation(f"What is shown in {i}?", f"thing {i}", len(names))}
        if len(names) == 1:
            record["image"] = names[0]
        elif names:
            record["image"] = names
        records.append(record)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(records))
    return SOURCE.format(name=name, records=path, root=root)


FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


@pytest.fixture(scope="module")
def mostly_text(tmp_path_factory) -> Path:
    """15 text-only samples and 6 with an image, shards of 7: the first shard is mostly text-only."""
    tmp = tmp_path_factory.mktemp("text")
    source = write_source(tmp, "chat", [[] for _ in range(15)] + [[f"{i}.jpg"] for i in range(6)], FORMATS)
    out = tmp / "out"
    build(recipe(tmp, tmp, source), out, echo=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> Path:
    """jpg, png and webp images, one text-only sample and one two-image sample."""
    tmp = tmp_path_factory.mktemp("formats")
    images = [["a.jpg"], ["b.png"], ["c.webp"], ["d.jpg"], ["e.png"], ["f.webp"], [], ["g.jpg", "h.png"]] * 2
    images = [[f"{k}{name}" for name in names] for k, names in enumerate(images)]
    source = write_source(tmp, "pics", images, FORMATS)
    out = tmp / "out"
    build(recipe(tmp, tmp, source), out, echo=lambda *_: None)
    return out


def first_shard_rows(mix: Path) -> list[dict]:
    index = pq.read_table(mix / "index.parquet").to_pylist()
    return [r for r in index if r["shard"] == load_manifest(mix)["shards"][0]["name"]]


def load(mix: Path, tmp_path: Path):
    import datasets

    return datasets.load_dataset(str(mix), split="train", cache_dir=str(tmp_path / "cache"))


def assert_every_sample_loads(mix: Path, tmp_path: Path) -> None:
    """Every sample, in mix order, with its json row and exactly its own image members, decoded."""
    data = load(mix, tmp_path)
    index = pq.read_table(mix / "index.parquet").to_pylist()
    assert data.num_rows == len(index) == load_manifest(mix)["samples"]
    suffixes = sorted({s for r in data["json"] for s in r["image_members"]})
    for row, entry in zip(data, index):
        assert row["__key__"] == entry["key"] and row["json"]["id"] == entry["id"]
        assert isinstance(row["json"]["meta"], dict) and row["json"]["conversations"] == entry["conversations"]
        assert {s for s in suffixes if row[s] is not None} == set(row["json"]["image_members"])
        for suffix, size in zip(row["json"]["image_members"], entry["image_bytes"]):
            assert isinstance(row[suffix], Image.Image) and row[suffix].size[0] >= 20
    assert sum(len(r["image_members"]) for r in data["json"]) == sum(len(e["image_bytes"]) for e in index)


def test_a_first_shard_of_mostly_text_only_samples_loads_by_folder(mostly_text, tmp_path):
    first = first_shard_rows(mostly_text)
    text_only = sum(not r["images"] for r in first)
    assert text_only > len(first) / 2 and text_only < len(first)  # the shape inference trips over
    assert_every_sample_loads(mostly_text, tmp_path)


def test_jpg_png_webp_and_two_image_samples_load_by_folder(formats, tmp_path):
    data = load(formats, tmp_path)
    members = {s for r in data["json"] for s in r["image_members"]}
    assert members == {"jpg", "png", "webp", "0.jpg", "1.png"}
    assert {row["png"].format for row in data if row["png"] is not None} == {"PNG"}
    assert {row["webp"].format for row in data if row["webp"] is not None} == {"WEBP"}
    assert_every_sample_loads(formats, tmp_path)


def test_a_rung_loads_by_folder_too(formats, tmp_path):
    subsample(formats, [0.5], tmp_path / "rung", one=True)
    assert_every_sample_loads(tmp_path / "rung", tmp_path)


def test_the_card_lists_exactly_the_manifest_shards_and_the_mix(formats):
    text = (formats / CARD).read_text()
    head = yaml.safe_load(text.split("---\n")[1])
    manifest = load_manifest(formats)
    assert head["configs"][0]["data_files"] == [{"split": "train", "path": [s["name"] for s in manifest["shards"]]}]
    names = [f["name"] for f in head["dataset_info"]["features"]]
    assert names == ["__key__", "json", "0.jpg", "1.png", "jpg", "png", "webp"]
    assert "| pics | 16 | 100.0% |" in text and "datasets.load_dataset" in text
    assert str(formats) not in text  # no path of the machine that wrote it


# ---------------------------------------------------------------- a rung is a build's kind of folder

def keys(value, depth: int = 2):
    """The key structure of a JSON value, `depth` levels down (values' types, not their contents)."""
    if isinstance(value, dict) and depth:
        return {k: keys(v, depth - 1) for k, v in value.items()}
    return type(value).__name__ if value is not None else "null"


def folder_files(mix: Path) -> set[str]:
    names = {p.name for p in mix.iterdir() if p.is_file()}
    return {"<shard>" if n.endswith(".tar") else n for n in names}


@pytest.fixture(scope="module")
def build_and_rung(formats, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("rung") / "r"
    subsample(formats, [0.5], out, one=True)
    return formats, out


def test_a_rung_has_the_same_files_as_a_build(build_and_rung):
    built, rung = build_and_rung
    assert folder_files(built) == folder_files(rung) == {"<shard>", "manifest.json", *RECORDED_FILES}


def test_a_rung_has_the_build_manifest_schema_plus_its_parent(build_and_rung):
    built, rung = (json.loads((m / "manifest.json").read_text()) for m in build_and_rung)
    assert built["parent"] is None and rung["parent"]["name"] == built["name"] and rung["parent"]["ratio"] == 0.5
    built.pop("parent"), rung.pop("parent")
    assert keys(built, 1) == keys(rung, 1)
    assert keys(built["sources"], 2) == keys(rung["sources"], 2)
    assert keys(built["shards"][0]) == keys(rung["shards"][0]) and set(built["files"]) == set(rung["files"])


def test_a_rung_has_the_build_stats_schema(build_and_rung):
    built, rung = (json.loads((m / "stats.json").read_text()) for m in build_and_rung)
    assert built["parent"] is None and rung["parent"]["ratio"] == 0.5
    built.pop("parent"), rung.pop("parent")
    assert keys(built, 1) == keys(rung, 1)
    # per source: every figure a build records, a rung records too (records_in is null in a rung)
    b, r = built["sources"]["pics"], rung["sources"]["pics"]
    assert set(b) == set(r) and r["records_in"] is None and r["images_checked"] == 0 and r["shortfall"] == 0
    assert r["written"] == r["samples"] == rung["samples"] == 8 and b["written"] == 16


def test_verify_covers_the_card_and_every_recorded_file(formats, tmp_path):
    copy = tmp_path / "mix"
    shutil.copytree(formats, copy, ignore=shutil.ignore_patterns(".work"))
    assert verify_mix(copy).ok
    card = copy / CARD
    card.write_text(card.read_text().replace("- split: train", "- split: test"))
    (copy / "stats.json").unlink()
    problems = verify_mix(copy).problems
    assert problems == ["README.md: changed (sha256 differs from the manifest)", "stats.json: missing"]


def test_every_image_loaded_is_the_shard_bytes(formats, tmp_path):
    """Through datasets, an image is the member's bytes decoded: compare with Pillow on the shard bytes."""
    from datamix.mixdir import iter_samples

    data = load(formats, tmp_path)
    for row, (_, sample, images) in zip(data, iter_samples(formats)):
        for suffix, raw in images.items():
            assert row[suffix].tobytes() == Image.open(io.BytesIO(raw)).tobytes()


def test_shards_are_the_bytes_webdataset_tarwriter_writes(tmp_path):
    """The members are packed without webdataset (workers pack them; it imports torch), byte for byte its own."""
    import webdataset

    from datamix.mixdir.shards import FIXED_MTIME, OWNER, ShardWriter, pack_sample

    samples = [{"__key__": "000000", "json": b'{"a":1}', "jpg": b"\xff\xd8" + b"x" * 1000},
               {"__key__": "000001", "json": "é".encode() * 300},
               {"__key__": "000002", "json": b"{}", "0.jpg": b"j" * 512, "1.png": b"p" * 513},
               {"__key__": "k" * 120, "json": b""}]  # a name over 100 bytes: PAX records, via tarfile
    expected = io.BytesIO()
    with webdataset.TarWriter(expected, encoder=False, mtime=FIXED_MTIME, user=OWNER, group=OWNER) as tar:
        for sample in samples:
            tar.write(sample)
    writer = ShardWriter(tmp_path, "m", max_samples=10, max_bytes=1 << 30)
    for sample in samples:
        writer.write(pack_sample(sample["__key__"], {k: v for k, v in sample.items() if k != "__key__"}))
    [record] = writer.close()
    assert (tmp_path / record.name).read_bytes() == expected.getvalue()
    assert record.bytes == len(expected.getvalue()) and record.samples == 4


def test_a_shard_written_elsewhere_is_the_shard_the_writer_writes_cut_at_the_same_samples(tmp_path):
    """ShardPlan is the one cut rule: replayed over the sizes alone it gives ShardWriter's shards, and
    write_shard (what a Ray task runs) gives their bytes, under a per-attempt temporary name."""
    from datamix.mixdir.shards import ShardPlan, ShardWriter, pack_sample, write_shard

    packed = [pack_sample(f"{i:06d}", {"json": b"x" * (3000 if i % 5 == 0 else 100)}) for i in range(23)]
    local = ShardWriter(tmp_path / "local", "m", max_samples=3, max_bytes=4096)
    (tmp_path / "local").mkdir()
    for data in packed:
        local.write(data)
    records = local.close()
    plan, starts = ShardPlan(3, 4096), []
    for i, data in enumerate(packed):
        if plan.place(len(data)):
            starts.append(i)
    assert starts == [r.first for r in records] and {r.samples for r in records[:-1]} == {2, 3}  # both rules cut
    (tmp_path / "elsewhere").mkdir()
    for record, stop in zip(records, [*starts[1:], len(packed)]):
        again = write_shard(tmp_path / "elsewhere", record.name, record.first, packed[record.first:stop], "0a1b")
        assert again == record
        assert (tmp_path / "elsewhere" / record.name).read_bytes() == (tmp_path / "local" / record.name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == [r.name for r in records]


def test_the_shard_names_a_writer_may_delete_are_exactly_its_own():
    from datamix.mixdir.shards import shard_pattern

    pattern = shard_pattern("m")
    assert all(pattern.fullmatch(n) for n in ("m-000001.tar", "m-000001.tar.tmp", "m-000001.tar.0a1b2c3d.tmp"))
    assert not any(pattern.fullmatch(n) for n in ("m-000001.tar.bad", "m-000001.tar.cafe", "m-backup.tar",
                                                  "m-000001.tar.bak.tmp", "m-1.tar", "n-000001.tar"))
