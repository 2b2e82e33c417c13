"""`datamix build --engine ray`: byte-identical to a local build, retried tasks, a killed worker, a killed driver.

One local Ray (2 CPUs) serves the module; its workers run tests/ray_faults.py's hook, which injects faults
only while a flag file is armed. The mix: the demo recipe (rejects, repeats, text-only samples) plus a source
of two-image samples, cut into shards of 7 samples or 30 KB, so both cut rules happen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import ray_faults
from datamix.builder import build
from datamix.errors import ConverterError, EngineError

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PAIRS = """  - name: pairs
    parquet: {parquet}
    image_root: {root}
    ratio: 1.0
"""


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def local_ray(faults):
    """A fresh local Ray for this module: workers import the tests' fault hook, and see $DATAMIX_FAULTS.
    Imported here, not skipped when missing: `make test` installs the extra, and the tests must run."""
    import ray

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "DATAMIX_FAULTS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), str(REPO), saved["PYTHONPATH"]) if p)
    os.environ["DATAMIX_FAULTS"] = str(faults)
    ray.init(num_cpus=2, runtime_env={"worker_process_setup_hook": "ray_faults.arm"}, logging_level="ERROR")
    yield
    ray.shutdown()
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def mix_recipe(tmp_path_factory) -> Path:
    from datamix.demo import write_demo_data
    from datamix.schema import Sample
    from datamix.table import write_samples

    folder = tmp_path_factory.mktemp("ray-mix")
    raw = folder / "raw"
    write_demo_data(raw, seed=3, n_images=60)
    root = raw / "coco" / "train2017"
    images = sorted(p.name for p in root.iterdir() if p.suffix == ".jpg")
    pairs = [Sample(id=f"pairs/{i}", source="pairs", task="conversation", images=[images[i], images[i + 1]],
                    conversations=[{"from": "human", "value": "<image>\n<image>\nWhich is larger?"},
                                   {"from": "gpt", "value": "The first." if i % 2 else "The second."}])
             for i in range(0, 16, 2)]
    write_samples(folder / "pairs.parquet", pairs)
    text = (REPO / "recipes" / "demo.yaml").read_text().replace("${DATAMIX_DATA:-../demo_out/raw}", str(raw))
    text = text.replace("max_reject_ratio: 0.05", "max_reject_ratio: 0.5")
    text = text.replace("shards: {max_samples: 100, max_bytes: 2MB}", "shards: {max_samples: 7, max_bytes: 30KB}")
    text = text.replace("sources:\n", "sources:\n" + PAIRS.format(parquet=folder / "pairs.parquet", root=root))
    (folder / "recipe.yaml").write_text(text)
    return folder / "recipe.yaml"


@pytest.fixture(scope="module")
def clean(mix_recipe, tmp_path_factory) -> Path:
    """The local build every Ray build must equal."""
    out = tmp_path_factory.mktemp("clean") / "mix"
    build(mix_recipe, out, echo=lambda *a: None)
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def ray_build(recipe: Path, out: Path) -> dict:
    return build(recipe, out, engine="ray", echo=lambda *a: None)


def test_the_mix_has_what_must_match(clean):
    """The fixture exercises every path: rejects, repeats, text-only and two-image samples, both cut rules."""
    frame = pl.read_parquet(clean / "index.parquet")
    shards = json.loads((clean / "manifest.json").read_text())["shards"]
    assert frame.filter(pl.col("images").list.len() == 2).height >= 4  # some demo images are broken on purpose
    assert frame.filter(pl.col("images").list.len() == 0).height > 0
    assert frame.filter(pl.col("id").str.ends_with("@1")).height > 0
    assert (clean / "rejects.jsonl").read_text().count("\n") > 5
    counts = [s["samples"] for s in shards[:-1]]
    assert 7 in counts and min(counts) < 7  # cut by count, and by bytes


@pytest.mark.slow
def test_a_ray_build_equals_local_builds_byte_for_byte(local_ray, mix_recipe, clean, tmp_path):
    manifest = ray_build(mix_recipe, tmp_path / "ray")
    build(mix_recipe, tmp_path / "local2", workers=2, echo=lambda *a: None)
    assert files(tmp_path / "ray") == files(clean) == files(tmp_path / "local2")
    assert len(manifest["shards"]) > 8
    assert not (tmp_path / "ray" / ".work" / "buckets").exists()


def test_a_task_that_fails_once_is_retried_with_identical_output(local_ray, faults, mix_recipe, clean, tmp_path):
    (faults / ray_faults.FAIL_PACK).touch()
    ray_build(mix_recipe, tmp_path / "out")
    assert not (faults / ray_faults.FAIL_PACK).exists()  # it did fail once
    assert files(tmp_path / "out") == files(clean)


def test_a_worker_killed_mid_shard_leaves_no_partial_shard(local_ray, faults, mix_recipe, clean, tmp_path):
    (faults / ray_faults.KILL_WRITER).touch()
    ray_build(mix_recipe, tmp_path / "out")
    killed = (faults / ray_faults.KILLED).read_text()  # the worker writing this shard died with SIGKILL
    (faults / ray_faults.KILLED).unlink()
    out = tmp_path / "out"
    assert files(out) == files(clean) and (out / killed).exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_killed_driver_resumes_to_identical_output(local_ray, mix_recipe, clean, tmp_path):
    out, slow = tmp_path / "out", tmp_path / "slow"
    slow.mkdir()
    (slow / ray_faults.SLOW_WRITES).touch()
    script = ("import ray, sys; from datamix.builder import build\n"
              "ray.init(num_cpus=2, runtime_env={'worker_process_setup_hook': 'ray_faults.arm'},\n"
              "         logging_level='ERROR')\n"
              "build(sys.argv[1], sys.argv[2], engine='ray', echo=lambda *a: None)\n")
    env = os.environ | {"DATAMIX_FAULTS": str(slow)}
    driver = subprocess.Popen([sys.executable, "-c", script, str(mix_recipe), str(out)], env=env,
                              start_new_session=True, stderr=subprocess.DEVNULL)
    journal = out / ".work" / "journal.jsonl"
    try:
        deadline = time.monotonic() + 60
        # two shards journaled, and the fourth written while the third is still being written
        while not (journal.exists() and journal.read_text().count("\n") >= 2
                   and (out / "demo-mix-000003.tar").exists()):
            assert driver.poll() is None and time.monotonic() < deadline, "the build ended before it was killed"
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)  # the driver only: its Ray processes go down with it
        driver.wait()
    finally:
        time.sleep(1)
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever of that session is left
        except ProcessLookupError:
            pass
    assert not (out / "manifest.json").exists()
    journaled = [json.loads(line)["name"] for line in journal.read_text().splitlines()]
    kept = {name: stamp(out / name) for name in journaled}
    beyond = {p.name: stamp(p) for p in out.glob("*.tar") if p.name not in kept}
    assert journaled[:2] == ["demo-mix-000000.tar", "demo-mix-000001.tar"] and "demo-mix-000003.tar" in beyond
    ray_build(mix_recipe, out)
    assert files(out) == files(clean)
    assert {name: stamp(out / name) for name in journaled} == kept  # resumed after the journal's last
    assert all(stamp(out / name) != before for name, before in beyond.items())  # the rest rewritten


def stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


def test_without_ray_installed_the_error_names_the_extra(mix_recipe, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EngineError, match=r"pip install 'datamix\[ray\]'"):
        build(mix_recipe, tmp_path / "out", engine="ray")


def test_a_cluster_that_does_not_answer_is_one_line(mix_recipe, tmp_path):
    result = subprocess.run([sys.executable, "-m", "datamix.cli", "build", str(mix_recipe), "--out",
                             str(tmp_path / "out"), "--engine", "ray", "--address", "127.0.0.1:9"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no Ray cluster answers at 127.0.0.1:9 (Connection refused); start one with `ray start --head` "
        "or check --address"]


def test_a_path_a_node_cannot_see_is_named_before_any_work(local_ray, tmp_path):
    from datamix.builder.ray_engine import check_shared_folders

    (tmp_path / "images").mkdir()
    check_shared_folders(tmp_path, [tmp_path / "images"])  # visible: no error, nothing left behind
    assert list(tmp_path.iterdir()) == [tmp_path / "images"]
    with pytest.raises(EngineError, match=r"not visible from every Ray node: .*: .*/gone; the output folder"):
        check_shared_folders(tmp_path, [tmp_path / "images", tmp_path / "gone"])


def test_an_error_raised_in_a_task_is_the_same_one_line_as_locally(local_ray, mix_recipe, tmp_path):
    raw = mix_recipe.parent / "raw" / "vqav2"
    (tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json").write_text('{"questions": [')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\nseed: 0\nsources:\n  - name: vqa\n    converter: vqav2\n    inputs: "
                      f"[{tmp_path / 'v2_OpenEnded_mscoco_train2014_questions.json'}, "
                      f"{raw / 'v2_mscoco_train2014_annotations.json'}]\n    ratio: 1.0\n")
    with pytest.raises(ConverterError) as local:
        build(recipe, tmp_path / "local", echo=lambda *a: None)
    with pytest.raises(ConverterError) as on_ray:  # the task's own error, not Ray's wrapper with its traceback
        ray_build(recipe, tmp_path / "ray")
    assert str(on_ray.value) == str(local.value) and "not valid JSON" in str(local.value)


def test_the_cli_converts_and_builds_on_ray(local_ray, mix_recipe, clean, tmp_path):
    from typer.testing import CliRunner

    from datamix.cli import app

    raw = mix_recipe.parent / "raw" / "vqav2"
    runner = CliRunner()
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine / "vqav2.parquet"
        result = runner.invoke(app, ["convert", "vqav2", str(raw), "--out", str(out), "--engine", engine])
        assert result.exit_code == 0, result.output
        outputs[engine] = (out.read_bytes(), out.with_name("vqav2.rejects.jsonl").read_bytes())
    assert outputs["ray"] == outputs["local"]
    result = runner.invoke(app, ["build", str(mix_recipe), "--out", str(tmp_path / "mix"), "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "mix") == files(clean)


@pytest.mark.slow
def test_a_two_node_cluster_builds_the_same_bytes(mix_recipe, clean, tmp_path):
    """Two Ray nodes of one CPU each on this machine (ray.cluster_utils.Cluster), in a process of its own: the
    folder check runs on each node, packed bytes travel between the nodes' object stores."""
    script = ("import sys, ray; from ray.cluster_utils import Cluster; from datamix.builder import build\n"
              "cluster = Cluster(initialize_head=True, head_node_args={'num_cpus': 1})\n"
              "cluster.add_node(num_cpus=1)\n"
              "ray.init(address=cluster.address, logging_level='ERROR')\n"
              "print(sum(1 for n in ray.nodes() if n['Alive']), 'nodes')\n"
              "build(sys.argv[1], sys.argv[2], engine='ray', echo=lambda *a: None)\n"
              "ray.shutdown(); cluster.shutdown()\n")
    result = subprocess.run([sys.executable, "-c", script, str(mix_recipe), str(tmp_path / "mix")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 nodes" in result.stdout
    assert files(tmp_path / "mix") == files(clean)


def test_a_decontaminated_build_on_ray_equals_the_local_one(local_ray, tmp_path):
    """The exclude step fingerprints images through the engine's ordered map: the same removals, the same bytes."""
    from decontam_data import recipe, write_world

    write_world(tmp_path / "world")
    path = recipe(tmp_path / "world")
    local = build(path, tmp_path / "local", echo=lambda *a: None)
    on_ray = ray_build(path, tmp_path / "ray")
    assert local["decontamination"]["decontaminate"]["removed"]["llava"]["phash"] == 1 and on_ray == local
    assert files(tmp_path / "ray") == files(tmp_path / "local")


def test_any_error_in_a_task_is_raised_as_itself_and_leaves_no_temporary_file(local_ray, mix_recipe, clean,
                                                                              tmp_path):
    """A shard whose name is taken by a folder cannot be renamed into place: locally and on Ray the build stops
    with the same IsADirectoryError (one line in the CLI, not Ray's remote traceback). On Ray no attempt's
    `.tmp` stays (a local build leaves its open shard's `.tmp` as a kill would; the next run removes it)."""
    shard = json.loads((clean / "manifest.json").read_text())["shards"][1]["name"]
    errors = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        (out / shard).mkdir(parents=True)
        with pytest.raises(IsADirectoryError) as caught:
            build(mix_recipe, out, engine=engine, echo=lambda *a: None)
        errors[engine] = type(caught.value)
    assert errors["ray"] is errors["local"]
    assert not [p.name for p in (tmp_path / "ray").iterdir() if p.name.endswith(".tar.tmp") or ".tar." in p.name]


def test_an_unknown_engine_or_a_missing_extra_creates_nothing(mix_recipe, tmp_path, monkeypatch):
    with pytest.raises(Exception, match="unknown engine 'rya'"):
        build(mix_recipe, tmp_path / "typo", engine="rya")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EngineError):
        build(mix_recipe, tmp_path / "no-ray", engine="ray")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "no-ray").exists()


