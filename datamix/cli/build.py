"""`datamix build`: a recipe file becomes WebDataset shards + rejects, stats and a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly


@app.command()
@fails_cleanly
def build(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (see recipes/).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder for the shards and records.")] = None,
    workers: Annotated[int, typer.Option(help="Processes for conversion and image checks (with --engine ray and no "
                                              "--address: the CPUs of the local Ray); output is identical.")] = 1,
    engine: Annotated[str, typer.Option(help="Where the parallel work runs: local (processes here) or ray "
                                             "(needs pip install 'datamix[ray]'); output is identical.")] = "local",
    address: Annotated[str | None, typer.Option(help="With --engine ray: the cluster (auto, host:port, "
                                                     "ray://host:port); none starts a local Ray.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved plan; write nothing.")] = False,
    skip_planned: Annotated[bool, typer.Option(
        "--skip-planned", help="Build without the sources marked planned (their converter does not exist yet).")] = False,
) -> None:
    """Build a mix: convert, select exactly (nested, seeded), verify images, shuffle, write shards, manifest last."""
    from datamix.builder import build as run_build
    from datamix.builder import plan

    if dry_run:
        print_plan(plan(recipe, skip_planned=skip_planned), recipe)
        return
    if out is None:
        raise typer.BadParameter("--out is required unless --dry-run", param_hint="--out")
    manifest = run_build(recipe, out, workers=workers, skip_planned=skip_planned, engine=engine, address=address,
                         echo=typer.echo)
    typer.echo(f"built {manifest['name']}: {manifest['samples']:,} samples in {len(manifest['shards'])} shard(s), "
               f"{manifest['bytes'] / 1e6:,.1f} MB -> {out}")
    for name, counts in manifest["sources"].items():
        typer.echo(f"  {name:<20} available {counts['available']:>9,}  requested {counts['requested']:>9,}  "
                   f"written {counts['written']:>9,}  rejected {counts['rejected']:>7,}")


def print_plan(rows: list[dict], recipe: Path) -> None:
    from datamix.recipe import load_recipe

    spec = load_recipe(recipe).shards
    total = sum(r["selected"] for r in rows)
    size = sum(r["expected_bytes"] for r in rows)
    typer.echo(f"{'source':<20} {'available':>10} {'selected':>10} {'expected MB':>12}")
    for r in rows:
        typer.echo(f"{r['source']:<20} {r['available']:>10,} {r['selected']:>10,} {r['expected_bytes'] / 1e6:>12,.1f}")
    shards = max(-(-total // spec.max_samples), -(-size // spec.max_bytes)) if total else 0
    typer.echo(f"{'total':<20} {'':>10} {total:>10,} {size / 1e6:>12,.1f}  ~{shards} shard(s); nothing written")
