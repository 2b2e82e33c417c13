"""`export` on hostile or interrupted runs: no write outside the folder it belongs to, an atomic hf dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamix import export
from datamix.cli import app
from datamix.errors import InputError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    from datamix.builder import build
    from datamix.demo import write_demo_data

    root = tmp_path_factory.mktemp("exportmix")
    write_demo_data(root / "raw", seed=0, n_images=24)
    recipe = (REPO / "recipes" / "demo.yaml").read_text().replace("${DATAMIX_DATA:-../demo_out/raw}", str(root / "raw"))
    (root / "recipe.yaml").write_text(recipe.replace("max_reject_ratio: 0.05", "max_reject_ratio: 0.5"))
    build(root / "recipe.yaml", root / "mix", echo=lambda *_: None)
    return root / "mix"


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- llava: every write stays in --images-out


def with_source(monkeypatch, source: str, only: str = "gqa") -> None:
    """The mix as export reads it, with one source renamed: what a mix built before source names were checked
    (or a hand-edited shard) holds. The export itself must refuse it, whatever the recipe loader lets through."""
    real = export.iter_samples

    def renamed(mix_dir, **kwargs):
        for key, row, images in real(mix_dir, **kwargs):
            yield key, ({**row, "source": source} if row["source"] == only else row), images

    monkeypatch.setattr(export, "iter_samples", renamed)


@pytest.mark.parametrize("source", ["../../escaped", "gqa/../../../escaped", "{tmp}/absolute"])
def test_llava_export_refuses_a_source_name_that_leaves_the_images_folder(mix, tmp_path, monkeypatch, source):
    with_source(monkeypatch, source.format(tmp=tmp_path))
    out, images = tmp_path / "json" / "mix.json", tmp_path / "json" / "images"
    before = files_under(tmp_path)
    with pytest.raises(InputError) as exc:
        export.export_llava(mix, out, images)
    message = str(exc.value)
    assert message.startswith("sample ") and "(key " in message and "outside the images folder" in message
    assert "\n" not in message
    assert all(p.is_relative_to(images) for p in files_under(tmp_path) - before)  # nothing written elsewhere
    assert not out.exists() and not out.with_name("mix.json.tmp").exists()  # no JSON, not even half of one


def test_llava_export_cli_names_the_sample(mix, tmp_path, monkeypatch):
    with_source(monkeypatch, "../../escaped")
    result = runner.invoke(app, ["export", str(mix), "--format", "llava", "--out", str(tmp_path / "j" / "m.json"),
                                 "--images-out", str(tmp_path / "j" / "img")])
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error: sample gqa/") and "'../../escaped/" in line and "unexpected" not in line
    assert not (tmp_path / "escaped").exists()


def test_llava_export_does_not_write_through_a_symlink_out_of_the_folder(mix, tmp_path):
    images, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    images.mkdir()
    elsewhere.mkdir()
    (images / "vqav2").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InputError, match="outside the images folder"):
        export.export_llava(mix, tmp_path / "mix.json", images)
    assert not any(elsewhere.iterdir())


def test_llava_export_within_the_folder_still_works(mix, tmp_path):
    counts = export.export_llava(mix, tmp_path / "mix.json", tmp_path / "images")
    entries = json.loads((tmp_path / "mix.json").read_text())
    assert counts["samples"] == len(entries) and counts["images"] > 0
    named = {e["image"] for e in entries if isinstance(e.get("image"), str)}
    assert named and all((tmp_path / "images" / p).is_file() for p in named)


# ---------------------------------------------------------------- hf: atomic, and a rerun after a kill


KILLED_EXPORT = """
import os, signal, sys
from datasets import Dataset
from datamix import export

save = Dataset.save_to_disk

def save_half_then_die(self, path, **kw):
    save(self, path, **kw)
    os.remove(os.path.join(path, "state.json"))  # as if killed before the last file was written
    os.kill(os.getpid(), signal.SIGKILL)

