"""`datamix demo-data`: a small raw dataset in the official formats, with images that decide the answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly


@app.command("demo-data")
@fails_cleanly
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the raw demo sources into.")],
    seed: Annotated[int, typer.Option(help="Same seed, byte-identical files.")] = 0,
    n_images: Annotated[int, typer.Option(help="Number of generated COCO-style images.")] = 240,
) -> None:
    """Write demo VQAv2, GQA, ShareGPT and LLaVA files (official formats, a few deliberately broken records)."""
    from datamix.demo import write_demo_data

    summary = write_demo_data(out_dir, seed=seed, n_images=n_images)
    typer.echo(json.dumps(summary, indent=2))
