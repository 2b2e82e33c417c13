"""Checkpoints: the model in safetensors (loadable with `from_pretrained`), optimizer and scheduler state, and
the data position of every process, written to a temporary folder and renamed when complete.

Layout of a run folder:
    run.json                    the TrainConfig and the mix it trains on
    tokenizer*, preprocessor_config.json, config.json, model.safetensors    the final model (from_pretrained)
    checkpoints/step-000100/    model + optimizer.pt + state.json (step, epoch, batches consumed per rank/worker)
    metrics.jsonl, loss.png
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from datamix.train.config import TrainError


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in (run_dir / "checkpoints").glob("step-*") if (p / "state.json").is_file())


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict, *, keep: int) -> Path:
    """Rank 0 only. `state` holds step, epoch and `consumed` (batches per worker, one list per rank)."""
    final = run_dir / "checkpoints" / f"step-{state['step']:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")  # written last: marks it complete
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path:
    found = checkpoint_dirs(run_dir)
    if not found:
        raise TrainError(f"--resume: no complete checkpoint under {run_dir / 'checkpoints'}; start a new run instead")
    return found[-1]


def load_training_state(ckpt: Path, optimizer, scheduler) -> dict:
    """Restore optimizer and scheduler in place; return the saved state. The weights were loaded with
    `from_pretrained(ckpt)` (setup.build_model): transformers may rename keys on disk, so never by hand."""
    saved = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return json.loads((ckpt / "state.json").read_text())
