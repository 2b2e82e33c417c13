"""The training loop, top to bottom as in nanoGPT's train.py, with a small typed state (RunState); runs alone
or under `torchrun` (DDP).

Stage 1 trains the projector, stage 2 the projector and the LLM (model.set_trainable). AdamW, cosine schedule
with a 3% linear warm-up, gradient accumulation up to the global batch, optional clipping, bf16 autocast where
the device has it (paper App. A.3 / Tab. 9, LLaVA scripts/v1_5). Every process streams its own shards; an epoch ends for all processes as
soon as one runs out of batches (an all-reduced flag), so no rank waits forever in a collective, and an
incomplete last global batch is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from datamix.train import checkpoint as ckpt
from datamix.train.config import TrainConfig, TrainError
from datamix.train.data import Encoder, MixStream, check_slots, make_loader, mix_shard_counts
from datamix.train.metrics import StepMeter, append_metrics, plot_loss, truncate_metrics
from datamix.train.setup import build_model, prepare_run


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); a process group only under torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def cpu_threads(cfg: TrainConfig, world: int) -> None:
    """Leave a core to the data workers and one core per process: on a small shared CPU, more intra-op threads
    than free cores make every step several times slower (measured 10x on 2 busy cores)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    per_process = (os.cpu_count() or 1) // world - (1 if cfg.workers else 0)
    torch.set_num_threads(max(1, per_process))


def autocast(cfg: TrainConfig, device: torch.device):
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"
                                       and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def plan_steps(cfg: TrainConfig, mix_dir: Path, n_samples: int) -> int:
    """Optimizer steps of the run: --max-steps, or epochs x the full global batches in the mix."""
    if cfg.max_steps:
        return cfg.max_steps
    if cfg.template == "plain":  # stage 1 skips text-only samples; the index says how many have images
        n_samples = image_samples(mix_dir)
    per_epoch = n_samples // cfg.global_batch
    if per_epoch < 1:
        raise TrainError(f"the mix has {n_samples} usable samples, less than one global batch of "
                         f"{cfg.global_batch}; lower --global-batch")
    return per_epoch * cfg.epochs


def image_samples(mix_dir: Path) -> int:
    """Samples with at least one image, from the index's `images` column (a list of paths per sample)."""
    import pyarrow.compute as pc

    from datamix.mixdir import read_index

    lengths = pc.list_value_length(read_index(mix_dir, ["images"])["images"])
    return int(pc.sum(pc.greater(pc.fill_null(lengths, 0), 0)).as_py() or 0)


def make_optimizer(cfg: TrainConfig, params: list, total: int):
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = math.ceil(cfg.warmup_ratio * total)  # HF rounds the warm-up up (§8.1: 66 and 156 steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total)


def all_have_batch(has: bool, world: int) -> bool:
    if world == 1:
        return has
    flag = torch.tensor([1 if has else 0])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def mean_over_ranks(value: float, world: int) -> float:
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world


