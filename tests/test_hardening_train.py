"""`train` and `predict` on damaged input: every case a clear one-line error naming the file, or a named fallback.

Shards are damaged in place on a copy of a small demo mix, keeping their size where the case calls for it (a
flipped member, a bad header), so the checks that stream the tars are the ones under test, not the size check.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from datamix.cli import app
from datamix.errors import DatamixError
from datamix.train.config import TrainConfig, TrainError
from datamix.train.loop import plan_steps, train
from datamix.train.model import load_model
from small_mix import build_demo_mix, tiny_config

TINY = tiny_config()
runner = CliRunner()


def quiet(*_) -> None:
    pass


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    """The demo recipe on 40 generated images, in shards of 12 samples (enough for 2 DataLoader workers)."""
    return build_demo_mix(tmp_path_factory.mktemp("hardmix"), seed=0, n_images=40, max_samples=12)


def config(stage: str, **kw) -> TrainConfig:
    base = {"stage": stage, "tiny": TINY, "global_batch": 4, "micro_batch": 2, "workers": 0, "max_steps": 2,
            "shuffle_buffer": 8}
    return TrainConfig(**{**base, **kw}).for_stage()


@pytest.fixture(scope="module")
def stage1(mix, tmp_path_factory) -> Path:
    """A finished stage-1 run: stage 2 from it reads no shard before training (its tokenizer is stage 1's)."""
    out = tmp_path_factory.mktemp("s1") / "run"
    train(config("pretrain", max_steps=1), mix, out, echo=quiet)
    return out


@pytest.fixture(scope="module")
def checkpointed(mix, tmp_path_factory) -> Path:
    """A 4-step stage-2 run with checkpoints at steps 2 and 4 (copy it before damaging it)."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(config("finetune", max_steps=4, save_every=2), mix, out, echo=quiet)
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


# ---------------------------------------------------------------- damaging a shard in place


def shard_of(mix_dir: Path, k: int = 1) -> Path:
    return mix_dir / json.loads((mix_dir / "manifest.json").read_text())["shards"][k]["name"]


def members(shard: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(shard) as tar:
        return tar.getmembers()


def overwrite(shard: Path, offset: int, data: bytes) -> None:
    """Replace bytes in place: the file keeps its size, and the manifest is given its new hash, as when a shard
    was damaged before its manifest was written: only reading the tar can find the damage."""
    raw = bytearray(shard.read_bytes())
    raw[offset:offset + len(data)] = data
    shard.write_bytes(bytes(raw))
    manifest_path = shard.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["shards"]:
        if entry["name"] == shard.name:
            entry["sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=1))


def member(shard: Path, suffix: str, nth: int = 3) -> tarfile.TarInfo:
    return [m for m in members(shard) if m.name.endswith(suffix)][nth]


def damage_json(shard: Path) -> None:
    m = member(shard, ".json")
    overwrite(shard, m.offset_data, b"\xff" * m.size)


def damage_image(shard: Path) -> None:
    m = member(shard, ".jpg")
    overwrite(shard, m.offset_data, b"x" * m.size)


def damage_header_between_samples(shard: Path) -> None:
    """A garbage header at a sample's first member: tarfile ends the stream there quietly, samples short."""
    first = member(shard, ".jpg")
    assert first.name.split(".")[0] != members(shard)[0].name.split(".")[0]
    overwrite(shard, first.offset, b"\x07" * 512)


def damage_header_inside_sample(shard: Path) -> None:
    """A garbage header at a sample's json member: the sample ends without its json."""
    m = member(shard, ".json")
    overwrite(shard, m.offset, b"\x07" * 512)


DAMAGE = {
    "json member": (damage_json, "json member is not valid JSON"),
    "image member": (damage_image, "not a readable image"),
    "header between samples": (damage_header_between_samples, "samples read, but the manifest says 12"),
    "header inside a sample": (damage_header_inside_sample, "has no json member"),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "image member" else c
                                  for c in DAMAGE])  # a damaged image is met only by training up to it
