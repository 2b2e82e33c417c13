"""Promise: what is written is what was verified, and what is read is what was written.

An image changed between its check and its shard, a damaged parent given to `subsample`, a manifest
edited by hand or a stray tar beside the shards: each is caught, named, and never laundered into a
mix that verifies clean.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import datamix.builder as build_module
from datamix.builder import build
from datamix.cli import app
from datamix.errors import BuildError, InputError
from datamix.mixdir import SEAL, load_manifest, manifest_digest
from datamix.subsample import subsample
from datamix.verify import verify_mix

from test_build import recipe

runner = CliRunner()

SOURCE = """  - name: imgs
    converter: llava
    inputs: [{records}]
    image_root: {root}
    ratio: 1.0
"""


def image_recipe(tmp_path: Path, n: int = 6, exif: dict[int, int] | None = None) -> tuple[Path, Path]:
    root = tmp_path / "images"
    root.mkdir()
    records = []
    for i in range(n):
        image = Image.new("RGB", (32 + i, 24), (40 * i % 255, 90, 160))
        kwargs = {}
        if exif and i in exif:
            data = Image.Exif()
            data[0x0112] = exif[i]
            kwargs["exif"] = data
        image.save(root / f"{i}.jpg", "JPEG", quality=90, **kwargs)
        records.append({"id": f"r{i}", "image": f"{i}.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": f"colour {i}"}]})
    (tmp_path / "records.json").write_text(json.dumps(records))
    return recipe(tmp_path, tmp_path, SOURCE.format(records=tmp_path / "records.json", root=root)), root


def _after_picking(monkeypatch, change):
    """Run `change` between the image checks (pick) and the shard writing, as a concurrent writer would."""
    original = build_module.pick_source

    def pick_then_change(*args, **kwargs):
        picked = original(*args, **kwargs)
        change()
        return picked

    monkeypatch.setattr(build_module, "pick_source", pick_then_change)


def test_an_image_truncated_after_its_check_never_reaches_a_shard(tmp_path, monkeypatch):
    path, root = image_recipe(tmp_path)
    victim = root / "3.jpg"
    _after_picking(monkeypatch, lambda: victim.write_bytes(victim.read_bytes()[:200]))
    with pytest.raises(BuildError, match="3.jpg differs from the file verified earlier"):
        build(path, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_an_image_replaced_by_another_valid_one_after_its_check_is_caught(tmp_path, monkeypatch):
    path, root = image_recipe(tmp_path)
    _after_picking(monkeypatch, lambda: shutil.copy(root / "1.jpg", root / "2.jpg"))
    with pytest.raises(BuildError, match="image changed during the build: 2.jpg"):
        build(path, tmp_path / "out")


def test_exif_orientation_is_recorded_in_meta_and_not_applied(tmp_path):
    path, root = image_recipe(tmp_path, exif={2: 6, 4: 1})
    build(path, tmp_path / "out")
    rows = {}
    for shard in sorted((tmp_path / "out").glob("t-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    row = json.loads(tar.extractfile(member).read())
                    image = tar.extractfile(member.name.replace(".json", ".jpg")).read()
                    rows[row["id"]] = (row["meta"], image)
    assert rows["imgs/r2"][0]["exif_orientation"] == [6]
    assert rows["imgs/r2"][1] == (root / "2.jpg").read_bytes()  # bytes untouched: nothing rotated
    assert "exif_orientation" not in rows["imgs/r4"][0]  # 1 is "upright": nothing to record
    assert "exif_orientation" not in rows["imgs/r0"][0]


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("mix")
    path, _ = image_recipe(tmp_path, n=20)
    build(path, tmp_path / "out")
    return tmp_path / "out"


@pytest.fixture
def copy(mix, tmp_path):
    shutil.copytree(mix, tmp_path / "mix", ignore=shutil.ignore_patterns(".work"))
    return tmp_path / "mix"


def _flip_byte(shard: Path, at: int = 700) -> None:
    data = bytearray(shard.read_bytes())
    data[at] ^= 0xFF
    shard.write_bytes(bytes(data))


def test_subsample_refuses_a_parent_with_a_flipped_byte_and_writes_no_rung(copy, tmp_path):
    shard = copy / load_manifest(copy)["shards"][0]["name"]
    _flip_byte(shard)
    with pytest.raises(InputError, match=f"{shard.name}: changed since it was written"):
        subsample(copy, [1.0], tmp_path / "rung", one=True)
    assert not (tmp_path / "rung" / "manifest.json").exists()
    subsample(copy, [1.0], tmp_path / "rung", one=True, verify=False)  # the explicit way past the check
    assert (tmp_path / "rung" / "manifest.json").exists()


def test_subsample_refuses_a_truncated_shard_or_a_changed_index(copy, tmp_path):
    shard = copy / load_manifest(copy)["shards"][1]["name"]
    shard.write_bytes(shard.read_bytes()[:-512])
    result = runner.invoke(app, ["subsample", str(copy), "--ratio", "0.5", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and f"{shard.name}: " in result.output and "bytes, the manifest says" in result.output
    index = copy / "index.parquet"
    index.write_bytes(index.read_bytes() + b"\0")
    with pytest.raises(InputError, match="index.parquet: changed since the mix was written"):
        subsample(copy, [0.5], tmp_path / "r2", one=True)


def _edit_manifest(folder: Path, edit, reseal: bool = False) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    if reseal:  # a careful forger recomputes the seal: the index still gives the edit away
        manifest[SEAL] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit, reseal, expected", [
    (lambda m: m["sources"]["imgs"].update(written=5), False, "edited after it was written"),
    (lambda m: m["sources"]["imgs"].update(written=5), True, "says 5 samples written, the index holds 20"),
    (lambda m: m.update(seed=m["seed"] + 1), True, "selected_ids_sha256 does not match"),
    (lambda m: m["sources"]["imgs"].update(selected_ids_sha256="0" * 64), True, "selected_ids_sha256 does not match"),
    (lambda m: m["recipe"].update(description="not what was built"), False, "edited after it was written"),
    (lambda m: m.pop(SEAL), False, "no manifest_sha256"),
])
def test_verify_catches_edits_of_the_manifest_itself(copy, edit, reseal, expected):
    assert verify_mix(copy).ok
    _edit_manifest(copy, edit, reseal)
    report = verify_mix(copy)
    assert any(expected in p for p in report.problems), report.problems


def test_verify_reports_every_file_the_manifest_does_not_list(copy):
    (copy / "extra.tar").write_bytes(b"x" * 1024)
    (copy / "t-old.tar.gz").write_bytes(b"x")
    (copy / "notes.txt").write_text("mine")
    problems = verify_mix(copy).problems
    assert "extra.tar: unexpected tar, not in the manifest (a reader globbing *.tar takes it)" in problems
    assert any(p.startswith("t-old.tar.gz: unexpected tar") for p in problems)
    assert "notes.txt: unexpected file, not part of the mix" in problems
    assert len(problems) == 3


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(shards=5), "'shards' must be a list"),
    (lambda m: m.update(samples="20"), "'samples' must be an integer"),
    (lambda m: m.update(name="../../elsewhere"), "'name' missing or not a plain name"),
    (lambda m: m["shards"][0].update(name="../x.tar"), "needs name, first, samples, bytes, sha256"),
    (lambda m: m["shards"][0].pop("sha256"), "needs name, first, samples, bytes, sha256"),
])
def test_a_malformed_manifest_is_one_clear_line_for_every_command(copy, tmp_path, edit, message):
    _edit_manifest(copy, edit)
    for args in (["verify", str(copy)], ["show", str(copy)],
                 ["subsample", str(copy), "--ratio", "0.5", "--out", str(tmp_path / "r")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "unexpected" not in result.output, (args, result.output)


@pytest.mark.parametrize("fmt", ["llava", "hf"])
def test_export_refuses_a_shard_with_a_flipped_byte_unless_told_not_to_verify(copy, tmp_path, fmt):
    shard = copy / load_manifest(copy)["shards"][0]["name"]
    _flip_byte(shard)
    out = tmp_path / ("mix.json" if fmt == "llava" else "hf")
    result = runner.invoke(app, ["export", str(copy), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 1 and f"{shard.name}: changed since it was written" in result.output, result.output
    assert not out.exists()
    result = runner.invoke(app, ["export", str(copy), "--format", fmt, "--out", str(out), "--no-verify"])
    assert result.exit_code == 0, result.output
    assert out.exists()