Dataset.save_to_disk = save_half_then_die
export.export_hf(sys.argv[1], sys.argv[2])
"""


def export_hf_cli(mix: Path, out: Path):
    return runner.invoke(app, ["export", str(mix), "--format", "hf", "--out", str(out)])


def test_hf_export_killed_mid_write_then_rerun(mix, tmp_path):
    import datasets

    out = tmp_path / "hf"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, str(mix), str(out)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()  # the half-written dataset is not where a reader would find it
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers == [f"hf.tmp-{int(leftovers[0].rsplit('-', 1)[1])}"]
    result = export_hf_cli(mix, out)
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # the killed export's work folder is gone
    assert datasets.load_from_disk(str(out)).num_rows == json.loads((mix / "manifest.json").read_text())["samples"]


def test_hf_export_interrupted_leaves_nothing_and_keeps_the_previous_dataset(mix, tmp_path, monkeypatch):
    import datasets

    out = tmp_path / "hf"
    assert export_hf_cli(mix, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    save = datasets.Dataset.save_to_disk

    def save_then_interrupt(self, path, **kw):  # Ctrl-C before the last file of the dataset is written
        save(self, path, **kw)
        os.remove(os.path.join(path, "state.json"))
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        export.export_hf(mix, out)
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]  # no work folder, no cache left behind
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    assert export_hf_cli(mix, out).exit_code == 0 and [p.name for p in tmp_path.iterdir()] == ["hf"]


def test_hf_export_leaves_other_folders_alone(mix, tmp_path):
    """Only work folders named by export for this --out, of processes that are gone, are removed."""
    live = tmp_path / f"hf.tmp-{os.getppid()}"  # a running process: perhaps an export in progress
    other = [tmp_path / "hf.tmp-notapid", tmp_path / "hf2.tmp-999999999", tmp_path / "hf.tmp-999999999.keep"]
    for folder in [live, *other]:
        folder.mkdir()
        (folder / "x").write_text("mine")
    dead = tmp_path / "hf.tmp-999999999"  # above any pid_max: no such process
    dead.mkdir()
    assert export.stale_work_folders(tmp_path / "hf") == [dead]
    assert export_hf_cli(mix, tmp_path / "hf").exit_code == 0
    assert not dead.exists() and live.is_dir() and all((f / "x").is_file() for f in other)


# ---------------------------------------------------------------- damaged shards: named, in both formats


def run_export(fmt: str, mix_dir: Path, tmp_path: Path):
    out = tmp_path / ("mix.json" if fmt == "llava" else "hf")
    return runner.invoke(app, ["export", str(mix_dir), "--format", fmt, "--out", str(out)])


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [x for x in result.output.strip().splitlines() if not x.startswith(("Generating", "Saving"))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("fmt", ["llava", "hf"])
def test_export_names_a_sample_whose_image_member_is_missing(mix, tmp_path, monkeypatch, fmt):
    real = export.iter_samples

    def without_first_image(mix_dir, **kwargs):
        dropped = False
        for key, row, images in real(mix_dir, **kwargs):
            if not dropped and row["image_members"]:
                images, dropped = {}, True
                yield key, row, images
                continue
            yield key, row, images

    monkeypatch.setattr(export, "iter_samples", without_first_image)
    line = error_line(run_export(fmt, mix, tmp_path))
    assert line.startswith("error: sample ") and "named in its json is not in the shard" in line
    assert [p.name for p in tmp_path.iterdir() if p.name != "images"] == []  # no JSON, no dataset, no work folder


@pytest.mark.parametrize("fmt", ["llava", "hf"])
def test_export_names_an_unreadable_shard(mix, tmp_path, fmt):
    import hashlib
    import shutil

    bad = Path(shutil.copytree(mix, tmp_path / "bad"))
    manifest = json.loads((bad / "manifest.json").read_text())
    shard = bad / manifest["shards"][0]["name"]
    garbage = b"not a tar " * (shard.stat().st_size // 10)
    shard.write_bytes(garbage)
    manifest["shards"][0].update(bytes=len(garbage), sha256=hashlib.sha256(garbage).hexdigest())
    (bad / "manifest.json").write_text(json.dumps(manifest))  # as if damaged before the manifest was written
    out = tmp_path / "out"
    out.mkdir()
    line = error_line(run_export(fmt, bad, out))
    assert line.startswith(f"error: {shard}: ")
    assert [p.name for p in out.iterdir() if p.name != "images"] == []
