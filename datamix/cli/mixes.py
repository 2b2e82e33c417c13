"""Commands on a built mix: `subsample`, `show`, `verify`, `export` (thin wrappers over the library)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.errors import InputError

MixDir = Annotated[Path, typer.Argument(help="A mix folder written by `datamix build` (or `subsample`).")]


def parse_ratios(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--ratios wants numbers separated by commas, e.g. 0.1,0.25,0.5; got {text!r}") from None


@app.command()
@fails_cleanly
def subsample(
    mix_dir: MixDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (--ratio: the rung itself; "
                                      "--ratios: one <name>-r<ratio> folder per rung inside it).")],
    ratio: Annotated[float | None, typer.Option(help="One ratio in (0, 1]: write the rung into --out.")] = None,
    ratios: Annotated[str | None, typer.Option(help="Several ratios, e.g. 0.1,0.25,0.5: all rungs in one pass.")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Do not check the parent's shards and index "
                                            "against its manifest while reading them.")] = False,
) -> None:
    """Exact, nested, seeded subsets of a mix (per source nearest count), image bytes copied as they are."""
    from datamix.subsample import subsample as run

    if (ratio is None) == (ratios is None):
        raise InputError("give exactly one of --ratio R or --ratios R1,R2,...")
    values = [ratio] if ratio is not None else parse_ratios(ratios)
    manifests = run(mix_dir, values, out, one=ratio is not None, verify=not no_verify)
    for manifest in manifests:
        where = out if ratio is not None else out / manifest["name"]
        typer.echo(f"{manifest['name']}: {manifest['samples']:,} samples in {len(manifest['shards'])} shard(s), "
                   f"{manifest['bytes'] / 1e6:,.1f} MB -> {where}")
        for name, counts in manifest["sources"].items():
            typer.echo(f"  {name:<20} {counts['written']:>9,} of {counts['available']:>9,}")


@app.command()
@fails_cleanly
def show(
    mix_dir: MixDir,
    n: Annotated[int, typer.Option("--n", "-n", help="How many samples.")] = 5,
    source: Annotated[str | None, typer.Option(help="Only samples of this source (recipe source name).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Do not trim long turns.")] = False,
) -> None:
    """Print samples as a chat: header (key, id, source, task, images WxH/format/KB), then the turns."""
    from datamix.show import show as run

    for line in run(mix_dir, n=n, source=source, full=full):
        typer.echo(line)


@app.command()
@fails_cleanly
def verify(mix_dir: MixDir) -> None:
    """Re-hash every shard and the index against the manifest; list every difference, exit 1 on any."""
    from datamix.verify import VerifyError, verify_mix

    report = verify_mix(mix_dir)
    if not report.ok:
        for problem in report.problems:
            typer.echo(f"  {problem}")
        raise VerifyError(f"{mix_dir}: {len(report.problems)} problem(s); the mix is not the one its manifest "
                          "describes (rebuild it, or copy it again)")
    typer.echo(f"OK: {report.shards} shards, {report.samples:,} samples verified")


@app.command()
@fails_cleanly
def export(
    mix_dir: MixDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="llava: the JSON file; hf: the dataset folder.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="llava or hf.")] = "llava",
    images_out: Annotated[Path | None, typer.Option(help="llava: folder for the images (default: images/ next to "
                                             "the JSON); the JSON's paths are relative to it.")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Do not check shard sizes and hashes against "
                                            "the manifest while reading them.")] = False,
) -> None:
    """Export a mix as LLaVA training JSON + image files, or as a Hugging Face dataset (save_to_disk)."""
    from datamix.export import FORMATS, export_hf, export_llava

    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "hf":
        if images_out is not None:
            raise InputError("--images-out is for --format llava; hf stores the images in the dataset")
        rows = export_hf(mix_dir, out, verify=not no_verify)
        typer.echo(f"exported {rows:,} samples as a Hugging Face dataset -> {out}")
        return
    images_out = images_out if images_out is not None else out.parent / "images"
    counts = export_llava(mix_dir, out, images_out, verify=not no_verify)
    typer.echo(f"exported {counts['samples']:,} samples -> {out}; {counts['images']:,} image file(s) -> {images_out}")