def train(cfg: TrainConfig, mix_dir: Path, out_dir: Path, *, resume: bool = False, stop_after: int = 0,
          echo=print) -> dict:
    """Train; `stop_after` ends the process's work after that step's checkpoint, as a kill would (tests)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    rank, world, device = init_distributed()
    try:
        return _train(cfg, Path(mix_dir), Path(out_dir), rank, world, device, resume, stop_after, echo)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg, mix_dir, out_dir, rank, world, device, resume, stop_after, echo) -> dict:
    # --- setup: shards, config, model, optimizer, where the run starts ---
    shards = mix_shard_counts(mix_dir, verify_hashes=cfg.verify_shards)  # path -> samples
    n_samples = sum(shards.values())
    check_slots(len(shards), world, cfg.workers)  # before anything is written
    cfg.grad_accum(world)
    if device.type == "cpu":
        cpu_threads(cfg, world)
    cfg, tokenizer, processor = prepare_run(cfg, mix_dir, out_dir, rank=rank, world=world, resume=resume)
    check_slots(len(shards), world, cfg.workers)  # again: a resumed run uses its saved config
    accum = cfg.grad_accum(world)
    resume_from = ckpt.resume_checkpoint(out_dir, warn=echo if rank == 0 else _quiet) if resume else None
    model, params = build_model(cfg, tokenizer, resume_from=resume_from)
    model.to(device)
    total = plan_steps(cfg, mix_dir, n_samples)
    optimizer, scheduler = make_optimizer(cfg, params, total)
    state = start_state(cfg, out_dir, optimizer, scheduler, rank=rank, world=world, resume_from=resume_from)
    encoder = make_encoder(cfg, tokenizer, processor, model.config)
    if rank == 0:
        echo(f"training {cfg.stage} ({cfg.template}, {cfg.image_aspect}) on {n_samples:,} samples in {len(shards)} "
             f"shards: {total} steps x global batch {cfg.global_batch} ({world} proc x micro {cfg.micro_batch} x "
             f"accum {accum}), lr {cfg.lr:g}, {sum(p.numel() for p in params):,} trainable parameters -> {out_dir}")
    ddp = model
    if world > 1:
        # Text-only batches leave the projector unused in stage 2, hence find_unused_parameters.
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)

    # --- the loop: epochs of optimizer steps, a checkpoint every save_every steps and at the end ---
    seen = Seen()
    bar = progress_bar(cfg, total, state.step, rank)
    ddp.train()
    while state.step < total:
        stream = MixStream(list(shards), encoder, batch_size=cfg.micro_batch, megabatch=cfg.micro_batch * accum,
                           epoch=state.epoch, seed=cfg.seed, rank=rank, world_size=world,
                           skip=list(state.consumed[rank]), shuffle_buffer=cfg.shuffle_buffer,
                           group_by_modality=cfg.group_by_modality, images_only=cfg.template == "plain",
                           counts=shards)
        batches = iter(make_loader(stream, cfg.workers))
        failure = None  # a damaged shard's message, raised once this epoch's workers are stopped
        while state.step < total:
            lr = scheduler.get_last_lr()[0]
            try:
                step = accumulate(cfg, ddp, batches, accum=accum, world=world, device=device, seen=seen,
                                  workers=len(state.consumed[rank]))
            except DamagedShard as exc:
                failure = str(exc)
                break
            if step is None:  # the epoch ran out of full global batches: drop the incomplete one
                optimizer.zero_grad(set_to_none=True)
                break
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            for w, n in enumerate(step.taken):
                state.consumed[rank][w] += n
            loss = mean_over_ranks(sum(step.losses) / len(step.losses), world)
            row = step.meter.record(step=state.step, epoch=state.epoch, loss=loss, lr=lr, world_size=world)
            if (cfg.save_every and state.step % cfg.save_every == 0) or state.step == total:
                save(cfg, out_dir, model, optimizer, scheduler, state, rank=rank, world=world)
            if rank == 0:
                append_metrics(out_dir / "metrics.jsonl", row)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", data_wait=f"{row['data_wait']:.0%}")
                bar.update(1)
            if stop_after and state.step >= stop_after:  # as a kill would: no final model
                bar.close()
                return state.to_json()
        del batches  # this epoch's DataLoader workers stop now, before any error leaves with a traceback
        if failure is not None:
            raise TrainError(failure)
        if state.step < total:
            state.next_epoch()
    bar.close()
    finish(model, params, state, seen, out_dir, rank=rank, world=world, echo=echo)
    return state.to_json()


def _quiet(*_) -> None:
    """The echo of ranks other than 0: one warning line per run, not one per process."""


@dataclass
class RunState:
    """Where a run is, exactly what a checkpoint's state.json holds: optimizer steps done, the epoch, and the
    micro-batches each rank's data workers have handed out in this epoch (`consumed[rank][worker]`)."""

    step: int
    epoch: int
    consumed: list[list[int]]

    def next_epoch(self) -> None:
        self.epoch += 1
        self.consumed = [[0] * len(c) for c in self.consumed]

    def to_json(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "consumed": [list(c) for c in self.consumed]}


@dataclass
class Seen:
    """What this process trained on, for summary.json: how many samples, and a digest of their ids in order."""

    samples: int = 0
    digest: object = field(default_factory=hashlib.sha256)  # a hashlib sha256, updated in training order

    def add(self, sample_ids: list[str]) -> None:
        for sample_id in sample_ids:
            self.digest.update(sample_id.encode() + b"\n")
            self.samples += 1


@dataclass
class Accumulated:
    """One optimizer step's micro-batches on this process: their losses, which worker gave each, the timings."""

    losses: list[float]
    taken: list[int]  # micro-batches per data worker
    meter: StepMeter


class DamagedShard(Exception):
    """The stream reported a damaged shard (data.py yields it as an `error` item)."""


