"""`datamix stats MIX --duplicates N`: same file under other paths, same pixels in other files, near copies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from datamix.builder import build
from datamix.cli import app
from datamix.stats.duplicates import duplicate_images
from tests.test_fingerprints import photo


def records(names: list[str]) -> list[dict]:
    return [{"id": f"r{i}", "image": name, "conversations": [
        {"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": f"picture {i}"}]}
        for i, name in enumerate(names)]


def duplicate_mix(tmp_path: Path) -> Path:
    """Source `a`: ten distinct photos; source `b`: a byte copy of a0 under another name, a lossless WebP of
    a1, a half-size copy of a2, and two photos of its own. Every sample is selected (ratio 1)."""
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(10):
        photo(100 + i, (320, 240)).save(root / f"a{i}.png")
    (root / "b_copy.png").write_bytes((root / "a0.png").read_bytes())
    Image.open(root / "a1.png").save(root / "b_lossless.webp", lossless=True)
    Image.open(root / "a2.png").resize((160, 120), Image.Resampling.BICUBIC).save(root / "b_small.jpg", quality=90)
    for i in range(2):
        photo(200 + i, (320, 240)).save(root / f"b{i}.png")
    (tmp_path / "a.json").write_text(json.dumps(records([f"a{i}.png" for i in range(10)])))
    (tmp_path / "b.json").write_text(json.dumps(records(["b_copy.png", "b_lossless.webp", "b_small.jpg",
                                                          "b0.png", "b1.png"])))
    sources = "".join(f"  - name: {s}\n    converter: llava\n    inputs: [{tmp_path / (s + '.json')}]\n"
                      f"    image_root: {root}\n    ratio: 1.0\n" for s in "ab")
    (tmp_path / "r.yaml").write_text(f"name: dups\nseed: 1\nsources:\n{sources}shards: {{max_samples: 4}}\n")
    build(tmp_path / "r.yaml", tmp_path / "mix", echo=lambda *a, **k: None)
    return tmp_path / "mix"


def test_each_kind_of_duplicate_is_found_once_and_distinct_photos_are_not(tmp_path):
    mix = duplicate_mix(tmp_path)
    dup = duplicate_images(mix, 6)
    # a0 and b_copy.png are one file: 14 distinct images of 15 samples.
    assert dup["distinct_images"] == 14
    assert dup["same_file_other_path"] == {"images": 1, "extra_paths": 1, "across_sources": 1,
                                           "per_source": {"a": 1, "b": 1}}
    assert dup["same_pixels_other_file"]["images"] == 1
    near = dup["near"]
    assert near["pairs"] == 1 and near["images"] == 1 and near["across_sources"] == 1
    example = dup["examples"][0]
    assert {example["a"]["path"], example["b"]["path"]} == {"a2.png", "b_small.jpg"}
    assert example["a_thumbnail"].startswith("data:image/jpeg;base64,")
    assert sum(near["per_source"].values()) == 1


def test_the_threshold_decides_what_is_near(tmp_path):
    mix = duplicate_mix(tmp_path)
    assert duplicate_images(mix, 0)["near"]["by_distance"] == {"0": 1}  # the half-size copy keeps its pHash
    hashes = duplicate_images(mix, 40)["near"]  # far above any sensible threshold: unrelated photos pair up
    assert hashes["pairs"] > 1


def test_cli_prints_the_table_writes_json_and_shows_pairs_in_the_report(tmp_path):
    mix = duplicate_mix(tmp_path)
    out = CliRunner().invoke(app, ["stats", str(mix), "--duplicates", "6", "--json", str(tmp_path / "s.json"),
                                   "--report", str(tmp_path / "rep"), "--workers", "2"])
    assert out.exit_code == 0, out.output
    assert "duplicate images" in out.output and "same pixels" in out.output
    figures = json.loads((tmp_path / "s.json").read_text())
    assert figures["duplicate_images"]["near"]["pairs"] == 1
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "near-duplicate examples" in page and "b_small.jpg" in page and page.count("data:image/jpeg") >= 2


def test_duplicates_needs_a_mix_folder(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    out = CliRunner().invoke(app, ["stats", str(tmp_path / "x.parquet"), "--duplicates", "4"])
    assert out.exit_code == 1 and "mix folder" in out.output
