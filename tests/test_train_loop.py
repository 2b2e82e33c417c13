"""Training end to end on a tiny demo mix: both stages, checkpoints, resume, the data split, DDP with 2 processes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from datamix.train.config import TrainConfig, TrainError
from datamix.train.data import Encoder, MixStream, check_slots, mix_shards
from datamix.train.loop import train
from datamix.train.model import load_model
from small_mix import build_demo_mix, tiny_config

REPO = Path(__file__).resolve().parents[1]
TINY = tiny_config()


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    """The demo recipe on 40 generated images, in shards of 12 samples (enough shards for 2 ranks x 2 workers)."""
    return build_demo_mix(tmp_path_factory.mktemp("trainmix"), seed=0, n_images=40, max_samples=12)


def config(stage: str, **kw) -> TrainConfig:
    base = {"stage": stage, "tiny": TINY, "global_batch": 4, "micro_batch": 2, "workers": 0, "max_steps": 4,
            "shuffle_buffer": 8}
    return TrainConfig(**{**base, **kw}).for_stage()


def weights(path: Path) -> dict:
    assert (path / "model.safetensors").is_file()
    return load_model(path).state_dict()


def test_stage1_then_stage2(mix, tmp_path):
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    train(config("pretrain"), mix, s1, echo=lambda *_: None)
    train(config("finetune", projector_from=str(s1), group_by_modality=True), mix, s2, echo=lambda *_: None)
    init = load_model(s1)  # stage 2 starts from stage 1's model; stage 1 starts from the seed's random one
    w1, w2 = weights(s1), weights(s2)
    from datamix.train.model import build_tiny
    from datamix.train.tokenizer import load_tokenizer

    random_init = build_tiny(TINY, load_tokenizer(s1), projector="mlp2x_gelu", seed=0).state_dict()
    for name, tensor in w1.items():
        changed = not torch.equal(tensor, random_init[name])
        assert changed == name.startswith("model.multi_modal_projector."), name  # stage 1: projector only
    for name, tensor in w2.items():
        changed = not torch.equal(tensor, init.state_dict()[name])
        assert changed == ("vision_tower" not in name), name  # stage 2: everything but the vision tower
    rows = [json.loads(x) for x in (s2 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"loss", "lr", "samples_per_s", "tokens_per_s", "data_wait"} <= set(rows[0])
    assert json.loads((s2 / "summary.json").read_text())["ranks_in_sync"]


def test_resume_continues_exactly(mix, tmp_path):
    cfg = config("finetune", max_steps=6, save_every=2)
    train(cfg, mix, tmp_path / "straight", echo=lambda *_: None)
    train(cfg, mix, tmp_path / "killed", stop_after=3, echo=lambda *_: None)  # dies after step 3, last ckpt at 2
    ckpts = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir())
    assert ckpts == ["step-000002"] and not (tmp_path / "killed" / "model.safetensors").exists()
    assert load_model(tmp_path / "killed" / "checkpoints" / "step-000002").config.model_type == "llava"
    train(cfg, mix, tmp_path / "killed", resume=True, echo=lambda *_: None)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    steps = [json.loads(x)["step"] for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_new_run_refuses_an_existing_folder(mix, tmp_path):
    train(config("pretrain", max_steps=1), mix, tmp_path / "r", echo=lambda *_: None)
    with pytest.raises(TrainError, match="--resume"):
        train(config("pretrain", max_steps=1), mix, tmp_path / "r", echo=lambda *_: None)


def test_too_few_shards_is_refused(mix):
    n = len(mix_shards(mix)[0])
    check_slots(n, 2, n // 2)
    with pytest.raises(TrainError, match="need at least"):
        check_slots(n, 2, n)


def test_ranks_and_workers_read_disjoint_shards(mix, tmp_path):
    cfg = config("finetune")
    train(dataclasses.replace(cfg, max_steps=1), mix, tmp_path / "r", echo=lambda *_: None)
    from datamix.train.setup import load_processor
    from datamix.train.tokenizer import load_tokenizer

    enc = Encoder(load_tokenizer(tmp_path / "r"), load_processor(tmp_path / "r"), "vicuna_v1", "pad", 4, 3, 256)
    shards, _ = mix_shards(mix)
    seen = []
    for rank in (0, 1):
        stream = MixStream(shards, enc, batch_size=2, megabatch=2, epoch=0, seed=0, rank=rank, world_size=2,
                           skip=[0, 0], shuffle_buffer=8, group_by_modality=False, images_only=False)
        for worker in (0, 1):
            seen.append({s for path in stream.slot_shards(worker, 2) for s in [path]})
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    assert set().union(*seen) == set(shards)
    epoch1 = MixStream(shards, enc, batch_size=2, megabatch=2, epoch=1, seed=0, rank=0, world_size=2, skip=[0, 0],
                       shuffle_buffer=8, group_by_modality=False, images_only=False)
    assert [epoch1.slot_shards(w, 2) for w in (0, 1)] != [sorted(s) for s in seen[:2]]  # reshuffled per epoch


def test_modality_grouping_gives_single_modality_batches(mix, tmp_path):
    train(config("finetune", max_steps=1), mix, tmp_path / "r", echo=lambda *_: None)
    import random

    from datamix.train.data import modality_batches, read_samples, word_length

    samples = list(read_samples(mix_shards(mix)[0]))
    batches = list(modality_batches(iter(samples), 4, 8, random.Random(0), window=4))
    mixed = [b for b in batches if len({word_length(s) > 0 for s in b}) > 1]
    assert len(mixed) <= 1 and batches[-1] in mixed + [batches[-1]]  # only the final leftover batch may mix
    assert sorted(s["id"] for b in batches for s in b) == sorted(s["id"] for s in samples)


@pytest.mark.slow
def test_two_process_ddp(mix, tmp_path):
    out = tmp_path / "ddp"
    script = (f"from datamix.train.loop import train\nfrom tests.test_train_loop import config\n"
              f"train(config('finetune', max_steps=3, global_batch=4, micro_batch=1, workers=2, save_every=3), "
              f"'{mix}', '{out}', echo=lambda *_: None)\n")
    (tmp_path / "job.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "job.py")]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"]
    r0, r1 = summary["ranks"]
    assert r0["samples"] == r1["samples"] == 3 * 2  # 3 steps x 2 micro-batches of 1 per rank
    assert r0["ids_sha256"] != r1["ids_sha256"]  # the ranks trained on different samples
    state = json.loads((out / "checkpoints" / "step-000003" / "state.json").read_text())
    assert len(state["consumed"]) == 2 and all(sum(c) == 2 * 3 for c in state["consumed"])


def test_resumed_run_ends_in_the_same_state_as_an_uninterrupted_one(mix, tmp_path):
    """Killed in the second epoch and resumed with a data worker: the same weights, optimizer moments, data
    position (state.json, byte for byte) and metrics as a run that was never stopped."""
    per_epoch = mix_shards(mix)[1] // 4  # full global batches of 4 in one pass (at most)
    cfg = config("finetune", max_steps=per_epoch + 3, save_every=per_epoch + 1, workers=1, keep_checkpoints=0)
    quiet = lambda *_: None  # noqa: E731
    train(cfg, mix, tmp_path / "straight", echo=quiet)
    train(cfg, mix, tmp_path / "killed", stop_after=per_epoch + 2, echo=quiet)  # last checkpoint in epoch 1
    state = train(cfg, mix, tmp_path / "killed", resume=True, echo=quiet)
    assert state["step"] == per_epoch + 3 and state["epoch"] == 1
    final = f"checkpoints/step-{per_epoch + 3:06d}"
    a, b = tmp_path / "straight", tmp_path / "killed"
    assert (a / final / "state.json").read_bytes() == (b / final / "state.json").read_bytes()
    assert json.loads((a / final / "state.json").read_text())["epoch"] == 1
    for name, tensor in weights(a).items():
        assert torch.equal(tensor, weights(b)[name]), name
    opt_a, opt_b = (torch.load(d / final / "optimizer.pt", weights_only=True) for d in (a, b))
    assert opt_a["scheduler"] == opt_b["scheduler"]
    for key, moments in opt_a["optimizer"]["state"].items():
        for m in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(moments[m], opt_b["optimizer"]["state"][key][m]), (key, m)
    rows = [[{k: r[k] for k in ("step", "epoch", "loss", "lr")} for r in map(json.loads, (d / "metrics.jsonl")
             .read_text().splitlines())] for d in (a, b)]
    assert rows[0] == rows[1]
