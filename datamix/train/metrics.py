"""Training metrics: one JSON line per optimizer step, and a loss-curve PNG at the end of a run."""

from __future__ import annotations

import json
import time
from pathlib import Path


class StepMeter:
    """Times one optimizer step: total wall time, time spent waiting for data, samples and tokens seen."""

    def __init__(self):
        self.start = time.perf_counter()
        self.wait = 0.0
        self.samples = 0
        self.tokens = 0

    def fetched(self, waited: float, batch: dict) -> None:
        self.wait += waited
        self.samples += int(batch["input_ids"].shape[0])
        self.tokens += int(batch["attention_mask"].sum())  # image tokens included: they cost compute too

    def record(self, *, step: int, epoch: int, loss: float, lr: float, world_size: int) -> dict:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return {"step": step, "epoch": epoch, "loss": round(loss, 5), "lr": lr,
                "samples_per_s": round(self.samples * world_size / elapsed, 2),
                "tokens_per_s": round(self.tokens * world_size / elapsed, 1),
                "data_wait": round(self.wait / elapsed, 3), "step_s": round(elapsed, 3)}


def append_metrics(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def plot_loss(metrics_path: Path, png: Path) -> Path | None:
    """Loss per step (and a moving average); None when matplotlib is missing, which only costs the picture."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = read_metrics(metrics_path)
    if not rows:
        return None
    steps, losses = [r["step"] for r in rows], [r["loss"] for r in rows]
    k = max(1, len(losses) // 20)
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1]) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, alpha=0.35, label="loss")
    ax.plot(steps, smooth, label=f"moving average ({k} steps)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(metrics_path.parent.name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def truncate_metrics(path: Path, last_step: int) -> None:
    """On resume, forget the steps a killed run logged after its last checkpoint (they are trained again)."""
    rows = [r for r in read_metrics(path) if r["step"] <= last_step]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