def start_state(cfg, out_dir, optimizer, scheduler, *, rank, world, resume_from: Path | None) -> RunState:
    """Step, epoch and batches consumed per rank and worker: zeros, or those of `resume_from` (--resume)."""
    if resume_from is None:
        return RunState(step=0, epoch=0, consumed=[[0] * max(cfg.workers, 1) for _ in range(world)])
    saved = ckpt.load_training_state(resume_from, optimizer, scheduler)
    if len(saved["consumed"]) != world:
        raise TrainError(f"--resume: the checkpoint was written by {len(saved['consumed'])} process(es); "
                         f"resume with the same number ({world} now)")
    if rank == 0:
        truncate_metrics(out_dir / "metrics.jsonl", saved["step"])
    return RunState(step=saved["step"], epoch=saved["epoch"], consumed=saved["consumed"])


def make_encoder(cfg: TrainConfig, tokenizer, processor, model_config) -> Encoder:
    encoder = Encoder(tokenizer, processor, cfg.template, cfg.image_aspect, model_config.image_seq_length,
                      model_config.image_token_id, cfg.model_max_length)
    if cfg.resolution == "hd":
        from datamix.train.hd import hd_encoder

        encoder = hd_encoder(encoder, model_config)
    return encoder


def progress_bar(cfg: TrainConfig, total: int, step: int, rank: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=step, disable=True if rank != 0 else None, desc=cfg.stage, dynamic_ncols=True)


def accumulate(cfg, ddp, batches, *, accum: int, world: int, device, seen: Seen,
               workers: int) -> Accumulated | None:
    """Forward and backward over `accum` micro-batches; None when the epoch ran out of data on any process."""
    step = Accumulated(losses=[], taken=[0] * workers, meter=StepMeter())
    for micro in range(accum):
        t0 = time.perf_counter()
        batch = next(batches, None)
        if batch is not None and "error" in batch:
            raise DamagedShard(batch["error"])
        if not all_have_batch(batch is not None, world):
            return None
        step.meter.fetched(time.perf_counter() - t0, batch)
        step.taken[batch.pop("worker")] += 1
        seen.add(batch.pop("ids"))
        sync = micro == accum - 1 or world == 1  # DDP all-reduces gradients on the last micro-batch only
        with (contextlib.nullcontext() if sync else ddp.no_sync()), autocast(cfg, device):
            loss = ddp(**{k: v.to(device) for k, v in batch.items() if v is not None}).loss
        (loss / accum).backward()
        step.losses.append(loss.item())
    return step


def save(cfg, out_dir, model, optimizer, scheduler, state: RunState, *, rank: int, world: int) -> None:
    if world > 1:  # every rank's data position goes into the one checkpoint
        gathered = [None] * world
        dist.all_gather_object(gathered, state.consumed[rank])
        state.consumed = [list(counts) for counts in gathered]
    if rank == 0:
        ckpt.save_checkpoint(out_dir, model, optimizer, scheduler, state.to_json(), keep=cfg.keep_checkpoints)
    if world > 1:
        dist.barrier()  # nobody runs ahead (or exits) before the checkpoint is complete


def finish(model, params, state: RunState, seen: Seen, out_dir: Path, *, rank: int, world: int, echo) -> None:
    """summary.json (what each process saw, whether their weights agree), the final model, the loss curve."""
    summary = run_summary(params, state, seen, rank=rank, world=world)
    if rank != 0:
        return
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not summary["ranks_in_sync"]:
        raise TrainError("the processes ended with different weights (DDP out of sync); see summary.json")
    model.save_pretrained(out_dir, safe_serialization=True)
    png = plot_loss(out_dir / "metrics.jsonl", out_dir / "loss.png")
    echo(f"saved the model to {out_dir}" + (f"; loss curve {png}" if png else ""))


def run_summary(params, state: RunState, seen: Seen, *, rank: int, world: int) -> dict:
    """Per process: samples seen and their digest, and a weight checksum that must agree across processes."""
    checksum = float(sum(p.detach().double().sum() for p in params))
    mine = {"rank": rank, "samples": seen.samples, "ids_sha256": seen.digest.hexdigest(), "weights": checksum}
    ranks = [mine]
    if world > 1:
        ranks = [None] * world
        dist.all_gather_object(ranks, mine)
    return {"steps": state.step, "epochs_started": state.epoch + 1, "world_size": world,
            "ranks": ranks, "ranks_in_sync": len({r["weights"] for r in ranks}) == 1}