@pytest.mark.slow
def test_without_address_a_local_ray_is_started_even_where_ray_address_names_a_cluster(mix_recipe, clean,
                                                                                        tmp_path):
    """RAY_ADDRESS (or a `ray start` on the machine) must not capture a build that asked for no cluster."""
    env = os.environ | {"RAY_ADDRESS": "127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "datamix.cli", "build", str(mix_recipe), "--out",
                             str(tmp_path / "mix"), "--engine", "ray", "--workers", "2"],
                            capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert files(tmp_path / "mix") == files(clean)


def test_the_dashboard_link_of_the_cluster_is_printed(local_ray, tmp_path, monkeypatch):
    """What `session` prints when it attaches: the cluster and Ray's own dashboard link (the Ray here has no
    dashboard, so attaching is replaced by the context Ray returns, and the module's Ray is not shut down)."""
    import ray

    from datamix.builder import ray_engine

    class Context:
        dashboard_url = "127.0.0.1:8265"

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray_engine, "_connect", lambda address, workers: Context())
    monkeypatch.setattr(ray_engine, "check_shared_folders", lambda out, reads: None)  # tested above
    lines = []
    with ray_engine.session("auto", 2, tmp_path, [], echo=lines.append) as engine:
        assert engine.cpus >= 1
    assert lines == ["      engine: the Ray cluster at auto; dashboard http://127.0.0.1:8265"]


def test_shard_writes_in_flight_stay_within_the_byte_budget(local_ray, mix_recipe, clean, tmp_path, monkeypatch):
    """With a budget below one shard, the driver waits for each write before going on: never two shards'
    bytes pinned at once (the window alone would allow 2 x CPUs), and the bytes are the same."""
    from datamix.builder import ray_engine

    held = []
    real_collect = ray_engine.RayEngine._collect

    def collect(self, writes, writer, bar, keep):
        real_collect(self, writes, writer, bar, keep)
        held.append(len(writes))

    monkeypatch.setattr(ray_engine, "write_budget", lambda resources: 1)
    monkeypatch.setattr(ray_engine.RayEngine, "_collect", collect)
    ray_build(mix_recipe, tmp_path / "mix")
    assert held and max(held) == 0
    assert files(tmp_path / "mix") == files(clean)
