"""`datamix study`: ladder -> train every rung -> evaluate on a held-out mix -> table and plot (datamix/study.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.cli.mixes import parse_ratios
from datamix.errors import InputError


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--seeds wants integers separated by commas, e.g. 0,1; got {text!r}") from None


@app.command()
@fails_cleanly
def study(
    mix_dir: Annotated[Path, typer.Argument(help="The full mix (ratio 1) the ladder is cut from.")],
    eval_mix: Annotated[Path, typer.Option("--eval", help="Held-out mix every run is evaluated on, per task.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Study folder: ladder/, runs/, study.json/csv/png, "
                                      "index.html. Run again to continue a killed study.")],
    ratios: Annotated[str, typer.Option(help="Rungs, e.g. 0.1,0.25,0.5,1 (1, the full mix, is always run).")]
    = "0.1,0.25,0.5,1",
    seeds: Annotated[str, typer.Option(help="Training seeds per rung (order and initialisation), e.g. 0,1.")] = "0",
    match: Annotated[str, typer.Option(help="epochs: the same passes over each rung (the paper); steps: the full "
                                            "mix's steps for every rung (compute-matched).")] = "epochs",
    epochs: Annotated[int, typer.Option(help="Stage-2 passes over a rung (epochs) or over the full mix (steps).")]
    = 1,
    stage1_steps: Annotated[int, typer.Option(help="Stage-1 (projector) steps of every run.")] = 100,
    eval_n: Annotated[int, typer.Option("--eval-n", help="Held-out questions per task.")] = 200,
    vision_init: Annotated[str | None, typer.Option(help="Tiny model: a `datamix pretrain-vision` folder, the "
                                                         "frozen tower of every run.")] = None,
    global_batch: Annotated[int, typer.Option(help="Samples per optimizer step (0: the stage's default).")] = 0,
    micro_batch: Annotated[int, typer.Option(help="Samples per forward pass (0: min(global, 16)).")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers per run.")] = 2,
) -> None:
    """The data-efficiency study (LLaVA-1.5 §5.1): nested rungs, the same stages for each, a per-task table."""
    from datamix.study import StudyConfig, run_study

    cfg = StudyConfig(ratios=parse_ratios(ratios), seeds=parse_seeds(seeds), match=match, epochs=epochs,
                      stage1_steps=stage1_steps, eval_n=eval_n, vision_init=vision_init,
                      train={"global_batch": global_batch, "micro_batch": micro_batch, "workers": workers})
    run_study(mix_dir, eval_mix, out, cfg, echo=typer.echo)
