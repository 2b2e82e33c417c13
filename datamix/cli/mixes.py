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


def parse_tiers(text: str | None, phash: int | None):
    from datamix.decontam.spec import DEFAULT_PHASH, MAX_PHASH, TIERS, Tiers

    if text is None and phash is None:
        return None  # the recipes' own tiers, else the defaults
    names = [t.strip() for t in (text or ",".join(TIERS)).split(",") if t.strip()]
    unknown = [t for t in names if t not in TIERS]
    if unknown or not names:
        raise InputError(f"--tiers takes a comma-separated list of {', '.join(TIERS)}; got {text!r}")
    if phash is not None and not 0 <= phash <= MAX_PHASH:
        raise InputError(f"--phash must be a Hamming distance from 0 to {MAX_PHASH} bits, got {phash}")
    return Tiers(ids="ids" in names, bytes="bytes" in names, pixels="pixels" in names,
                 phash=(DEFAULT_PHASH if phash is None else phash) if "phash" in names else None)


@app.command()
@fails_cleanly
def decontaminate(
    mix_dir: MixDir,
    against: Annotated[list[str], typer.Option(help="A recipe (.yaml: its exclude: and dedupe: sections) or an "
                                               "evaluation set as KIND:PATH, e.g. pope:coco_pope_random.json; "
                                               "repeat for several.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The clean mix folder to write.")],
    tiers: Annotated[str | None, typer.Option(help="Tiers to run, e.g. ids,bytes,pixels,phash (default: the "
                                              "recipe's, else all four).")] = None,
    phash: Annotated[int | None, typer.Option(help="pHash Hamming threshold in bits (default 4).")] = None,
    links: Annotated[list[Path] | None, typer.Option(help="Visual Genome image_data.json: VG <-> COCO ids.")] = None,
    eval_image_root: Annotated[Path | None, typer.Option(help="Folder of the KIND:PATH sets' images, for the "
                                                         "bytes, pixels and pHash tiers.")] = None,
    workers: Annotated[int, typer.Option(help="Processes that fingerprint images.")] = 1,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Do not check the parent's shards and index "
                                            "against its manifest while reading them.")] = False,
) -> None:
    """A copy of a mix without the samples that show an evaluation image (and, by a recipe's dedupe:, repeats)."""
    from datamix.decontam.decide import unmatchable_sets
    from datamix.decontam.mix import decontaminate as run, parse_against

    exclude, dedupe = parse_against(against, parse_tiers(tiers, phash), list(links or []), eval_image_root)
    manifest = run(mix_dir, out, exclude=exclude, dedupe=dedupe, workers=workers, verify=not no_verify)
    removed = manifest["parent"]["removed"]
    typer.echo(f"{manifest['name']}: {manifest['samples']:,} samples kept, {removed:,} removed -> {out}")
    for stage in ("decontaminate", "dedupe"):
        for name, tally in (manifest["decontamination"].get(stage) or {}).get("removed", {}).items():
            if tally:
                typer.echo(f"  {stage:<13} {name:<20} " + ", ".join(f"{t} {n:,}" for t, n in tally.items()))
    for name in unmatchable_sets(manifest["decontamination"]):
        typer.echo(f"warning: evaluation set {name!r} can match nothing: none of its images has an id key and none "
                   "was fingerprinted; check its kind, or give --eval-image-root", err=True)
