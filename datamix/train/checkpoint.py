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
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import torch

from datamix.train.config import TrainError


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The finished checkpoints (state.json is written last), oldest first; `step-N.tmp` is never one."""
    found = [p for p in (run_dir / "checkpoints").glob("step-*")
             if re.fullmatch(r"step-\d+", p.name) and (p / "state.json").is_file()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(ckpt: Path) -> int:
    return int(ckpt.name.removeprefix("step-"))


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
    for later in [p for p in checkpoint_dirs(run_dir) if checkpoint_step(p) > state["step"]]:
        shutil.rmtree(later)  # a damaged checkpoint that --resume skipped: the run went on from an earlier one
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def resume_checkpoint(run_dir: Path, warn) -> Path:
    """The newest checkpoint whose files are all there and readable. A damaged newer one (a disk that filled
    up, a copy cut short) is skipped with a warning line: resuming a few steps earlier beats not resuming."""
    found = checkpoint_dirs(run_dir)
    if not found:
        raise TrainError(f"--resume: no complete checkpoint under {run_dir / 'checkpoints'}; start a new run instead")
    for ckpt in reversed(found):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt
        warn(f"warning: skipping checkpoint {ckpt}: {problem}")
    raise TrainError(f"--resume: no usable checkpoint under {run_dir / 'checkpoints'} (all {len(found)} damaged, "
                     f"see the warnings); start a new run instead")


def checkpoint_problem(ckpt: Path) -> str | None:
    """What would make resuming from `ckpt` fail, found without loading it (weights headers, the optimizer
    archive's directory, state.json), or None."""
    from datamix.train.model import weights_problem

    if not (ckpt / "config.json").is_file():
        return "config.json missing"
    problem = weights_problem(ckpt)
    if problem:
        return problem
    if not zipfile.is_zipfile(ckpt / "optimizer.pt"):  # torch.save writes a zip; a cut one has no directory
        return f"{ckpt / 'optimizer.pt'} is missing or truncated"
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict) or not {"step", "epoch", "consumed"} <= state.keys():
        return f"{ckpt / 'state.json'} is damaged"
    return None


def load_training_state(ckpt: Path, optimizer, scheduler) -> dict:
    """Restore optimizer and scheduler in place; return the saved state. The weights were loaded with
    `from_pretrained(ckpt)` (setup.build_model): transformers may rename keys on disk, so never by hand."""
    try:
        saved = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    except (RuntimeError, OSError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise TrainError(f"--resume: {ckpt / 'optimizer.pt'} cannot be restored ({str(exc).splitlines()[0]}); "
                         f"delete {ckpt} to resume from the checkpoint before it") from None
    return json.loads((ckpt / "state.json").read_text())
