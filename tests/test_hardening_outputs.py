"""Promise: nothing outside the output folder is touched, and no file datamix did not write is deleted.

Hostile or careless recipes (a source name that is a path), user files beside the shards, two builds
into one folder at once, a --out that is a file or holds the inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from datamix.builder import build
from datamix.errors import BusyError, InputError, RecipeError
from datamix.lock import LOCK_NAME, output_lock
from datamix.paths import inside, is_safe_name, remove_tree
from datamix.subsample import subsample

from test_build import CHAT, VQA, recipe


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    from datamix.demo import write_demo_data

    folder = tmp_path_factory.mktemp("demo") / "raw"
    write_demo_data(folder, seed=3)
    return folder


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return victim


@pytest.mark.parametrize("name", ["/abs/dir", "../../victim", "..", ".hidden", "a/b", "x" * 200, "", "-rf"])
def test_a_source_name_that_is_a_path_is_refused_before_any_work(tmp_path, raw, name):
    victim = _victim(tmp_path)
    hostile = CHAT.format(ratio=1).replace("name: chat", f"name: {name!r}").replace("/abs/dir", str(victim))
    with pytest.raises(RecipeError, match="name must be letters"):
        build(recipe(tmp_path, raw, hostile), tmp_path / "out")
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / "out").exists()


def test_safe_names():
    assert is_safe_name("vqav2") and is_safe_name("llava_v1.5-mix") and is_safe_name("A1")
    for bad in ("..", "a..b", "/x", "a/b", "a\\b", ".x", "-x", "", None, 5, "é"):
        assert not is_safe_name(bad), bad


def test_inside_refuses_paths_and_links_that_leave_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = _victim(tmp_path)
    (root / "link").symlink_to(outside)
    assert inside(root, "a", "b") == root / "a" / "b"
    for parts in (("..", "victim"), ("/etc",), ("link",), ("link", "precious.txt")):
        with pytest.raises(InputError, match="refusing to write outside"):
            inside(root, *parts)
    remove_tree(root, "missing")  # nothing there: nothing happens
    with pytest.raises(InputError):
        remove_tree(root, "link")
    assert (outside / "precious.txt").exists()


def test_user_files_named_like_the_mix_survive_a_rebuild_and_a_subsample(tmp_path, raw):
    path = recipe(tmp_path, raw, CHAT.format(ratio=1))  # mix name "t"
    out = tmp_path / "out"
    build(path, out)
    mine = ["t-backup.tar", "t-old.tar.gz", "t-v1.tar.bz2", "t-1.tar", "t-000001.tar.bak", "notes.txt"]
    for name in mine:
        (out / name).write_text(name)
    (out / "t-000099.tar").write_bytes(b"left by an earlier build")  # ours by name: removed on rebuild
    build(path, out)
    assert all((out / name).read_text() == name for name in mine)
    assert not (out / "t-000099.tar").exists()

    rung = tmp_path / "rung"
    rung.mkdir()
    for name in ("t-r0.5-backup.tar", "t-r0.5-old.tar.gz"):
        (rung / name).write_text(name)
    subsample(out, [0.5], rung, one=True)
    subsample(out, [0.5], rung, one=True)
    assert (rung / "t-r0.5-backup.tar").read_text() == "t-r0.5-backup.tar"
    assert (rung / "t-r0.5-old.tar.gz").exists()


def test_a_second_build_into_a_held_folder_stops_and_names_the_holder(tmp_path, raw):
    path = recipe(tmp_path, raw, CHAT.format(ratio=1))
    out = tmp_path / "out"
    with output_lock(out, "datamix build other.yaml"):
        with pytest.raises(BusyError, match=r"another datamix process is writing here \(datamix build other.yaml, "
                                            rf"pid {os.getpid()}"):
            build(path, out)
    assert not (out / "manifest.json").exists()
    build(path, out)  # released: the build runs, and leaves no lock file behind
    assert not (out / LOCK_NAME).exists()
    rungs = tmp_path / "rungs"
    with output_lock(rungs / "t-r0.5", "datamix subsample t"):
        with pytest.raises(BusyError, match="datamix subsample t"):
            subsample(out, [0.25, 0.5], rungs)
    assert not (rungs / "t-r0.25" / "manifest.json").exists()  # nothing written before every lock was held


def test_two_build_processes_at_once_one_stops_with_a_message(tmp_path, raw):
    path = recipe(tmp_path, raw, CHAT.format(ratio=1))
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from datamix.lock import output_lock
        with output_lock({str(out)!r}, "datamix build first.yaml"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run([sys.executable, "-m", "datamix.cli", "build", str(path), "--out", str(out)],
                                capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 1
    assert second.stderr.count("\n") == 1 and "datamix build first.yaml" in second.stderr
    build(path, out)  # the holder died: its lock died with it
    assert (out / "manifest.json").is_file()


def test_out_that_is_a_file_or_holds_the_inputs_is_refused(tmp_path, raw):
    path = recipe(tmp_path, raw, CHAT.format(ratio=1))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        build(path, tmp_path / "file")
    with pytest.raises(InputError, match="an input of source 'chat'"):
        build(path, raw / "sharegpt")  # the rerun would read its own outputs
    with pytest.raises(InputError, match="an input of source 'vqa'"):
        build(recipe(tmp_path, raw, VQA.format(ratio=1)), raw)  # holds the image root too
    assert (tmp_path / "file").read_text() == "x"
