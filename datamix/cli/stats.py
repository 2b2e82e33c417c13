"""`datamix stats`: what a mix (or normalized Parquet) really contains, per source; two targets side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.errors import InputError

WIDTH = 100  # the tables are laid out for 100 columns


def print_tables(tables, footer: str | None = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(width=WIDTH, highlight=False)
    for t in tables:
        table = RichTable(title=t.title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                          caption=t.note or None, caption_justify="left")
        for i, header in enumerate(t.headers):
            table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
        for k, row in enumerate(t.rows):
            table.add_row(*row, end_section=k == len(t.rows) - 2 and row[0] != "total")
        console.print(table)
    if footer:
        console.print(footer, soft_wrap=False, width=WIDTH)


def _is_reference(path: Path) -> bool:
    return path.is_file() and path.suffix == ".json"


@app.command()
@fails_cleanly
def stats(
    targets: Annotated[list[Path], typer.Argument(help="A mix folder, a normalized Parquet file or a folder of "
                                                  "them; give two (the second may be a manifests/*.json) to compare.")],
    tokenizer: Annotated[Path | None, typer.Option(help="Count lengths in tokens of this local Hugging Face tokenizer "
                                            "(tokenizer.json or its folder) instead of words.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every figure to this JSON file.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report with charts into this folder.")] = None,
    against: Annotated[Path | None, typer.Option(help="Compare per-source counts with a reference, e.g. "
                                          "manifests/llava_v1_5_mix665k.json.")] = None,
    resolution: Annotated[str, typer.Option(help="hd: image tokens per sample and the share truncated by "
                                            "--model-max-length, base (336 px) vs LLaVA-1.5-HD, per source "
                                            "(needs --tokenizer and a mix folder).")] = "base",
    model_max_length: Annotated[int, typer.Option(help="The trainer's length limit, image tokens included "
                                                  "(for --resolution hd).")] = 2048,
    duplicates: Annotated[int | None, typer.Option(min=0, max=63, help="Also find duplicate images in a mix folder: "
                                                   "the same file under several paths, the same pixels in another "
                                                   "file, and near duplicates whose pHash is within this many bits "
                                                   "(decodes every image once; 4 catches resized copies).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes decoding images for --duplicates.")] = 1,
) -> None:
    """Per source and in total: samples, shares, turns, images, text lengths, answers, prompts, duplicates."""
    from datamix.stats import compute_stats, load_target
    from datamix.stats.compare import compare, reference_stats
    from datamix.stats.load import load_reference
    from datamix.stats.tables import compare_table, overlap_note, stats_tables

    if len(targets) > 2:
        raise InputError(f"give one target, or two to compare (got {len(targets)})")
    if resolution not in ("base", "hd"):
        raise InputError(f"--resolution must be base or hd, got {resolution!r}")
    if resolution == "hd" and tokenizer is None:
        raise InputError("--resolution hd counts tokens: give the model's --tokenizer")
    if duplicates is not None and first_is_not_mix(targets[0]):
        raise InputError(f"{targets[0]}: --duplicates reads the images of a mix folder (a built mix)")
    if _is_reference(targets[0]):
        raise InputError(f"{targets[0]}: a reference manifest can only be the second target or --against")
    first = load_target(targets[0])
    result = compute_stats(first, tokenizer)
    out: dict = {"stats": result} if len(targets) == 2 or against else result
    tables = stats_tables(result)
    comparison = other = vs = None
    if len(targets) == 2:
        if _is_reference(targets[1]):
            comparison = compare(result, reference_stats(load_reference(targets[1])))
        else:
            second = load_target(targets[1])
            other = compute_stats(second, tokenizer)
            comparison = compare(result, other, _ids(first), _ids(second))
            out["other"] = other
        out["comparison"] = comparison
        tables.append(compare_table(comparison))
    if against is not None:
        # Reference first: "B-A" then reads as how this mix differs from the published counts.
        vs = compare(reference_stats(load_reference(against)), result)
        out["against"] = vs
        tables.append(compare_table(vs))
    if resolution == "hd":
        from datamix.stats.resolution import resolution_stats, resolution_table

        out["resolution"] = resolution_stats(targets[0], tokenizer, max_length=model_max_length)
        tables.append(resolution_table(out["resolution"]))
    dup = None
    if duplicates is not None:
        from datamix.stats.duplicates import duplicate_images
        from datamix.stats.tables import duplicates_table

        dup = duplicate_images(targets[0], duplicates, workers=workers)
        out["duplicate_images"] = dup
        tables.append(duplicates_table(dup, list(result["sources"])))
    print_tables(tables, overlap_note(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {json_out}")
    if report is not None:
        from datamix.decontam.report import load_decontamination
        from datamix.stats.report import write_report

        removed = load_decontamination(targets[0]) if first.kind == "mix" else None
        page = write_report(report, result, comparison, other, vs, dup, decontamination=removed)
        typer.echo(f"wrote {page}")


def first_is_not_mix(path: Path) -> bool:
    from datamix.stats.load import is_mix

    return not is_mix(path)


def _ids(target):
    return target.frame.select("source", "id").collect()