def test_a_new_run_names_the_damaged_shard(mix, tmp_path, case):
    """A new tiny run reads every shard's text for its tokenizer, in the main process, before training (which
    decodes the images)."""
    damage, message = DAMAGE[case]
    bad = copy_of(mix, tmp_path)
    shard = shard_of(bad)
    size = shard.stat().st_size
    damage(shard)
    assert shard.stat().st_size == size
    with pytest.raises(TrainError) as exc:
        train(config("finetune", max_steps=100, global_batch=2, micro_batch=1), bad, tmp_path / "run", echo=quiet)
    text = one_line(exc)
    assert text.startswith(f"{shard}: ") and message in text and "datamix verify" in text


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_shard_met_while_training_is_named_from_a_worker(mix, stage1, tmp_path, case):
    """Stage 2 from a stage-1 run reads the shards only in its 2 DataLoader worker processes; the worker's
    error must arrive as the same one line, not wrapped in the worker's traceback."""
    damage, message = DAMAGE[case]
    bad = copy_of(mix, tmp_path)
    shard = shard_of(bad)
    damage(shard)
    cfg = config("finetune", projector_from=str(stage1), workers=2, max_steps=100, global_batch=2, micro_batch=1)
    with pytest.raises(TrainError) as exc:
        train(cfg, bad, tmp_path / "run", echo=quiet)
    text = one_line(exc)
    assert text.startswith(f"{shard}: ") and message in text


def test_a_truncated_shard_is_refused_before_training(mix, tmp_path):
    bad = copy_of(mix, tmp_path)
    shard = shard_of(bad)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2 + 100])
    result = runner.invoke(app, ["train", str(bad), "--stage", "pretrain", "--out", str(tmp_path / "run"),
                                 "--max-steps", "1", "--workers", "0"])
    line = error_line(result)
    assert str(shard) in line and "truncated" in line
    assert not (tmp_path / "run").exists()


def test_a_file_that_is_no_tar_is_named(mix, tmp_path):
    bad = copy_of(mix, tmp_path)
    shard = shard_of(bad)
    overwrite(shard, 0, b"not a tar at all " * (shard.stat().st_size // 17))
    with pytest.raises(TrainError) as exc:
        train(config("pretrain"), bad, tmp_path / "run", echo=quiet)
    assert one_line(exc).startswith(f"{shard}: not a readable tar shard")


def test_missing_shard_and_missing_manifest(mix, tmp_path):
    bad = copy_of(mix, tmp_path)
    missing = shard_of(bad, 2)
    missing.unlink()
    with pytest.raises(DatamixError, match=r"missing") as exc:
        train(config("pretrain"), bad, tmp_path / "run", echo=quiet)
    assert missing.name in one_line(exc)
    (bad / "manifest.json").unlink()
    with pytest.raises(DatamixError, match=r"no manifest\.json"):
        train(config("pretrain"), bad, tmp_path / "run", echo=quiet)


def test_a_manifest_shard_name_may_not_leave_the_mix(mix, tmp_path):
    bad = copy_of(mix, tmp_path)
    manifest = json.loads((bad / "manifest.json").read_text())
    name = manifest["shards"][0]["name"]
    shutil.copy(bad / name, bad.parent / name)  # there is a file to read there: it must still not be read
    manifest["shards"][0]["name"] = "../" + name
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatamixError) as exc:
        train(config("pretrain"), bad, tmp_path / "run", echo=quiet)
    assert "manifest.json" in one_line(exc)


# ---------------------------------------------------------------- epochs instead of --max-steps


def test_stage1_by_epochs_counts_the_image_samples_of_the_index(mix, tmp_path):
    """`--epochs` without `--max-steps`: stage 1 plans epochs x (samples with images // global batch)."""
    with_images = sum(1 for r in pq.read_table(mix / "index.parquet", columns=["images"]).to_pylist() if r["images"])
    total = json.loads((mix / "manifest.json").read_text())["samples"]
    assert 0 < with_images < total  # the mix has text-only samples, which stage 1 skips
    cfg = config("pretrain", max_steps=0, epochs=2, global_batch=8, micro_batch=8)
    assert plan_steps(cfg, mix, total) == 2 * (with_images // 8)
    assert plan_steps(config("finetune", max_steps=0, epochs=1, global_batch=8), mix, total) == total // 8


def test_stage1_command_by_epochs_runs(mix, tmp_path):
    """The README's stage-1 command shape (no --max-steps) through the CLI, to the end of its one epoch."""
    result = runner.invoke(app, ["train", str(mix), "--stage", "pretrain", "--epochs", "1", "--out",
                                 str(tmp_path / "run"), "--global-batch", "32", "--workers", "0"])
    assert result.exit_code == 0, result.output
    with_images = sum(1 for r in pq.read_table(mix / "index.parquet", columns=["images"]).to_pylist() if r["images"])
    assert f"done: {with_images // 32} steps" in result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == with_images // 32


# ---------------------------------------------------------------- resuming from a damaged checkpoint


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:1000])


