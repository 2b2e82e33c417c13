"""The training loop: one function per phase, nanoGPT-style; runs alone or under `torchrun` (DDP).

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
    encoder = Encoder(tokenizer, processor, cfg.template, cfg.image_aspect, model.config.image_seq_length,
                      model.config.image_token_id, cfg.model_max_length)
    if cfg.resolution == "hd":
        from datamix.train.hd import hd_encoder

        encoder = hd_encoder(encoder, model.config)
    if rank == 0:
        echo(f"training {cfg.stage} ({cfg.template}, {cfg.image_aspect}) on {n_samples:,} samples in {len(shards)} "
             f"shards: {total} steps x global batch {cfg.global_batch} ({world} proc x micro {cfg.micro_batch} x "
             f"accum {accum}), lr {cfg.lr:g}, {sum(p.numel() for p in params):,} trainable parameters -> {out_dir}")
    ddp = model
    if world > 1:
        # Text-only batches leave the projector unused in stage 2, hence find_unused_parameters.
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    run = _Run(cfg, ddp, model, optimizer, scheduler, params, encoder, shards, rank, world, device, accum, total,
               out_dir, echo)
    run.loop(state, stop_after)
    if not (stop_after and state["step"] >= stop_after):
        finish(run, state, out_dir, echo)
    return state


def _quiet(*_) -> None:
    """The echo of ranks other than 0: one warning line per run, not one per process."""


def start_state(cfg, out_dir, optimizer, scheduler, *, rank, world, resume_from: Path | None) -> dict:
    """Step, epoch and batches consumed per rank and worker: zeros, or those of `resume_from` (--resume)."""
    if resume_from is None:
        return {"step": 0, "epoch": 0, "consumed": [[0] * max(cfg.workers, 1) for _ in range(world)]}
    state = ckpt.load_training_state(resume_from, optimizer, scheduler)
    if len(state["consumed"]) != world:
        raise TrainError(f"--resume: the checkpoint was written by {len(state['consumed'])} process(es); "
                         f"resume with the same number ({world} now)")
    if rank == 0:
        truncate_metrics(out_dir / "metrics.jsonl", state["step"])
    return state


def finish(run, state: dict, out_dir: Path, echo) -> None:
    """summary.json (what each process saw, whether their weights agree), the final model, the loss curve."""
    summary = run.summary(state)
    if run.rank != 0:
        return
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not summary["ranks_in_sync"]:
        raise TrainError("the processes ended with different weights (DDP out of sync); see summary.json")
    run.model.save_pretrained(out_dir, safe_serialization=True)
    png = plot_loss(out_dir / "metrics.jsonl", out_dir / "loss.png")
    echo(f"saved the model to {out_dir}" + (f"; loss curve {png}" if png else ""))


class _Run:
    """The state of a run in progress; `loop` is the only entry point."""

    def __init__(self, cfg, ddp, model, optimizer, scheduler, params, encoder, shards, rank, world, device, accum,
                 total, out_dir, echo):
        self.cfg, self.ddp, self.model, self.optimizer, self.scheduler = cfg, ddp, model, optimizer, scheduler
        self.params, self.encoder, self.shards = params, encoder, shards  # shards: path -> samples
        self.rank, self.world, self.device, self.accum, self.total = rank, world, device, accum, total
        self.out_dir, self.echo = out_dir, echo
        self.bar = None
        self.failure: str | None = None  # the stream's error message, raised once its workers are stopped
        self.seen, self.n_seen = hashlib.sha256(), 0  # what this process trained on, for summary.json

    def stream(self, epoch: int, skip: list[int]) -> MixStream:
        cfg = self.cfg
        return MixStream(list(self.shards), self.encoder, batch_size=cfg.micro_batch,
                         megabatch=cfg.micro_batch * self.accum, epoch=epoch, seed=cfg.seed, rank=self.rank,
                         world_size=self.world, skip=skip,
                         shuffle_buffer=cfg.shuffle_buffer, group_by_modality=cfg.group_by_modality,
                         images_only=cfg.template == "plain", counts=self.shards)

    def loop(self, state: dict, stop_after: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, initial=state["step"], disable=True if self.rank != 0 else None, desc=self.cfg.stage,
                        dynamic_ncols=True)
        self.ddp.train()
        while state["step"] < self.total:
            mine = state["consumed"][self.rank]
            batches = iter(make_loader(self.stream(state["epoch"], list(mine)), self.cfg.workers))
            while state["step"] < self.total and self.step(batches, state, mine):
                if stop_after and state["step"] >= stop_after:
                    self.bar.close()
                    return
            del batches  # this epoch's DataLoader workers stop now, before any error leaves with a traceback
            if self.failure is not None:
                raise TrainError(self.failure)
            if state["step"] >= self.total:
                break
            state["epoch"] += 1
            state["consumed"] = [[0] * len(mine) for _ in range(self.world)]
        self.bar.close()

    def step(self, batches, state: dict, mine: list[int]) -> bool:
        """One optimizer step over `accum` micro-batches; False when the epoch ran out of data."""
        meter, losses = StepMeter(), []
        taken = [0] * len(mine)
        for micro in range(self.accum):
            t0 = time.perf_counter()
            batch = next(batches, None)
            if batch is not None and "error" in batch:  # a damaged shard, reported by the stream (data.py)
                self.failure = batch["error"]
                return False
            if not all_have_batch(batch is not None, self.world):
                self.optimizer.zero_grad(set_to_none=True)  # drop the incomplete global batch
                return False
            meter.fetched(time.perf_counter() - t0, batch)
            taken[batch.pop("worker")] += 1
            for sample_id in batch.pop("ids"):
                self.seen.update(sample_id.encode() + b"\n")
                self.n_seen += 1
            sync = micro == self.accum - 1 or self.world == 1
            with (contextlib.nullcontext() if sync else self.ddp.no_sync()), autocast(self.cfg, self.device):
                loss = self.ddp(**{k: v.to(self.device) for k, v in batch.items() if v is not None}).loss
            (loss / self.accum).backward()
            losses.append(loss.item())
        if self.cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        for w, n in enumerate(taken):
            mine[w] += n
        state["step"] += 1
        self.after_step(state, meter, sum(losses) / len(losses), lr)
        return True

    def after_step(self, state: dict, meter: StepMeter, loss: float, lr: float) -> None:
        loss = mean_over_ranks(loss, self.world)
        row = meter.record(step=state["step"], epoch=state["epoch"], loss=loss, lr=lr, world_size=self.world)
        due = self.cfg.save_every and state["step"] % self.cfg.save_every == 0
        if due or state["step"] == self.total:
            self.save(state)
        if self.rank == 0:
            append_metrics(self.out_dir / "metrics.jsonl", row)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", data_wait=f"{row['data_wait']:.0%}")
            self.bar.update(1)

    def summary(self, state: dict) -> dict:
        """Per process: samples seen and their digest, and a weight checksum that must agree across processes."""
        checksum = float(sum(p.detach().double().sum() for p in self.params))
        mine = {"rank": self.rank, "samples": self.n_seen, "ids_sha256": self.seen.hexdigest(), "weights": checksum}
        ranks = [mine]
        if self.world > 1:
            ranks = [None] * self.world
            dist.all_gather_object(ranks, mine)
        return {"steps": state["step"], "epochs_started": state["epoch"] + 1, "world_size": self.world,
                "ranks": ranks, "ranks_in_sync": len({r["weights"] for r in ranks}) == 1}

    def save(self, state: dict) -> None:
        if self.world > 1:  # every rank's data position goes into the one checkpoint
            gathered = [None] * self.world
            dist.all_gather_object(gathered, state["consumed"][self.rank])
            for r, counts in enumerate(gathered):
                state["consumed"][r][:] = counts  # in place: the loop holds this rank's list
        saved = {**state, "consumed": [list(c) for c in state["consumed"]]}
        if self.rank == 0:
            ckpt.save_checkpoint(self.out_dir, self.model, self.optimizer, self.scheduler, saved,
                                 keep=self.cfg.keep_checkpoints)
        if self.world > 1:
            dist.barrier()  # nobody runs ahead (or exits) before the checkpoint is complete
