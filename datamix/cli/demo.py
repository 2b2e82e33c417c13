"""`datamix demo-data`: a small raw dataset in the official formats, with images that decide the answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.errors import InputError


@app.command("demo-data")
@fails_cleanly
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="New or empty folder to write the raw demo sources into.")],
    seed: Annotated[int, typer.Option(help="Same seed, byte-identical files.")] = 0,
    n_images: Annotated[int, typer.Option(help="Number of generated images (at least 24).")] = 240,
) -> None:
    """Write demo VQAv2, GQA, ShareGPT, LLaVA, OK-VQA, A-OKVQA, OCR-VQA and TextCaps files (official formats,
    a few deliberately broken records)."""
    from datamix.demo import write_demo_data

    if out_dir.exists() and any(out_dir.iterdir()):
        # Files of an earlier run with other settings would silently mix with the new ones.
        raise InputError(f"{out_dir}: folder is not empty; give a new folder or remove this one")
    summary = write_demo_data(out_dir, seed=seed, n_images=n_images)
    counts = ", ".join(f"{source}: {n}" for source, n in summary["counts"].items() if not isinstance(n, dict))
    typer.echo(f"wrote demo data to {out_dir} (seed {seed}): {counts}")
    typer.echo(f"deliberately broken: {len(summary['broken'])} items, listed in {out_dir / 'README.demo.json'}")