@pytest.mark.parametrize("damage", ["truncated weights", "no weights", "truncated optimizer"])
def test_resume_skips_a_damaged_latest_checkpoint(mix, checkpointed, tmp_path, damage):
    run = copy_of(checkpointed, tmp_path)
    latest = run / "checkpoints" / "step-000004"
    {"truncated weights": lambda: truncate(latest / "model.safetensors"),
     "no weights": lambda: (latest / "model.safetensors").unlink(),
     "truncated optimizer": lambda: truncate(latest / "optimizer.pt")}[damage]()
    lines = []
    state = train(config("finetune", max_steps=4, save_every=2), mix, run, resume=True, echo=lines.append)
    assert state["step"] == 4
    assert lines[0].startswith(f"warning: skipping checkpoint {latest}: ") and "\n" not in lines[0]
    assert ("optimizer.pt" if damage == "truncated optimizer" else "model.safetensors") in lines[0]
    # Steps 3 and 4 were trained again from step 2: the same weights as the run that was never damaged.
    again, straight = load_model(run).state_dict(), load_model(checkpointed).state_dict()
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], msg=name)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000004"]


def test_a_skipped_checkpoint_goes_once_the_run_saves_an_earlier_step(mix, checkpointed, tmp_path):
    """Resumed from step 2 with 3 steps in all, the run saves step 3: the damaged step 4 is from a timeline
    the run left, and would otherwise outlive good checkpoints under `keep_checkpoints`."""
    run = copy_of(checkpointed, tmp_path)
    truncate(run / "checkpoints" / "step-000004" / "model.safetensors")
    train(config("finetune", max_steps=3, save_every=2), mix, run, resume=True, echo=quiet)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000003"]


def test_resume_with_every_checkpoint_damaged_is_refused(mix, checkpointed, tmp_path):
    run = copy_of(checkpointed, tmp_path)
    for ckpt in (run / "checkpoints").iterdir():
        truncate(ckpt / "model.safetensors")
    lines = []
    with pytest.raises(TrainError, match="no usable checkpoint") as exc:
        train(config("finetune", max_steps=4, save_every=2), mix, run, resume=True, echo=lines.append)
    one_line(exc)
    assert len(lines) == 2 and all(line.startswith("warning: skipping checkpoint") for line in lines)


