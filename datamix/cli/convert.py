"""`datamix convert` and `datamix converters`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.convert import rejects_path, run_conversion
from datamix.converters import CONVERTERS, ConvertOptions
from datamix.ledger import Ledger
from datamix.prompts import PromptPolicy


class AnswerPolicy(str, Enum):
    consensus = "consensus"
    most_common = "most_common"


class CocoNaming(str, Enum):
    y2017 = "2017"
    y2014 = "2014"


@app.command()
@fails_cleanly
def convert(
    source: Annotated[str, typer.Argument(help=f"Converter id: {', '.join(CONVERTERS)}.")],
    paths: Annotated[list[str], typer.Argument(help="Official files as downloaded, folders of them, or globs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file.")],
    format_prompt: Annotated[PromptPolicy, typer.Option(
        help="Where to append the LLaVA-1.5 response-format prompt.")] = PromptPolicy.first_turn,
    answer: Annotated[AnswerPolicy, typer.Option(
        help="vqav2: multiple_choice_answer (consensus) or the most frequent of the 10 answers.")] = (
        AnswerPolicy.consensus),
    coco_naming: Annotated[CocoNaming, typer.Option(
        help="vqav2: image paths as train2017/%012d.jpg (2017, LLaVA-1.5) or "
             "train2014/COCO_train2014_%012d.jpg (2014).")] = CocoNaming.y2017,
) -> None:
    """Convert the official files of one source into the unified schema (Parquet) plus a rejects ledger."""
    options = ConvertOptions(format_prompt=format_prompt, answer=answer.value, coco_naming=coco_naming.value)
    ledger = run_conversion(source, paths, out, options)
    print_report(ledger, out)


def print_report(ledger: Ledger, out: Path) -> None:
    typer.echo(f"{ledger.source}: {ledger.records_in:,} records in -> {ledger.samples_out:,} samples out "
               f"({ledger.records_out:,} records used), {ledger.rejected:,} rejected")
    for reason, count in ledger.by_reason().items():
        typer.echo(f"  rejected {count:>10,}  {reason}")
    typer.echo(f"wrote {out} and {rejects_path(out)}")


@app.command()
def converters() -> None:
    """List the converters and what each reads."""
    for cid, cls in CONVERTERS.items():
        typer.echo(f"{cid:<10} {cls.description}")