def test_resume_without_any_checkpoint(mix, tmp_path):
    train(config("pretrain", max_steps=1), mix, tmp_path / "run", echo=quiet)
    shutil.rmtree(tmp_path / "run" / "checkpoints")  # as a run killed before its first checkpoint
    result = runner.invoke(app, ["train", str(mix), "--out", str(tmp_path / "run"), "--resume", "--workers", "0"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: --resume: no complete checkpoint under {tmp_path / 'run' / 'checkpoints'}; "
                                     f"start a new run instead")


def test_projector_from_damaged_weights_is_named(mix, stage1, tmp_path):
    s1 = copy_of(stage1, tmp_path)
    truncate(s1 / "model.safetensors")
    with pytest.raises(TrainError) as exc:
        train(config("finetune", projector_from=str(s1)), mix, tmp_path / "s2", echo=quiet)
    assert one_line(exc).startswith(f"{s1}: cannot load the model: {s1 / 'model.safetensors'} is damaged")


# ---------------------------------------------------------------- predict


def predict_cli(run: Path, mix_dir: Path):
    return runner.invoke(app, ["predict", str(run), str(mix_dir), "--n", "2", "--max-new-tokens", "2"])


def error_line(result) -> str:
    """The error: the last line (predict prints its first answers as it goes), one line, a DatamixError's."""
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "unexpected" not in result.output, result.output
    return last


def test_predict_on_a_checkpoint_and_on_an_unfinished_run(mix, checkpointed, tmp_path):
    run = copy_of(checkpointed, tmp_path)
    result = predict_cli(run / "checkpoints" / "step-000002", mix)
    assert result.exit_code == 0, result.output
    assert "VQA accuracy" in result.output
    assert len((run / "checkpoints" / "step-000002" / "predictions.jsonl").read_text().splitlines()) == 2
    for name in ("config.json", "model.safetensors"):  # the final model, as a killed run lacks it
        (run / name).unlink()
    assert error_line(predict_cli(run, mix)) == (
        f"error: {run}: no final model (config.json missing: the run did not finish); give one of its "
        f"checkpoints, e.g. {run / 'checkpoints' / 'step-000004'}")
    shutil.rmtree(run / "checkpoints")
    assert error_line(predict_cli(run, mix)).endswith("the run did not finish); and no checkpoint either")


def test_predict_names_damaged_weights_and_a_bad_mix(mix, checkpointed, tmp_path):
    run = copy_of(checkpointed, tmp_path)
    truncate(run / "model.safetensors")
    assert error_line(predict_cli(run, mix)).startswith(
        f"error: {run}: cannot load the model: {run / 'model.safetensors'} is damaged or truncated (")
    ckpt = run / "checkpoints" / "step-000004"
    assert error_line(predict_cli(tmp_path, mix)).startswith(f"error: {tmp_path}: no run.json")
    bad = copy_of(mix, tmp_path)
    (bad / "manifest.json").unlink()
    assert "no manifest.json" in error_line(predict_cli(ckpt, bad))
    bad2 = copy_of(mix, tmp_path / "again")
    shard = shard_of(bad2, 0)
    damage_image(shard)  # vqav2 comes first in the mix: its questions are the ones asked
    line = error_line(runner.invoke(app, ["predict", str(ckpt), str(bad2), "--n", "1000", "--max-new-tokens", "1"]))
    assert line.startswith(f"error: {shard}: sample ") and "not a readable image" in line


@pytest.mark.parametrize("damaged", ["run.json", "tokenizer.json", "preprocessor_config.json"])
def test_a_damaged_run_file_is_named(mix, checkpointed, tmp_path, damaged):
    run = copy_of(checkpointed, tmp_path)
    (run / damaged).write_text((run / damaged).read_text()[:40])
    named = run / damaged if damaged == "run.json" else run
    assert error_line(predict_cli(run, mix)).startswith(f"error: {named}: ")
    resumed = runner.invoke(app, ["train", str(mix), "--out", str(run), "--resume", "--workers", "0"])
    assert error_line(resumed).startswith(f"error: {named}: ")


def test_a_flipped_byte_stops_training_before_the_first_step_unless_told_not_to_verify(mix, tmp_path):
    damaged = copy_of(mix, tmp_path)
    shard = damaged / json.loads((damaged / "manifest.json").read_text())["shards"][0]["name"]
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF  # inside the first json member: the tar and its size are unchanged
    shard.write_bytes(bytes(data))
    with pytest.raises(TrainError) as info:
        train(config("pretrain", max_steps=1), damaged, tmp_path / "run", echo=quiet)
    assert f"{shard}: changed since it was written" in one_line(info)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    result = runner.invoke(app, ["train", str(damaged), "--out", str(tmp_path / "run"), "--stage", "pretrain",
                                 "--max-steps", "1", "--workers", "0", "--global-batch", "2", "--no-verify"])
    assert "changed since it was written" not in result.output
